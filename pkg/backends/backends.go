// Package backends assembles a replica's real backends from a `fenced run
// --config` file: Nova (signals, the control plane, evacuation), one libvirt
// probe per host (signals, the live-migration gate), one Redfish fencer over
// the BMC inventory (power, the fence-path check), Prometheus, webhooks, and
// the host checker and reconciler built from them. The lab (pkg/lab) supplies
// the same daemon.Backends with simulated parts; the daemon cannot tell them
// apart.
package backends

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/trace"

	"github.com/fencedhq/fenced/pkg/clock"
	"github.com/fencedhq/fenced/pkg/config"
	"github.com/fencedhq/fenced/pkg/daemon"
	"github.com/fencedhq/fenced/pkg/fencing"
	"github.com/fencedhq/fenced/pkg/fencing/health"
	"github.com/fencedhq/fenced/pkg/fencing/redfish"
	"github.com/fencedhq/fenced/pkg/fleet"
	"github.com/fencedhq/fenced/pkg/groups"
	"github.com/fencedhq/fenced/pkg/hypervisor"
	"github.com/fencedhq/fenced/pkg/lease"
	"github.com/fencedhq/fenced/pkg/notify"
	"github.com/fencedhq/fenced/pkg/nova"
	"github.com/fencedhq/fenced/pkg/playbook"
	"github.com/fencedhq/fenced/pkg/policy"
	"github.com/fencedhq/fenced/pkg/signals"
	"github.com/fencedhq/fenced/pkg/signals/prom"
)

// Options says what to build.
type Options struct {
	Config *config.Config
	Policy *policy.Policy
	Clock  clock.Clock
	Log    zerolog.Logger
	Getenv func(string) string // default os.Getenv
	// Metrics receives the collectors of the signal registry, the Nova
	// client, the libvirt probes and the Redfish fencer (nil: none).
	Metrics prometheus.Registerer
	// Tracer receives the spans of the Nova client, the libvirt probes and
	// the Redfish fencer (nil: tracing off).
	Tracer trace.TracerProvider
}

// Production is the set of real backends of one replica.
type Production struct {
	Backends daemon.Backends
	Hosts    []string

	Nova   *nova.Client
	CP     *nova.ControlPlane
	Probes map[string]*hypervisor.Probe
	Power  *redfish.Fencer
	Gate   *hypervisor.Gate
	// Health checks every BMC on the config's schedule.
	Health *health.Checker
	// Groups keeps the membership of the config's groups (nil: no groups).
	Groups *groups.Refresher
	// Reserve holds the groups' reserved hosts (nil: none).
	Reserve *playbook.Reserve

	cfg   *config.Config
	clk   clock.Clock
	log   zerolog.Logger
	mu    sync.Mutex
	views func() []fleet.View
	// novaControl is what Nova said of a host at the last collection.
	novaControl func(host string) (signals.Control, bool)
	bmcCtx      context.Context      // bounds the BMC reads control starts
	bmcReading  map[string]time.Time // host → start of its last BMC read for control
	page        func(context.Context, playbook.Notification)
	closers     []func()
}

