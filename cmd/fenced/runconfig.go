package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/fencedhq/fenced/pkg/api"
	"github.com/fencedhq/fenced/pkg/audit"
	"github.com/fencedhq/fenced/pkg/clock"
	"github.com/fencedhq/fenced/pkg/config"
	"github.com/fencedhq/fenced/pkg/daemon"
	"github.com/fencedhq/fenced/pkg/hypervisor"
	"github.com/fencedhq/fenced/pkg/notify"
	"github.com/fencedhq/fenced/pkg/nova"
	"github.com/fencedhq/fenced/pkg/playbook"
	"github.com/fencedhq/fenced/pkg/signals"
	"github.com/fencedhq/fenced/pkg/signals/prom"
)

// runConfig runs against real sources. Without the Nova adapter, BMC
// inventory and etcd wiring it is observe-only.
func runConfig(ctx context.Context, cmd *cobra.Command, o *runOpts) error {
	cfg, err := config.Load(o.configPath)
	if err != nil {
		return err
	}
	mode := o.mode
	if mode == "" {
		mode = string(playbook.ModeObserve)
	}
	p, err := loadPolicy(cfg.Policy, mode)
	if err != nil {
		return err
	}
	if m := p.PlaybookConfig().Mode; m != playbook.ModeObserve {
		return fmt.Errorf("mode %s: acting needs the Nova adapter and the BMC inventory, which --config cannot use yet; run with --mode observe", m)
	}
	reg := &signals.Registry{Timeout: cfg.Tick / 2}
	if pc := cfg.Prometheus; pc != nil {
		var queries map[signals.Name]string
		if len(pc.Queries) > 0 {
			queries = map[signals.Name]string{}
			for k, v := range pc.Queries {
				queries[signals.Name(k)] = v
			}
		}
		c, err := prom.New(prom.Config{URL: pc.URL, Queries: queries, HostLabel: pc.HostLabel, HostMap: pc.HostMap, Timeout: pc.Timeout})
		if err != nil {
			return fmt.Errorf("%s: prometheus: %w", cfg.File(), err)
		}
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	var control func(string) (signals.Control, bool)
	if nc := cfg.Nova; nc != nil {
		cl, err := nova.New(ctx, nova.Config{Cloud: nc.Cloud, Region: nc.Region, Interface: nc.Interface, ReportInterval: nc.ReportInterval, Logger: logger})
		if err != nil {
			return fmt.Errorf("%s: nova: %w", cfg.File(), err)
		}
		col := &nova.Collector{Client: cl}
		if err := reg.Register(col); err != nil {
			return err
		}
		control = col.Control
	}
	if lc := cfg.Libvirt; lc != nil {
		var probes []*hypervisor.Probe
		for h, uri := range lc.URIs {
			pr, err := hypervisor.NewProbe(hypervisor.ProbeConfig{Host: h, URI: uri, CallTimeout: lc.CallTimeout, Log: logger})
			if err != nil {
				return err
			}
			defer pr.Close()
			probes = append(probes, pr)
		}
		if err := reg.Register(&hypervisor.Collector{Probes: probes}); err != nil {
			return err
		}
	}
	if len(reg.Names()) == 0 {
		return fmt.Errorf("%s: no collectors configured (add a prometheus:, nova: or libvirt: section)", cfg.File())
	}
	var tokens map[string]api.Role
	if cfg.TokensFile != "" {
		if tokens, err = readTokens(cfg.TokensFile); err != nil {
			return err
		}
	}
	clk := clock.Real{}
	auditLog := audit.New(audit.NewMemStore(), clk)
	var notifier playbook.Notifier = notify.Fanout{}
	var whStats func() map[string]int64
	if len(cfg.Webhooks) > 0 {
		var eps []notify.Endpoint
		for i, w := range cfg.Webhooks {
			ep := notify.Endpoint{Name: w.Name, URL: w.URL, Format: notify.Format(w.Format), RoutingKey: os.Getenv(w.RoutingKey)}
			if ep.Name == "" {
				ep.Name = fmt.Sprintf("webhook-%d", i+1)
			}
			if ep.Format == "" {
				ep.Format = notify.Generic
			}
			if w.SecretFile != "" {
				b, err := os.ReadFile(w.SecretFile)
				if err != nil {
					return fmt.Errorf("%s: webhooks[%d].secret_file: %w", cfg.File(), i, err)
				}
				ep.Secret = bytes.TrimSpace(b)
			}
			eps = append(eps, ep)
		}
		wh := notify.New(ctx, notify.Config{Endpoints: eps, Log: logger, Recorder: notify.AuditRecorder{Log: auditLog}})
		notifier, whStats = wh, wh.Counters
	}
	actor := &playbook.Actor{Mode: playbook.ModeObserve, Notify: notifier, Clock: clk, Log: logger}
	d, err := daemon.New(daemon.Config{Policy: p, Tick: cfg.Tick, Clock: clk, Log: logger, Audit: auditLog,
		Source: reg, Actor: actor, Hosts: cfg.Hosts, Webhooks: whStats, Control: control})
	if err != nil {
		return err
	}
	actor.Paused = d.Fleet().Paused
	fmt.Fprintf(cmd.ErrOrStderr(), "fenced run: %s, mode observe, collectors %v, tick %s\n", cfg.File(), reg.Names(), cfg.Tick)
	return serve(ctx, cmd, d, cfg.Listen, tokens, apiTLS{cfg.TLSCert, cfg.TLSKey})
}

// readTokens reads "ROLE TOKEN" lines (# comments allowed).
func readTokens(path string) (map[string]api.Role, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tokens: %w", err)
	}
	defer f.Close()
	out := map[string]api.Role{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		role, tok, ok := strings.Cut(line, " ")
		tok = strings.TrimSpace(tok)
		if !ok || tok == "" || (role != string(api.Viewer) && role != string(api.Operator)) {
			return nil, fmt.Errorf("%s:%d: want \"viewer TOKEN\" or \"operator TOKEN\"", path, n)
		}
		if len(tok) < 16 {
			return nil, fmt.Errorf("%s:%d: token shorter than 16 characters", path, n)
		}
		out[tok] = api.Role(role)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no tokens", path)
	}
	return out, sc.Err()
}
