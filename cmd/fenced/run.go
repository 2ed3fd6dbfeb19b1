package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/fencedhq/fenced/pkg/api"
	"github.com/fencedhq/fenced/pkg/clock"
	"github.com/fencedhq/fenced/pkg/daemon"
	"github.com/fencedhq/fenced/pkg/groups"
	"github.com/fencedhq/fenced/pkg/lab"
	"github.com/fencedhq/fenced/pkg/lease"
	"github.com/fencedhq/fenced/pkg/notify"
	"github.com/fencedhq/fenced/pkg/playbook"
	"github.com/fencedhq/fenced/pkg/record"
	"github.com/fencedhq/fenced/pkg/report"
)

type runOpts struct {
	dev         bool
	configPath  string
	listen      string
	policyPath  string
	mode        string
	tick        time.Duration
	hosts       int
	groups      int
	reserved    int
	starveAfter time.Duration
	rebootTime  time.Duration
	webhooks    []string
	secretFile  string
	speed       float64
	dataDir     string
	ramp        time.Duration
	bmcDelay    time.Duration
	id          string
	labURL      string
	ttl         time.Duration
	settle      time.Duration
	record      string

	etcdMode                            string
	etcdEndpoints                       []string
	etcdUser, etcdCert, etcdKey, etcdCA string
}