// Build connects to what the config names. An acting mode (approve, auto)
// needs the nova: and bmc: sections; observe needs at least one source of
// signals.
func Build(ctx context.Context, o Options) (*Production, error) {
	cfg := o.Config
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	p := &Production{cfg: cfg, clk: o.Clock, log: o.Log, Probes: map[string]*hypervisor.Probe{}}
	mode := o.Policy.PlaybookConfig().Mode
	if mode != playbook.ModeObserve {
		if cfg.Nova == nil {
			return nil, cfg.Errorf("nova", "mode %s acts through Nova: add a nova: section (or run with --mode observe)", mode)
		}
		if cfg.BMC == nil {
			return nil, cfg.Errorf("bmc", "mode %s powers hosts off through their BMCs: add a bmc: section (or run with --mode observe)", mode)
		}
	}
	tick := cfg.Tick
	reg := &signals.Registry{Timeout: tick / 2}
	hosts := map[string]bool{}
	for _, h := range cfg.Hosts {
		hosts[h] = true
	}
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
			return nil, cfg.Errorf("prometheus", "%v", err)
		}
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	if nc := cfg.Nova; nc != nil {
		cl, err := nova.New(ctx, nova.Config{Cloud: nc.Cloud, Region: nc.Region, Interface: nc.Interface, ReportInterval: nc.ReportInterval,
			CallTimeout: nc.CallTimeout, Clock: o.Clock, Logger: o.Log, Getenv: o.Getenv, Metrics: o.Metrics, Tracer: o.Tracer})
		if err != nil {
			return nil, cfg.Errorf("nova", "%v", err)
		}
		p.Nova = cl
		p.CP = &nova.ControlPlane{C: cl, DisableTimeout: nc.DisableTimeout}
		if e := nc.Evacuable; e != nil {
			p.CP.Evacuable = nova.Evacuable{FlavorExtraSpec: e.FlavorExtraSpec, ImageProperty: e.ImageProperty, AggregateMetadata: e.AggregateMetadata}
		}
		svcs, err := cl.Services(ctx)
		if err != nil {
			return nil, cfg.Errorf("nova", "list compute services: %v", err)
		}
		for _, s := range svcs {
			hosts[s.Host] = true
		}
		col := &nova.Collector{Client: cl}
		if err := reg.Register(col); err != nil {
			return nil, err
		}
		p.novaControl = col.Control
		p.Backends.Control = p.control
		p.Backends.Nova = p.CP
		p.Backends.EvacuateParallel = nc.EvacuateParallel
	}
	if cfg.BMC != nil {
		for h := range cfg.BMC.Hosts {
			hosts[h] = true
		}
	}
	if cfg.Libvirt != nil {
		for h := range cfg.Libvirt.Hosts {
			hosts[h] = true
		}
	}
	for h := range hosts {
		p.Hosts = append(p.Hosts, h)
	}
	sort.Strings(p.Hosts)

	if lc := cfg.Libvirt; lc != nil {
		var probes []*hypervisor.Probe
		uris := cfg.LibvirtURIs(p.Hosts)
		names := make([]string, 0, len(uris))
		for h := range uris {
			names = append(names, h)
		}
		sort.Strings(names)
		for _, h := range names {
			pr, err := hypervisor.NewProbe(hypervisor.ProbeConfig{Host: h, URI: uris[h], CallTimeout: lc.CallTimeout, Clock: o.Clock, Log: o.Log,
				Metrics: o.Metrics, Tracer: o.Tracer})
			if err != nil {
				p.Close()
				return nil, cfg.Errorf("libvirt", "%v", err)
			}
			p.closers = append(p.closers, pr.Close)
			p.Probes[h] = pr
			probes = append(probes, pr)
		}
		if err := reg.Register(&hypervisor.Collector{Probes: probes}); err != nil {
			p.Close()
			return nil, err
		}
	}
	if len(reg.Names()) == 0 {
		return nil, cfg.Errorf("prometheus", "no collectors configured (add a prometheus:, nova: or libvirt: section)")
	}
	// after every collector is registered: each has its series from the start
	if err := reg.RegisterMetrics(o.Metrics); err != nil {
		p.Close()
		return nil, err
	}
	p.Backends.Source = reg
	p.Backends.Hosts = p.Hosts

	if cfg.BMC != nil {
		targets, err := cfg.BMCTargets(p.Hosts, o.Getenv)
		if err != nil {
			p.Close()
			return nil, err
		}
		for h, t := range targets {
			if t.Insecure {
				o.Log.Warn().Str("host_id", h).Str("endpoint", t.Endpoint).Str("component", "redfish").
					Msg("BMC TLS verification is OFF (insecure: true): anyone on the path can impersonate this BMC")
			}
		}
		f, err := redfish.New(redfish.Config{Targets: targets, Clock: o.Clock, Log: o.Log, Metrics: o.Metrics, Tracer: o.Tracer})
		if err != nil {
			p.Close()
			return nil, cfg.Errorf("bmc", "%v", err)
		}
		p.Power = f
		p.Backends.Power = f
		hosts := make([]string, 0, len(targets))
		for h := range targets {
			hosts = append(hosts, h)
		}
		sort.Strings(hosts)
		hc, err := health.New(health.Config{BMC: f, Hosts: hosts, Interval: cfg.BMC.CheckInterval, Clock: o.Clock, Log: o.Log,
			OnChange: p.fencePathChanged})
		if err != nil {
			p.Close()
			return nil, err
		}
		p.Health = hc
		p.Backends.Unfenceable = hc.Unfenceable
		hctx, stop := context.WithCancel(ctx)
		p.closers = append(p.closers, stop)
		p.bmcCtx, p.bmcReading = hctx, map[string]time.Time{}
		go hc.Run(hctx)
	}
	pol := o.Policy.SignalsConfig()
	gc := hypervisor.GateConfig{}
	if s, ok := pol.Signals[signals.LibvirtLatency]; ok && s.Warn > 0 {
		gc.LatencyWarn = time.Duration(s.Warn * float64(time.Millisecond))
	}
	if s, ok := pol.Signals[signals.LibvirtTimeout]; ok && s.Warn > 0 {
		gc.TimeoutWarnPct = s.Warn
	}
	p.Gate = &hypervisor.Gate{Config: gc, Probes: p.Probes, Candidates: p.candidates, Need: p.need, Clock: o.Clock, Log: o.Log}
	if p.CP != nil {
		p.Gate.Headroom = p.CP.Headroom
	}
	p.Backends.Gate, p.Backends.Placer = p.Gate, p.Gate
	p.Backends.Checker = p
	p.Backends.Reconcile = p.reconcile
	if err := p.buildGroups(ctx, o); err != nil {
		p.Close()
		return nil, err
	}
	if err := p.buildReserved(); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// buildReserved holds the groups' reserved hosts (each one a host this
