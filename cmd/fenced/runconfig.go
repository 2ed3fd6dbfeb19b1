package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.opentelemetry.io/otel/trace"

	"github.com/fencedhq/fenced/internal/tracing"
	"github.com/fencedhq/fenced/pkg/alerts"
	"github.com/fencedhq/fenced/pkg/api"
	"github.com/fencedhq/fenced/pkg/backends"
	"github.com/fencedhq/fenced/pkg/clock"
	"github.com/fencedhq/fenced/pkg/config"
	"github.com/fencedhq/fenced/pkg/daemon"
	"github.com/fencedhq/fenced/pkg/lease"
	"github.com/fencedhq/fenced/pkg/nova"
	"github.com/fencedhq/fenced/pkg/record"
)

// configFlags are the flags `run --config` reads; every other flag of run
// belongs to --dev or --lab and is refused with a config, never ignored.
var configFlags = map[string]bool{"config": true, "mode": true, "id": true}

// runConfig runs a replica against the real cloud the config describes.
func runConfig(ctx context.Context, cmd *cobra.Command, o *runOpts) error {
	var bad []string
	cmd.Flags().Visit(func(f *pflag.Flag) {
		if !configFlags[f.Name] && cmd.InheritedFlags().Lookup(f.Name) == nil {
			bad = append(bad, "--"+f.Name)
		}
	})
	if len(bad) > 0 {
		return fmt.Errorf("%s: not used with --config (set it in the config file; see deploy/fenced.yaml)", strings.Join(bad, ", "))
	}
	cfg, err := config.Load(o.configPath)
	if err != nil {
		return err
	}
	// SIGHUP reloads the policy and the webhooks (reload.go); registered
	// now, a HUP while etcd starts waits for the daemon instead of ending
	// the process
	hupReady, stopHUP := watchHUP(ctx, &reloader{path: o.configPath, mode: o.mode, start: cfg})
	defer stopHUP()
	p, err := loadPolicy(cfg.Policy, o.mode)
	if err != nil {
		return err
	}
	if err := p.CheckGroups(cfg.GroupNames()); err != nil {
		return err
	}
	var tokens map[string]api.Identity
	if cfg.API.TokensFile != "" {
		if tokens, err = api.ReadTokens(cfg.API.TokensFile); err != nil {
			return err
		}
	}
	clk := clock.Real{}
	reg, err := newRegistry()
	if err != nil {
		return err
	}
	id := replicaID(o.id)
	var tp trace.TracerProvider // nil: tracing off
	if cfg.Tracing != nil {
		prov, err := tracing.New(ctx, cfg.Tracing, id)
		if err != nil {
			return cfg.Errorf("tracing", "%v", err)
		}
		defer func() {
			// the spans of the last seconds: flushed, but never holding the exit long
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := prov.Shutdown(sctx); err != nil {
				logger.Warn().Err(err).Str("component", "tracing").Msg("spans not exported at exit")
			}
		}()
		tp = prov
	}
	prod, err := backends.Build(ctx, backends.Options{Config: cfg, Policy: p, Clock: clk, Log: logger, Metrics: reg, Tracer: tp})
	if err != nil {
		return err
	}
	defer prod.Close()
	var sink api.AlertSink
	alertsNote := "inbound alerts off"
	if a := cfg.Alerts; a != nil {
		// alerts join each tick's samples; pkg/signals keeps them from ever
		// taking a host past warn on their own
		store, err := alerts.New(alerts.Config{HostLabel: a.HostLabel, HostMap: a.HostMap, ExpireAfter: a.ExpireAfter, Rules: a.Map,
			Clock: clk, Log: logger, Metrics: reg})
		if err != nil {
			return cfg.Errorf("alerts", "%v", err)
		}
		prod.Backends.Source = &alerts.Source{Next: prod.Backends.Source, Store: store, Hosts: prod.Hosts}
		sink, alertsNote = store, fmt.Sprintf("inbound alerts on POST /api/v1/alerts (%d mapped)", len(a.Map))
	}
	eps, err := backends.Webhooks(cfg, os.Getenv)
	if err != nil {
		return err
	}

	// etcd: leader election, fencing token, host records, intents, the
	// pause, approvals and the audit chain
	e := cfg.Etcd
	var dataDir string
	if e.Embedded != nil {
		dataDir = e.Embedded.DataDir
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			return cfg.Errorf("etcd.embedded.data_dir", "%v", err)
		}
	}
	pw, err := cfg.EtcdPassword(os.Getenv)
	if err != nil {
		return err
	}
	cli, closeEtcd, err := lease.Open(ctx, lease.ClientConfig{Endpoints: e.Endpoints, Username: e.Username, Password: pw,
		CertFile: e.CertFile, KeyFile: e.KeyFile, CAFile: e.CAFile}, dataDir)
	if err != nil {
		return cfg.Errorf("etcd", "%v", err)
	}
	defer closeEtcd()
	signer, keys, witness, err := cfg.AuditSigning(id)
	if err != nil {
		return err
	}
	var rec daemon.Recorder
	if r := cfg.Record; r != nil {
		files, err := record.Open(record.Options{Dir: r.Dir, MaxFileBytes: int64(r.MaxFileMB) << 20, MaxFiles: r.MaxFiles, Log: logger})
		if err != nil {
			return cfg.Errorf("record.dir", "%v", err)
		}
		defer files.Close()
		rec = files
	}
	d, err := daemon.NewReplica(ctx, daemon.ReplicaConfig{Policy: p, Clock: clk, Log: logger, Tick: cfg.Tick, Etcd: cli,
		Prefix: e.Prefix, ID: id, TTL: e.TTL, Settle: e.Settle, Backends: prod.Backends, Webhooks: eps, ConsoleURL: cfg.API.PublicURL,
		Signer: signer, Keys: keys, Witness: witness, Metrics: reg, Recorder: rec, Tracer: tp})
	if err != nil {
		return err
	}
	prod.Attach(d)
	hupReady(d)
	signing := "audit unsigned (no audit: section)"
	if signer != nil {
		signing = fmt.Sprintf("audit signed with key %s (%d trusted)", signer.ID(), len(keys))
	}
	traces := "tracing off"
	if t := cfg.Tracing; t != nil {
		traces = fmt.Sprintf("traces to %s (OTLP/%s)", t.Endpoint, map[bool]string{true: "grpc", false: "http"}[t.Protocol == "grpc"])
	}
	grps := "no groups"
	if n := len(cfg.Groups); n > 0 {
		grps = fmt.Sprintf("%d groups", n)
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "fenced run: %s, mode %s, %s, %d hosts, %s, tick %s, etcd %s, %s, %s, %s\n",
		cfg.File(), p.PlaybookConfig().Mode, describeRecovery(p.PlaybookConfig()), len(prod.Hosts), grps, cfg.Tick, strings.Join(cli.Endpoints(), ","), signing, traces, alertsNote)
	return serve(ctx, cmd, d, reg, prod.Backends.Capacity, cfg.API.Listen, tokens, apiOpts{cert: cfg.API.TLSCert, key: cfg.API.TLSKey, alerts: sink, servers: novaServers(prod.Nova)})
}

// replicaID is --id, or host/pid.
func replicaID(id string) string {
	if id != "" {
		return id
	}
	host, _ := os.Hostname()
	return fmt.Sprintf("%s/%d", host, os.Getpid())
}

// novaServers lists the servers Nova places on a host, for the console's
// incident view (nil without Nova).
func novaServers(cl *nova.Client) func(ctx context.Context, host string) ([]string, error) {
	if cl == nil {
		return nil
	}
	return func(ctx context.Context, host string) ([]string, error) {
		ss, err := cl.ServersOnHost(ctx, host)
		if err != nil {
			return nil, err // it says "nova: list servers on HOST"
		}
		out := make([]string, 0, len(ss))
		for _, s := range ss {
			out = append(out, fmt.Sprintf("%s (%s) %s %s", s.Name, s.ID, s.Status, s.PowerState))
		}
		return out, nil
	}
}