func newRunCmd() *cobra.Command {
	o := &runOpts{}
	cmd := &cobra.Command{
		Use:   "run --dev | --config FILE",
		Short: "Run the orchestrator (--dev: a simulated lab fleet on this machine)",
		Long: `run evaluates every host each tick, drives the playbooks and serves the HTTP
API, /metrics and the status page.

--dev runs everything on this machine: a simulated lab fleet (a simulated Nova,
live-migration gate and out-of-band power, a signal generator), one host of
which starves like the paper's incident a minute after start, and the status
page on loopback. Watch it go warn → critical; in approve mode (the default)
approve it from the page or with 'fenced approve HOST --reason …' and watch the
power cycle and the restoration. Ctrl-C stops it and leaves nothing behind.

--config FILE runs one replica against a real cloud: signals from Nova,
libvirt and Prometheus; Nova's compute API to disable, force down and
evacuate; the BMCs (Redfish) to power hosts off and on; etcd for leadership,
host records, approvals and the audit chain. Everything is set in the file
(see deploy/fenced.yaml and docs/production.md); with --config only --mode
and --id apply, and any other flag is an error. Roll out observe → approve →
auto: --mode overrides the policy's mode.`,
		Example: `  fenced run --dev
  fenced run --dev --mode auto --listen 127.0.0.1:9000
  fenced config check /etc/fenced/fenced.yaml
  fenced run --config /etc/fenced/fenced.yaml --mode observe --id ctl-1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case o.dev && o.configPath != "":
				return errors.New("--dev and --config exclude each other")
			case o.dev || o.labURL != "":
				return runDev(cmd.Context(), cmd, o)
			case o.configPath != "":
				return runConfig(cmd.Context(), cmd, o)
			}
			return errors.New("say --dev (a simulated lab on this machine) or --config FILE")
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.dev, "dev", false, "run a simulated lab fleet on this machine")
	f.StringVar(&o.configPath, "config", "", "run against real sources described in this file (see docs/run.md)")
	f.StringVar(&o.listen, "listen", "127.0.0.1:8480", "address of the HTTP API and status page")
	f.StringVar(&o.policyPath, "policy", "", "policy file (default: the built-in policies/default.yaml)")
	f.StringVar(&o.mode, "mode", "", "override the policy's mode: auto, approve or observe")
	f.DurationVar(&o.tick, "tick", 5*time.Second, "evaluation interval")
	f.IntVar(&o.hosts, "hosts", 20, "lab fleet size (--dev)")
	f.IntVar(&o.groups, "groups", 0, "split the lab fleet into this many groups, rack-1 … rack-N, in host order (--dev; docs/groups.md)")
	f.IntVar(&o.reserved, "reserved", 0, "with --groups: the last N hosts of each group are its reserved hosts, kept disabled until the group has no room (--dev; docs/groups.md)")
	f.DurationVar(&o.starveAfter, "starve-after", time.Minute, "when the lab's victim host starts starving (--dev)")
	f.DurationVar(&o.rebootTime, "reboot-time", 30*time.Second, "how long a power-cycled lab host takes to come back (--dev)")
	f.DurationVar(&o.bmcDelay, "bmc-delay", 2*time.Second, "how long a lab BMC takes for each power change (--dev)")
	f.DurationVar(&o.ramp, "ramp", 3*time.Minute, "how long the victim's load takes to ramp up (--dev)")
	f.StringVar(&o.id, "id", "", "this replica's name (default host/pid)")
	f.StringVar(&o.labURL, "lab", "", "act on a shared lab server (fenced lab serve) instead of an in-process lab")
	f.DurationVar(&o.ttl, "ttl", 5*time.Second, "etcd session TTL: how fast a dead leader is replaced")
	f.DurationVar(&o.settle, "settle", time.Minute, "how long a new leader waits for an old leader's in-flight action before reconciling it")
	f.StringVar(&o.etcdMode, "etcd", "embedded", "embedded: an in-process etcd in --data-dir (not with --etcd-endpoints)")
	f.StringSliceVar(&o.etcdEndpoints, "etcd-endpoints", nil, "etcd cluster to use instead of the embedded one")
	f.StringVar(&o.etcdUser, "etcd-user", "", "etcd auth user (password from FENCED_ETCD_PASSWORD)")
	f.StringVar(&o.etcdCert, "etcd-cert", "", "etcd client certificate")
	f.StringVar(&o.etcdKey, "etcd-key", "", "etcd client key")
	f.StringVar(&o.etcdCA, "etcd-ca", "", "CA bundle for the etcd servers")
	f.StringVar(&o.dataDir, "data-dir", "", "embedded etcd data directory (--dev; default: a temporary one, removed at exit)")
	f.Float64Var(&o.speed, "speed", 1, "run the lab's clock this many times faster than real time (--dev; demos and tests)")
	f.StringVar(&o.record, "record", "", "record what this replica observes to FILE, a trace fenced simulate replays")
	f.StringArrayVar(&o.webhooks, "webhook", nil, "send on-call webhooks to URL; FORMAT:URL picks generic, slack or pagerduty (repeatable)")
	f.StringVar(&o.secretFile, "webhook-secret-file", "", "file holding the HMAC-SHA256 key that signs webhooks")
	return cmd
}

// Flags of run that only some modes of runDev use.
var (
	inProcessLabFlags = map[string]bool{"hosts": true, "groups": true, "reserved": true, "starve-after": true, "reboot-time": true, "bmc-delay": true, "ramp": true, "speed": true}
	embeddedEtcdFlags = map[string]bool{"etcd": true, "data-dir": true}
	etcdClusterFlags  = map[string]bool{"etcd-user": true, "etcd-cert": true, "etcd-key": true, "etcd-ca": true}
)

func runDev(ctx context.Context, cmd *cobra.Command, o *runOpts) error {
	p, err := loadPolicy(o.policyPath, o.mode)
	if err != nil {
		return err
	}
	if o.groups < 0 || (o.groups > 0 && o.groups > o.hosts) {
		return fmt.Errorf("--groups %d: want 0 (no groups) to --hosts (%d)", o.groups, o.hosts)
	}
	if o.reserved < 0 || (o.reserved > 0 && (o.groups == 0 || o.reserved >= o.hosts/o.groups)) {
		return fmt.Errorf("--reserved %d: want 0 to one less than the smallest group (--groups %d of --hosts %d)", o.reserved, o.groups, o.hosts)
	}
	if err := p.CheckGroups(labGroupNames(o.groups)); err != nil {
		return fmt.Errorf("%w (the lab fleet of --dev has the groups of --groups N: rack-1 … rack-N)", err)
	}
	var clk clock.Clock = clock.Real{}
	if o.speed != 1 {
		if o.speed <= 0 || o.speed > 1000 {
			return fmt.Errorf("--speed: want a factor in (0, 1000], have %g", o.speed)
		}
		clk = clock.NewScaled(o.speed)
	}
	// every flag is checked before anything starts; one the mode does not
	// use is an error, never ignored
	var unused []string
	cmd.Flags().Visit(func(f *pflag.Flag) {
		if (o.labURL != "" && inProcessLabFlags[f.Name]) || (len(o.etcdEndpoints) > 0 && embeddedEtcdFlags[f.Name]) ||
			(len(o.etcdEndpoints) == 0 && etcdClusterFlags[f.Name]) {
			unused = append(unused, "--"+f.Name)
		}
	})
	if len(unused) > 0 {
		sort.Strings(unused)
		return fmt.Errorf("%s: not used here (in-process lab flags do not apply with --lab; --etcd and --data-dir are for the embedded etcd, --etcd-user/cert/key/ca for --etcd-endpoints)",
			strings.Join(unused, ", "))
	}
	if o.etcdMode != "embedded" && len(o.etcdEndpoints) == 0 {
		return fmt.Errorf("--etcd %q: say --etcd embedded, or give --etcd-endpoints", o.etcdMode)
	}
	var eps []notify.Endpoint
	if len(o.webhooks) > 0 {
		if eps, err = parseWebhooks(o.webhooks, o.secretFile); err != nil {
			return err
		}
	}
	if o.labURL == "" && o.hosts < 2 {
		return fmt.Errorf("--hosts: need at least 2")
	}
	id := replicaID(o.id)
	var rec daemon.Recorder
	if o.record != "" {
		files, err := record.Open(record.Options{File: o.record, Log: logger})
		if err != nil {
			return fmt.Errorf("--record: %w", err)
		}
		defer files.Close()
		rec = files
	}
	reg, err := newRegistry()
	if err != nil {
		return err
	}
	var be daemon.Backends
	var world *lab.World
	if o.labURL != "" {
		be = (&lab.Remote{URL: o.labURL, Replica: id}).Backends()
	} else {
		world = lab.NewWorld(clk.Now, o.rebootTime, p.SignalsConfig())
		gen := lab.NewGenerator(o.hosts, clk.Now(), o.starveAfter, world)
		gen.Ramp = o.ramp
		power, stopBMC, err := world.ServeBMC(ctx, gen.Hosts, o.bmcDelay, logger, reg)
		if err != nil {
			return err
		}
		defer stopBMC()
		be = world.Backends(gen)
		be.Power = power // fence through Redfish
		if o.groups > 0 {
			memb := labGroups(gen.Hosts, o.groups, o.reserved)
			be.Groups = func() *groups.Membership { return memb }
			if o.reserved > 0 {
				var rgs []playbook.ReservedGroup
				for _, d := range memb.Defs() {
					rgs = append(rgs, playbook.ReservedGroup{Group: d.Name, Hosts: d.Reserved})
				}
				r := playbook.NewReserve(rgs)
				r.Services = world
				be.Reserve = r
				world.SetGroups(memb.Of, r)
			}
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "fenced run --dev: %d lab hosts, mode %s, tick %s; %s starts starving in %s\n",
			o.hosts, p.PlaybookConfig().Mode, o.tick, gen.Victim, o.starveAfter)
	}

	// etcd: leader election, fencing token, host records, intents, audit
	var dataDir string
	if len(o.etcdEndpoints) == 0 {
		dataDir = o.dataDir
		if dataDir == "" {
			tmp, err := os.MkdirTemp("", "fenced-dev-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(tmp) // Ctrl-C leaves nothing behind
			dataDir = tmp
		}
	}
	cli, closeEtcd, err := lease.Open(ctx, lease.ClientConfig{Endpoints: o.etcdEndpoints, Username: o.etcdUser, Password: os.Getenv("FENCED_ETCD_PASSWORD"),
		CertFile: o.etcdCert, KeyFile: o.etcdKey, CAFile: o.etcdCA}, dataDir)
	if err != nil {
		return err
	}
	defer closeEtcd()
	if dataDir != "" {
		fmt.Fprintf(cmd.ErrOrStderr(), "fenced run: embedded etcd at %s (data %s)\n", cli.Endpoints()[0], dataDir)
	}
	d, err := daemon.NewReplica(ctx, daemon.ReplicaConfig{Policy: p, Clock: clk, Log: logger, Tick: o.tick, Etcd: cli,
		ID: id, TTL: o.ttl, Settle: o.settle, Backends: be, Webhooks: eps, Metrics: reg, Recorder: rec})
	if err != nil {
		return err
	}
	if world != nil {
		world.SetViews(d)
	}
	var ao []apiOpts
	if world != nil {
		ao = append(ao, apiOpts{servers: func(ctx context.Context, host string) ([]string, error) {
			ss, err := world.Servers(ctx, host)
			out := make([]string, 0, len(ss))
			for _, s := range ss {
				out = append(out, fmt.Sprintf("%s (%s) %s", s.Name, s.ID, s.Status))
			}
			return out, err
		}})
	}
	return serve(ctx, cmd, d, reg, be.Capacity, o.listen, nil, ao...)
}

// labGroupNames are the names of n lab groups.
func labGroupNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("rack-%d", i+1)
	}
	return out
}

// labGroups splits the lab's hosts, in order, into n groups of (nearly)
// equal size, with no guard of their own: saturation within each group
// applies, and a policy may override fields per group. The last reserved
// hosts of each group are its reserved hosts.
func labGroups(hosts []string, n, reserved int) *groups.Membership {
	names := labGroupNames(n)
	defs := make([]groups.Def, n)
	for i := range defs {
		lo, hi := i*len(hosts)/n, (i+1)*len(hosts)/n
		defs[i] = groups.Def{Name: names[i], Hosts: append([]string(nil), hosts[lo:hi]...)}
		if reserved > 0 {
			defs[i].Reserved = append([]string(nil), hosts[hi-reserved:hi]...)
		}
	}
	return groups.New(defs, groups.Nova{}, 1)
}

// serve runs the daemon and its HTTP API until ctx ends.
// apiOpts are the API's optional parts: its TLS certificate, and the sink
// of inbound alerts (run --config with an alerts: section).
type apiOpts struct {
	cert, key string
	alerts    api.AlertSink
	servers   func(ctx context.Context, host string) ([]string, error) // the incident view's servers (Nova)
}

// reg is the registry /metrics serves.
func serve(ctx context.Context, cmd *cobra.Command, d *daemon.Daemon, reg *prometheus.Registry, capacity func(string) report.Capacity, listen string,
	tokens map[string]api.Identity, opts ...apiOpts) error {
	ln, scheme, plaintext, err := listenAPI(listen, tokens, opts...)
	if err != nil {
		return err
	}
	reads := api.Reads{Audit: d.Audit(), Capacity: capacity, Metrics: reg}
	if len(opts) > 0 {
		reads.Alerts, reads.Servers = opts[0].alerts, opts[0].servers
	}
	h := api.New(d, reads, tokens)
	if err := h.Register(reg); err != nil {
		ln.Close()
		return err
	}
	if plaintext {
		warnPlaintext(logger, ln.Addr().String())
		h.SetPlaintext(true)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Fprintf(cmd.ErrOrStderr(), "status page: %s://%s/   API: %s://%s/api/v1/hosts   metrics: %s://%s/metrics\n",
		scheme, ln.Addr(), scheme, ln.Addr(), scheme, ln.Addr())

	go h.Run(ctx) // the console's history and event stream
	runErr := d.Run(ctx)
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdown)
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return runErr
}

// listenAPI opens the API's listener: loopback only unless there are
// tokens, HTTPS when a certificate is given. plaintext says it listens off
// loopback without TLS (tokens and data cross the network in clear).
func listenAPI(listen string, tokens map[string]api.Identity, tlsFiles ...apiOpts) (ln net.Listener, scheme string, plaintext bool, err error) {
	ln, err = net.Listen("tcp", listen)
	if err != nil {
		return nil, "", false, fmt.Errorf("listen %s: %w", listen, err)
	}
	loopback := false
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok {
		loopback = tcp.IP.IsLoopback()
	}
	if !loopback && tokens == nil {
		ln.Close()
		return nil, "", false, fmt.Errorf("listen %s: an API without tokens must stay on loopback", listen)
	}
	if len(tlsFiles) > 0 && tlsFiles[0].cert != "" {
		cert, err := tls.LoadX509KeyPair(tlsFiles[0].cert, tlsFiles[0].key)
		if err != nil {
			ln.Close()
			return nil, "", false, fmt.Errorf("API TLS certificate: %w", err)
		}
		return tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}), "https", false, nil
	}
	return ln, "http", !loopback, nil
}

// warnPlaintext says at start that the API listens off loopback without
// TLS; /metrics says it too (fenced_api_plaintext 1).
func warnPlaintext(log zerolog.Logger, addr string) {
	log.Warn().Str("listen", addr).Msg("API listens off loopback without TLS: bearer tokens and fleet data cross the network in clear; set api.tls_cert and api.tls_key")
}

// parseWebhooks reads --webhook values: URL or FORMAT:URL.
func parseWebhooks(vals []string, secretFile string) ([]notify.Endpoint, error) {
	var secret []byte
	if secretFile != "" {
		b, err := os.ReadFile(secretFile)
		if err != nil {
			return nil, fmt.Errorf("--webhook-secret-file: %w", err)
		}
		secret = bytes.TrimSpace(b)
	}
	var eps []notify.Endpoint
	for i, v := range vals {
		format, rawURL := notify.Generic, v
		if f, rest, ok := strings.Cut(v, ":"); ok && (f == "generic" || f == "slack" || f == "pagerduty") {
			format, rawURL = notify.Format(f), rest
		}
		u, err := url.Parse(rawURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("--webhook %q: want [generic:|slack:|pagerduty:]http(s)://host/path", v)
		}
		eps = append(eps, notify.Endpoint{Name: fmt.Sprintf("webhook-%d", i+1), URL: rawURL, Format: format, Secret: secret})
	}
	return eps, nil
}