// replica knows) for placement, the actor and the replica, and gives each
// group its own evacuable filter.
func (p *Production) buildReserved() error {
	cfg := p.cfg
	if err := cfg.CheckReserved(p.Hosts); err != nil {
		return err
	}
	var rgs []playbook.ReservedGroup
	own := map[string]nova.Evacuable{}
	for _, g := range cfg.Groups {
		if len(g.ReservedHosts) > 0 {
			rgs = append(rgs, playbook.ReservedGroup{Group: g.Name, Hosts: g.ReservedHosts})
		}
		if e := g.Evacuable; e != nil {
			own[g.Name] = nova.Evacuable{FlavorExtraSpec: e.FlavorExtraSpec, ImageProperty: e.ImageProperty, AggregateMetadata: e.AggregateMetadata}
		}
	}
	if p.Groups != nil {
		p.Gate.Group = func(h string) string { return p.Groups.Current().Of(h) }
	}
	if len(own) > 0 && p.CP != nil {
		fleetWide := p.CP.Evacuable
		p.CP.EvacuableFor = func(h string) nova.Evacuable {
			if e, ok := own[p.Groups.Current().Of(h)]; ok {
				return e
			}
			return fleetWide
		}
	}
	if len(rgs) == 0 || p.CP == nil {
		return nil
	}
	r := playbook.NewReserve(rgs)
	r.Services = p.CP
	p.Reserve, p.Gate.Reserve, p.Backends.Reserve = r, r, r
	return nil
}

// buildGroups reads the membership of the config's groups once (a
// replica does not start without it: a host of a guarded group would
// otherwise be guarded by the fleet alone) and keeps it fresh. Explicit
// lists that both match a known host are refused here, as the config
// check refuses the overlaps it sees without the hosts.
func (p *Production) buildGroups(ctx context.Context, o Options) error {
	cfg := p.cfg
	defs := cfg.GroupDefs()
	if len(defs) == 0 {
		return nil
	}
	if c := groups.ExplicitConflicts(defs, p.Hosts); len(c) > 0 {
		return cfg.Errorf("groups", "%s matches the hosts of groups %s: a host is in at most one group", c[0].Host, strings.Join(c[0].Groups, " and "))
	}
	r := &groups.Refresher{Defs: defs, Clock: o.Clock, Log: o.Log, Hosts: func() []string { return p.Hosts }}
	if p.Nova != nil {
		r.Nova, r.Interval = NovaGroups(p.Nova), cfg.Nova.GroupRefresh
	}
	if err := r.Refresh(ctx); err != nil {
		return cfg.Errorf("groups", "%v", err)
	}
	gctx, stop := context.WithCancel(ctx)
	p.closers = append(p.closers, stop)
	go r.Run(gctx)
	p.Groups = r
	p.Backends.Groups, p.Backends.GroupsStatus = r.Current, r.Status
	return nil
}

// NovaGroups reads what Nova-derived groups need from the Nova client:
// aggregates with their hosts, and each compute's availability zone as
// Nova reports it for its service (the default zone included).
func NovaGroups(c *nova.Client) groups.Reader { return novaGroups{c} }

type novaGroups struct{ c *nova.Client }

func (n novaGroups) Aggregates(ctx context.Context) (map[string][]string, error) {
	aggs, err := n.c.Aggregates(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]string, len(aggs))
	for _, a := range aggs {
		out[a.Name] = append(out[a.Name], a.Hosts...)
	}
	return out, nil
}

func (n novaGroups) Zones(ctx context.Context) (map[string]string, error) {
	svcs, err := n.c.Services(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(svcs))
	for _, s := range svcs {
		out[s.Host] = s.Zone
	}
	return out, nil
}

// bmcReadEvery spaces the BMC reads control starts for one host.
const bmcReadEvery = 15 * time.Second

// control is what is known of a host beyond its signals: what Nova says,
// joined with the liveness of the host's other paths: its libvirt probe and
// its BMC's last power reading. A host whose libvirt stops answering gets a
// fresh BMC read (at most one every bmcReadEvery), so the hard-failure rule
// sees what the BMC says now, not at the last scheduled check. Without
// Nova nothing is known (the rules need its heartbeat).
func (p *Production) control(host string) (signals.Control, bool) {
	c, ok := p.novaControl(host)
	if !ok {
		return c, false
	}
	pr := p.Probes[host]
	if pr != nil {
		c.Libvirt = pr.Liveness()
	}
	if p.Health == nil {
		return c, true
	}
	last, seen := p.Health.Last(host)
	if seen && last.OK {
		c.BMCPower = string(last.PowerState)
	}
	if c.Libvirt.Failures > 0 {
		now := p.clk.Now()
		p.mu.Lock()
		due := now.Sub(p.bmcReading[host]) >= bmcReadEvery && (!seen || now.Sub(last.At) >= bmcReadEvery)
		if due {
			p.bmcReading[host] = now
		}
		p.mu.Unlock()
		if due {
			go p.Health.CheckNow(p.bmcCtx, host)
		}
	}
	return c, true
}

// Close stops the probes.
func (p *Production) Close() {
	for _, c := range p.closers {
		c()
	}
}

// Attach connects the backends to the replica they serve: the fleet's
// verdicts choose destinations, gate answers go to its audit log, and a
// broken fence path pages on-call through it (only while it leads).
func (p *Production) Attach(d *daemon.Daemon) {
	p.mu.Lock()
	p.views = func() []fleet.View { return d.Snapshot().Hosts }
	p.page = d.Page
	p.mu.Unlock()
	p.Gate.Audit = d
	if p.Health != nil {
		// a new leader pages the fence paths already known broken: the
		// replica that saw them break may not have been leading then
		d.OnLead(func(context.Context) {
			for h, why := range p.Health.Unfenceable() {
				p.fencePathChanged(h, false, why)
			}
		})
	}
}

// Notification states of the fence-path check (not playbook states).
const (
	StateUnfenceable playbook.State = "unfenceable"
	StateFenceable   playbook.State = "fenceable"
)

// fencePathChanged pages when a host's BMC check starts or stops failing:
// before the fence path is needed.
func (p *Production) fencePathChanged(host string, ok bool, why string) {
	p.mu.Lock()
	page := p.page
	p.mu.Unlock()
	if page == nil {
		return
	}
	n := playbook.Notification{Host: host, State: StateUnfenceable, Reason: "fence path broken: " + why}
	if ok {
		n = playbook.Notification{Host: host, State: StateFenceable, Reason: "fence path works again"}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	page(ctx, n)
}

// candidates lists the hosts that may take servers off host: verdict
// normal (execution truth, not Nova's word), state normal, Nova's service
// up, enabled and not forced down. The gate reads their headroom lazily.
func (p *Production) candidates(ctx context.Context, host string) ([]hypervisor.Destination, error) {
	if p.CP == nil {
		return nil, errors.New("no nova: section: no destinations")
	}
	p.mu.Lock()
	views := p.views
	p.mu.Unlock()
	if views == nil {
		return nil, errors.New("fleet not attached yet")
	}
	svcs, err := p.Nova.Services(ctx)
	if err != nil {
		return nil, err
	}
	usable := map[string]bool{}
	for _, s := range svcs {
		usable[s.Host] = TakesServers(s, p.Reserve)
	}
	var out []hypervisor.Destination
	for _, v := range views() {
		h := v.Host.Name
		if h == host || !usable[h] || v.Host.State != playbook.Normal || v.Verdict.Blind || v.Verdict.Level != signals.LevelNormal {
			continue
		}
		out = append(out, hypervisor.Destination{Host: h, State: string(v.Host.State), D: v.Verdict.D})
	}
	return out, nil
}

// TakesServers is Nova's side of whether a host may take servers off a
// fenced one: its compute service up, enabled and not forced down. A spare
// of r is kept disabled and still counts: the gate takes it only for its
// own group.
func TakesServers(s nova.Service, r *playbook.Reserve) bool {
	return s.Up && (s.Enabled || r.Spare(s.Host)) && !s.ForcedDown
}

// need is what host's servers require together.
func (p *Production) need(ctx context.Context, host string) (hypervisor.Need, error) {
	var need hypervisor.Need
	if p.CP == nil {
		return need, errors.New("no nova: section")
	}
	servers, err := p.CP.Servers(ctx, host)
	if err != nil {
		return need, err
	}
	for _, s := range servers {
		need.VCPUs += s.VCPUs
		need.RAMMB += s.RAMMB
	}
	return need, nil
}

// Back implements playbook.HostChecker: a power-cycled host is back when
// its BMC reads On, Nova sees a fresh heartbeat (within two report
// intervals) and libvirt answered recently.
func (p *Production) Back(ctx context.Context, host string) (bool, error) {
	if p.Power != nil {
		st, err := p.Power.PowerState(ctx, host)
		if err != nil || st != fencing.On {
			return false, err
		}
	}
	if p.Nova != nil {
		s, err := p.Nova.ServiceStatus(ctx, host)
		if err != nil {
			return false, err
		}
		if !s.LagKnown || s.HeartbeatLag > p.reportInterval() {
			return false, nil
		}
	}
	if pr, ok := p.Probes[host]; ok {
		now := p.clk.Now()
		st := pr.Stats(now)
		if st.LastAnswer.IsZero() || now.Sub(st.LastAnswer) > max(3*p.cfg.Tick, 10*time.Second) {
			return false, nil
		}
		// the host is back: the timeouts measured while it was frozen or off
		// describe a daemon that no longer runs
		pr.Forget(now)
	}
	return true, nil
}

func (p *Production) reportInterval() time.Duration {
	if p.cfg.Nova != nil && p.cfg.Nova.ReportInterval > 0 {
		return p.cfg.Nova.ReportInterval
	}
	return 10 * time.Second
}

// reconcile tells a new leader whether an intent a previous leader left
// without an outcome happened, from the BMC's power state and Nova's
// service and migration records.
func (p *Production) reconcile(ctx context.Context, in lease.Intent) (bool, error) {
	switch in.Action {
	case "power_off", "power_on":
		if p.Power == nil {
			return false, nil
		}
		st, err := p.Power.PowerState(ctx, in.Host)
		if err != nil {
			return false, err
		}
		return fencing.Reached(in.Action, st), nil
	case "evacuate", "live_migrate":
		if p.CP == nil || in.Target == "" {
			return false, nil
		}
		typ := "evacuation"
		if in.Action == "live_migrate" {
			typ = "live-migration"
		}
		_, found, err := p.CP.MigrationSince(ctx, in.Target, typ, in.At)
		return found, err
	case "force_down", "force_down_off", "disable", "enable", "disable_reserved", "enable_reserved":
		if p.Nova == nil {
			return false, nil
		}
		s, err := p.Nova.ServiceStatus(ctx, in.Host)
		if err != nil {
			return false, err
		}
		switch in.Action {
		case "force_down":
			return s.ForcedDown, nil
		case "force_down_off":
			return !s.ForcedDown, nil
		case "disable", "disable_reserved":
			return !s.Enabled, nil
		}
		return s.Enabled, nil
	}
	// a power cycle cannot be told apart from no action by reading the
	// power state: not done, and the playbook's wait for the host decides
	return false, nil
}

// Webhooks turns the config's webhooks into notifier endpoints.
func Webhooks(cfg *config.Config, getenv func(string) string) ([]notify.Endpoint, error) {
	var eps []notify.Endpoint
	for i, w := range cfg.Webhooks {
		ep := notify.Endpoint{Name: w.Name, URL: w.URL, Format: notify.Format(w.Format)}
		if w.RoutingKey != "" {
			ep.RoutingKey = getenv(w.RoutingKey)
		}
		if ep.Name == "" {
			ep.Name = fmt.Sprintf("webhook-%d", i+1)
		}
		if ep.Format == "" {
			ep.Format = notify.Generic
		}
		if w.SecretFile != "" {
			b, err := os.ReadFile(w.SecretFile)
			if err != nil {
				return nil, cfg.Errorf(fmt.Sprintf("webhooks[%d].secret_file", i), "%v", err)
			}
			ep.Secret = bytes.TrimSpace(b)
		}
		eps = append(eps, ep)
	}
	return eps, nil
}
