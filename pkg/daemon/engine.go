// Package daemon is `fenced run`, in two halves:
//
//   - the engine (engine.go): each tick it collects samples, runs the fleet
//     (evaluator + playbooks), applies operator commands and publishes the
//     snapshot the HTTP API serves. One goroutine owns the fleet; everything
//     else talks to it through channels or reads the snapshot.
//   - the replication (replication.go): leader election on etcd, resuming
//     host records and the pause, reconciling a previous leader's intents,
//     persisting changed records, forwarding followers' commands. The engine
//     runs only while this replica leads, the way controller-runtime runs
//     leader-only runnables; a follower serves the leader's records.
//
// NewReplica (replica.go) is the one constructor: `run --dev` gives it the
// lab's backends, `run --config` the real ones (pkg/backends). A single
// replica runs the same path on an embedded etcd.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/fencedhq/fenced/internal/metrics"
	"github.com/fencedhq/fenced/internal/obs"
	"github.com/fencedhq/fenced/pkg/audit"
	"github.com/fencedhq/fenced/pkg/clock"
	"github.com/fencedhq/fenced/pkg/fleet"
	"github.com/fencedhq/fenced/pkg/groups"
	"github.com/fencedhq/fenced/pkg/lease"
	"github.com/fencedhq/fenced/pkg/playbook"
	"github.com/fencedhq/fenced/pkg/policy"
	"github.com/fencedhq/fenced/pkg/record"
	"github.com/fencedhq/fenced/pkg/signals"
)

// Source produces the samples of one tick.
type Source interface {
	Collect(ctx context.Context, now time.Time) ([]signals.Sample, error)
}

// Config wires a daemon.
type Config struct {
	Policy  *policy.Policy
	Tick    time.Duration // default 10 s
	Clock   clock.Clock
	Log     zerolog.Logger
	Source  Source
	Actor   *playbook.Actor
	Control func(host string) (signals.Control, bool) // what Nova says; nil if unknown
	Hosts   []string                                  // hosts known up front (others appear with their samples)
	// History is how many recent state changes the snapshot keeps.
	History int
	// Audit receives every decision and operator command (nil: none).
	Audit *audit.Log
	// HA is the replication: leadership, host records, intents and the
	// audit chain on etcd (one replica alone runs on an embedded etcd).
	HA *HA
	// Webhooks reports webhook delivery counters (nil: no webhooks).
	Webhooks func() map[string]int64
	// Unfenceable reports hosts whose fence path (BMC) failed its last
	// check, with why (nil: no checks).
	Unfenceable func() map[string]string
	// MaxActions bounds the hosts whose entry actions run at once, off the
	// loop (default 32). Irreversible ones are bounded further by the storm
	// guard.
	MaxActions int
	// Recorder sees what each tick observed (nil: nothing is recorded).
	Recorder Recorder
	// Metrics receives the engine's collectors (nil: none).
	Metrics prometheus.Registerer
	// Tracer receives a span per tick and one trace per host incident
	// (nil: tracing off).
	Tracer trace.TracerProvider
	// Groups is the group membership in force (a groups.Refresher's
	// Current; nil: every host in the default group), and GroupsStatus its
	// last refresh (nil: nothing refreshes it).
	Groups       func() *groups.Membership
	GroupsStatus func() groups.Status
}

// Recorder takes what the engine observed at each tick: the samples it
// collected, what the control plane said of each host, the collectors'
// errors and the unfenceable hosts (pkg/record writes it as a trace that
// `fenced simulate` replays). Tick runs on the loop: it must not block.
type Recorder interface {
	Tick(o record.Observation)
}

// Snapshot is what readers see: every host, recent changes, counters.
type Snapshot struct {
	At            time.Time         `json:"t"`
	Mode          playbook.Mode     `json:"mode"`
	PolicyVersion string            `json:"policy_version"`
	Hosts         []fleet.View      `json:"hosts"`
	Changes       []playbook.Change `json:"changes"`
	Ticks         int64             `json:"ticks"`
	TickSeconds   float64           `json:"last_tick_seconds"`
	Transitions   map[string]int64  `json:"transitions"` // by target state
	Counts        playbook.Fleet    `json:"counts"`
	SampleErrors  int64             `json:"sample_errors"`
	Paused        bool              `json:"paused"`
	Leader        bool              `json:"leader"`              // this replica leads
	LeaderID      string            `json:"leader_id,omitempty"` // who leads
	Token         int64             `json:"fence_token,omitempty"`
	EtcdWrites    int64             `json:"etcd_writes"`
	// TickDrift is how late the last tick ran against its schedule: a
	// controller starved like its hosts (section 5.4) sees it grow.
	TickDrift  float64                   `json:"tick_drift_seconds"`
	Collectors []signals.CollectorStatus `json:"collectors,omitempty"`
	SignalAges map[signals.Name]float64  `json:"signal_age_seconds,omitempty"`
	Webhooks   map[string]int64          `json:"webhooks,omitempty"` // deliveries by outcome
	// Unfenceable lists hosts whose BMC failed its last fence-path check.
	Unfenceable map[string]string `json:"unfenceable,omitempty"`
	// Groups is every group with its counts and guard, configured groups in
	// file order and the default group last (the leader's view; a
	// follower lists none).
	Groups []fleet.GroupView `json:"groups,omitempty"`
	// PausedGroups are the groups an operator paused, by name.
	PausedGroups map[string]lease.GroupPause `json:"paused_groups,omitempty"`
	// GroupMembership is the last refresh of groups defined in Nova.
	GroupMembership *groups.Status `json:"group_membership,omitempty"`
}

type op struct {
	host, operator, reason string
	group                  string // a group's pause and resume
	ev                     playbook.Event
	reply                  chan opResult
}

type opResult struct {
	changes []playbook.Change
	err     error
}

// Daemon runs the loop.
type Daemon struct {
	cfg   Config
	fleet *fleet.Fleet
	ops   chan op

	mu   sync.RWMutex
	snap Snapshot

	ha      haState
	metrics engineMetrics
	writes  atomic.Int64
	remote  chan lease.Command // commands forwarded through etcd (leader only)
	onLead  []func(context.Context)

	// Actions run off the loop (playbook.Actor.Async): at most MaxActions
	// at once; each outcome comes back through done to the loop.
	term     context.Context // the leadership term the loop runs in (loop goroutine only)
	actions  chan struct{}
	done     chan jobDone
	inFlight atomic.Int64

	// seen collects what the control plane said of each host during a
	// tick, for the recorder (loop goroutine only; nil when not recording)
	seen map[string]signals.Control
	// ring keeps the last ticks' observations while the API is polled for
	// them (fenced trace record)
	ring *record.Ring
	// pauses is the operator's pauses as stored in etcd (loop goroutine
	// only): fleet-wide and per group, written whole under the leader guard
	pauses lease.Fleet

	reloading // the policy in force and the webhooks, reloaded on SIGHUP (reload.go)

	tr        trace.Tracer
	incidents incidents // one trace per host episode (tracing.go)

	// reserved hosts (reserved.go): the last keeping pass (loop goroutine
	// only) and whether one runs
	keptAt  time.Time
	keeping atomic.Bool
}

// jobDone is the outcome of one host's actions, for the loop.
type jobDone struct {
	term context.Context // the term that started it: a late outcome of an old term is dropped
	host string
	res  playbook.JobResult
}

// DefaultMaxActions bounds the hosts whose actions run at once.
const DefaultMaxActions = 32

// newDaemon validates the configuration and builds the engine; NewReplica
// adds the replication.
func newDaemon(cfg Config) (*Daemon, error) {
	if cfg.Policy == nil || cfg.Source == nil || cfg.Actor == nil || cfg.HA == nil {
		return nil, errors.New("daemon: policy, source, actor and replication are required")
	}
	if cfg.Tick <= 0 {
		cfg.Tick = 10 * time.Second
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.History <= 0 {
		cfg.History = 500
	}
	if cfg.MaxActions <= 0 {
		cfg.MaxActions = DefaultMaxActions
	}
	d := &Daemon{cfg: cfg, ops: make(chan op), remote: make(chan lease.Command),
		actions: make(chan struct{}, cfg.MaxActions), done: make(chan jobDone, cfg.MaxActions)}
	// entry actions never hold the loop: ticks, operator commands and the
	// API go on while a BMC or Nova takes its time
	cfg.Actor.Async = d.async
	d.tr = obs.Tracer(cfg.Tracer)
	d.incidents.tr = d.tr
	cfg.Actor.Scope = d.scope
	d.ring = record.NewRing(record.DefaultRing, record.DefaultRingIdle)
	control := cfg.Control
	if control != nil {
		control = func(host string) (signals.Control, bool) {
			c, ok := cfg.Control(host)
			if ok && d.seen != nil {
				d.seen[host] = c
			}
			return c, ok
		}
	}
	f, err := fleet.New(cfg.Policy.SignalsConfig(), cfg.Policy.PlaybookConfig(), cfg.Actor, fleet.Hooks{Control: control})
	if err != nil {
		return nil, err
	}
	if err := f.SetPolicies(cfg.Policy.SignalsConfig(), cfg.Policy.PlaybookConfig(), cfg.Policy.FleetGroups()); err != nil {
		return nil, err
	}
	if cfg.Groups != nil {
		f.SetMembership(cfg.Groups)
	}
	for _, h := range cfg.Hosts {
		f.Add(h)
	}
	d.fleet = f
	d.initReload(cfg.Policy)
	if err := d.registerMetrics(cfg.Metrics); err != nil {
		return nil, err
	}
	d.snap = Snapshot{Mode: cfg.Policy.PlaybookConfig().Mode, PolicyVersion: cfg.Policy.Version(), Transitions: map[string]int64{}}
	d.publish(cfg.Clock.Now(), nil, 0, false)
	return d, nil
}

// Fleet gives the engine to wiring code that must see it before Run (the
// lab world's gate). Only Run's goroutine may use it once Run started.
func (d *Daemon) Fleet() *fleet.Fleet { return d.fleet }

// Snapshot returns the latest snapshot (shared; do not modify).
func (d *Daemon) Snapshot() Snapshot {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.snap
}

// Operate asks the loop to apply an operator's event and waits for the result.
func (d *Daemon) Operate(ctx context.Context, host string, ev playbook.Event, operator, reason string) ([]playbook.Change, error) {
	if operator == "" || reason == "" {
		return nil, errors.New("daemon: an operator name and a reason are required")
	}
	return d.submit(ctx, op{host: host, ev: ev, operator: operator, reason: reason})
}

// submit hands an operator's command to the loop (forwarded to the leader
// through etcd on a follower) and waits for the result.
func (d *Daemon) submit(ctx context.Context, o op) ([]playbook.Change, error) {
	if d.ha.get() == nil {
		return d.forward(ctx, o)
	}
	reply := make(chan opResult, 1)
	o.reply = reply
	select {
	case d.ops <- o:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case r := <-reply:
		return r.changes, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Fleet-wide and per-group operator events.
const (
	evPause       playbook.Event = "pause"
	evResume      playbook.Event = "resume"
	evPauseGroup  playbook.Event = "pause_group"
	evResumeGroup playbook.Event = "resume_group"
)

// SetPaused pauses or resumes fencing fleet-wide.
func (d *Daemon) SetPaused(ctx context.Context, paused bool, operator, reason string) error {
	ev := evResume
	if paused {
		ev = evPause
	}
	_, err := d.Operate(ctx, "", ev, operator, reason)
	return err
}

// ErrUnknownGroup is the error of a pause of a group fenced does not know.
var ErrUnknownGroup = errors.New("unknown group")

// SetGroupPaused pauses or resumes fencing in one group: stored in etcd
// under the leader guard like the fleet-wide pause, and audited.
func (d *Daemon) SetGroupPaused(ctx context.Context, group string, paused bool, operator, reason string) error {
	if operator == "" || reason == "" {
		return errors.New("daemon: an operator name and a reason are required")
	}
	if group == "" {
		return errors.New("daemon: a group name is required")
	}
	ev := evResumeGroup
	if paused {
		ev = evPauseGroup
	}
	_, err := d.submit(ctx, op{group: group, ev: ev, operator: operator, reason: reason})
	return err
}

// Run campaigns until ctx ends: while this replica leads, the engine ticks
// (leader-only work); otherwise it follows the leader's records.
func (d *Daemon) Run(ctx context.Context) error {
	return d.runHA(ctx)
}

// async runs one host's actions off the loop (playbook.Actor.Async), in
// the current leadership term: when the term ends the actions' context is
// canceled, and their journal refuses any further intent.
func (d *Daemon) async(host string, job playbook.Job) {
	ctx := d.term
	d.inFlight.Add(1)
	go func() {
		defer d.inFlight.Add(-1)
		select {
		case d.actions <- struct{}{}:
		case <-ctx.Done():
			return
		}
		res := job(ctx)
		<-d.actions
		select {
		case d.done <- jobDone{ctx, host, res}:
		case <-ctx.Done():
		}
	}()
}

// Observations returns the observations of the ticks after since, oldest
// first, and whether some were already forgotten (GET
// /api/v1/observations). The replica keeps the last few ticks only while
// someone asks for them; the first call starts keeping.
func (d *Daemon) Observations(since time.Time) ([]record.Observation, bool) {
	return d.ring.Since(since)
}

// ActionsInFlight is how many hosts have actions running off the loop.
func (d *Daemon) ActionsInFlight() int64 { return d.inFlight.Load() }

// Get is one host as the last snapshot shows it: safe from any goroutine
// (the lab world's gate reads it from actions running off the loop).
func (d *Daemon) Get(host string) (fleet.View, bool) {
	snap := d.Snapshot()
	i := sort.Search(len(snap.Hosts), func(i int) bool { return snap.Hosts[i].Host.Name >= host })
	if i < len(snap.Hosts) && snap.Hosts[i].Host.Name == host {
		return snap.Hosts[i], true
	}
	return fleet.View{}, false
}

// complete takes an action's outcome back on the loop.
func (d *Daemon) complete(ctx context.Context, j jobDone) error {
	now := d.cfg.Clock.Now()
	ch, err := d.fleet.Complete(ctx, now, j.host, j.res)
	for _, c := range ch {
		d.cfg.Log.Info().Str("host_id", c.Host).Str("state", string(c.To)).Str("from", string(c.From)).
			Float64("d", c.D).Str("reason", c.Reason).Msg("state change")
	}
	if err != nil {
		d.cfg.Log.Warn().Str("host_id", j.host).Err(err).Msg("action outcome")
	}
	d.recordChanges(ctx, ch)
	if err := d.persist(ctx); err != nil {
		return err
	}
	d.publish(now, ch, 0, false)
	return nil
}

func (d *Daemon) loop(ctx context.Context) error {
	log := d.cfg.Log
	next := d.cfg.Clock.Now()
	d.term = ctx
	for {
		wait := next.Sub(d.cfg.Clock.Now())
		select {
		case <-ctx.Done():
			return nil
		case j := <-d.done:
			if j.term != ctx {
				continue // an outcome of an earlier term: the records were resumed since
			}
			if err := d.complete(ctx, j); err != nil {
				log.Error().Err(err).Msg("cannot persist host records; stepping down")
				return err
			}
		case o := <-d.ops:
			ch, err, perr := d.apply(ctx, o)
			o.reply <- opResult{ch, err}
			if perr != nil {
				return perr
			}
		case r := <-d.reloads:
			r.reply <- d.applyReload(ctx, r.r, true)
		case c := <-d.remote:
			o := op{host: c.Host, group: c.Group, ev: playbook.Event(c.Event), operator: c.Operator, reason: c.Reason}
			ch, err, perr := d.apply(ctx, o)
			if perr != nil {
				return perr
			}
			if aerr := d.answer(ctx, c.ID, ch, err); aerr != nil {
				return aerr
			}
		case <-d.cfg.Clock.After(wait):
			now := d.cfg.Clock.Now()
			drift := now.Sub(next)
			start := time.Now()
			tctx, call := obs.Start(ctx, d.tr, d.cfg.Clock, "fenced.tick", obs.Fields{Component: "daemon", Action: "tick", FenceToken: d.token()}, trace.SpanKindInternal)
			call.Set(attribute.Float64("tick_drift_seconds", max(drift.Seconds(), 0)))
			err := d.tick(tctx, now)
			if err == nil {
				if err = d.persist(tctx); err != nil {
					log.Error().Err(err).Msg("cannot persist host records; stepping down")
				}
			}
			call.End(log.Debug(), metrics.Outcome(err), err).Msg("tick")
			if err != nil {
				return err
			}
			next = next.Add(d.cfg.Tick)
			if behind := now.Sub(next); behind > 0 {
				// the controller itself is starved (section 5.4): say so, skip missed ticks
				log.Warn().Dur("behind", behind).Msg("tick overran; the controller is starved")
				next = now.Add(d.cfg.Tick)
			}
			took := time.Since(start)
			d.metrics.tick.Observe(took.Seconds())
			d.mu.Lock()
			d.snap.TickSeconds, d.snap.TickDrift = took.Seconds(), max(drift.Seconds(), 0)
			if sm, ok := d.cfg.Source.(selfMonitor); ok {
				d.snap.Collectors = sm.Status()
				ages := map[signals.Name]float64{}
				for n, a := range sm.SignalAges() {
					ages[n] = a.Seconds()
				}
				d.snap.SignalAges = ages
			}
			d.mu.Unlock()
		}
	}
}

// record appends to the audit log; a failing audit log is logged loudly
// but does not stop the loop (the intents of irreversible actions are
// journalled separately and do stop their action).
func (d *Daemon) record(ctx context.Context, r audit.Record) {
	if d.cfg.Audit == nil {
		return
	}
	if _, err := d.cfg.Audit.Append(ctx, r); err != nil {
		obs.Fields{Component: "audit", RequestID: r.RequestID, HostID: r.HostID, VMID: r.VMID, Action: r.Action, FenceToken: r.FenceToken}.
			Log(d.cfg.Log.Error().Err(err), 0, "error").Msg("audit append failed")
	}
}

// recordChanges audits every decision with the verdict and policy behind it.
func (d *Daemon) recordChanges(ctx context.Context, ch []playbook.Change) {
	for _, c := range ch {
		var cpu float64
		if v, ok := d.fleet.Get(c.Host); ok {
			cpu = steal(v)
		}
		d.record(ctx, audit.Record{Timestamp: c.At, Component: "playbook", HostID: c.Host,
			Action: "transition " + string(c.From) + "→" + string(c.To), Outcome: audit.OutcomeOK,
			D: c.D, Verdict: c.Reason, CPUStealPct: cpu, PolicyVersion: d.Policy().Version()})
		d.incidents.changed(c)
	}
}

// token is the fencing token while this replica leads (0 otherwise).
func (d *Daemon) token() int64 {
	if l := d.ha.get(); l != nil {
		return l.Token
	}
	return 0
}

// Audit is the replica's audit chain (in etcd): the API and the CLI read it
// through pkg/audit.
func (d *Daemon) Audit() *audit.Log { return d.cfg.Audit }

// apply carries out an operator's command on the loop's goroutine. perr is
// a persistence failure that ends the leader's term.
func (d *Daemon) apply(ctx context.Context, o op) (ch []playbook.Change, err, perr error) {
	now := d.cfg.Clock.Now()
	// the command is in the audit chain (in etcd) before anything it allows
	// runs: a crash right after still shows who approved
	detail := o.reason
	if o.group != "" {
		detail = "group " + o.group + ": " + o.reason
	}
	req := audit.Record{Timestamp: now, Component: "api", HostID: o.host, Action: string(o.ev), Operator: o.operator,
		Outcome: "requested", Detail: detail, PolicyVersion: d.Policy().Version()}
	if d.cfg.Audit != nil {
		if _, aerr := d.cfg.Audit.Append(ctx, req); aerr != nil {
			return nil, fmt.Errorf("daemon: %s not applied: cannot audit it first: %w", o.ev, aerr), nil
		}
	}
	switch o.ev {
	case evPause, evResume:
		err = d.setPaused(ctx, o)
	case evPauseGroup, evResumeGroup:
		err = d.setGroupPaused(ctx, o)
	default:
		ch, err = d.fleet.Operate(ctx, now, o.host, o.ev, o.operator+": "+o.reason)
	}
	ev := obs.Fields{Component: "api", HostID: o.host, Action: string(o.ev), FenceToken: d.token()}.Log(d.cfg.Log.Info(), 0, outcome(err))
	if o.group != "" {
		ev = ev.Str("group", o.group)
	}
	ev.Str("operator", o.operator).AnErr("error", err).Msg("operator command")
	rec := req
	rec.Outcome = outcome(err)
	if err != nil {
		rec.Detail += "; refused: " + err.Error()
	}
	d.record(ctx, rec)
	d.recordChanges(ctx, ch)
	perr = d.persist(ctx)
	d.publish(now, ch, 0, false)
	return ch, err, perr
}

// setPaused stores the fleet-wide pause in etcd (under the leader guard)
// before the engine honours it, so that it survives every replica's restart.
func (d *Daemon) setPaused(ctx context.Context, o op) error {
	paused := o.ev == evPause
	l := d.ha.get()
	if l == nil {
		return ErrFollower
	}
	f := lease.Fleet{Paused: paused, Operator: o.operator, Reason: o.reason, At: d.cfg.Clock.Now(), Groups: d.pauses.Groups}
	if err := d.cfg.HA.Store.PutFleet(ctx, *l, f); err != nil {
		return fmt.Errorf("daemon: store the pause: %w", err)
	}
	d.pauses = f
	d.fleet.SetPaused(paused)
	return nil
}

// setGroupPaused stores a group's pause in etcd (under the leader guard,
// beside the fleet-wide pause) before the engine honours it. Only a
// configured group (or the default one) can be paused; a pause stored for
// a group no longer configured can still be lifted.
func (d *Daemon) setGroupPaused(ctx context.Context, o op) error {
	paused := o.ev == evPauseGroup
	l := d.ha.get()
	if l == nil {
		return ErrFollower
	}
	_, stored := d.pauses.Groups[o.group]
	if !d.fleet.KnownGroup(o.group) && !(stored && !paused) {
		return fmt.Errorf("daemon: %w %q (known: %s)", ErrUnknownGroup, o.group, strings.Join(d.groupNames(), ", "))
	}
	f := d.pauses
	f.Groups = make(map[string]lease.GroupPause, len(d.pauses.Groups)+1)
	for g, p := range d.pauses.Groups {
		f.Groups[g] = p
	}
	if paused {
		f.Groups[o.group] = lease.GroupPause{Operator: o.operator, Reason: o.reason, At: d.cfg.Clock.Now()}
	} else {
		delete(f.Groups, o.group)
	}
	if len(f.Groups) == 0 {
		f.Groups = nil
	}
	if err := d.cfg.HA.Store.PutFleet(ctx, *l, f); err != nil {
		return fmt.Errorf("daemon: store the pause of group %s: %w", o.group, err)
	}
	d.pauses = f
	d.fleet.SetGroupPaused(o.group, paused)
	return nil
}

// groupNames are the groups an operator can pause, in file order.
func (d *Daemon) groupNames() []string {
	var out []string
	for _, g := range d.fleet.Groups() {
		out = append(out, g.Name)
	}
	return out
}

// applyPauses makes the engine honour the pauses stored in etcd (a new
// leader resuming them).
func (d *Daemon) applyPauses(f lease.Fleet) {
	d.pauses = f
	d.fleet.SetPaused(f.Paused)
	for _, g := range d.fleet.PausedGroups() {
		if _, ok := f.Groups[g]; !ok {
			d.fleet.SetGroupPaused(g, false)
		}
	}
	for g := range f.Groups {
		d.fleet.SetGroupPaused(g, true)
	}
}

func outcome(err error) string {
	if err != nil {
		return "error"
	}
	return "ok"
}

func (d *Daemon) tick(ctx context.Context, now time.Time) error {
	samples, cerr := d.cfg.Source.Collect(ctx, now)
	if err := cerr; err != nil {
		// a source that fails leaves its signals to go stale (→ blind), never healthy
		d.cfg.Log.Warn().Err(err).Msg("collect failed")
	}
	var bad int64
	for _, s := range samples {
		if err := d.fleet.Observe(s); err != nil {
			bad++
			d.cfg.Log.Warn().Str("host_id", s.Host).Err(err).Msg("sample rejected")
		}
	}
	observe := d.cfg.Recorder != nil || d.ring.Wanted()
	if observe {
		d.seen = make(map[string]signals.Control, d.fleet.Len())
	}
	ch, err := d.fleet.Tick(ctx, now)
	d.keepReservedDue(ctx, now)
	o := record.Observation{At: now}
	if observe {
		o.Samples, o.Control, o.Errors = samples, d.seen, record.ErrorStrings(cerr)
		if d.cfg.Unfenceable != nil {
			o.Unfenceable = d.cfg.Unfenceable()
		}
		if d.cfg.Groups != nil {
			o.Groups = d.cfg.Groups()
		}
		if d.cfg.Recorder != nil {
			d.cfg.Recorder.Tick(o)
		}
		d.seen = nil
	}
	d.ring.Tick(o)
	for _, c := range ch {
		d.cfg.Log.Info().Str("host_id", c.Host).Str("state", string(c.To)).Str("from", string(c.From)).
			Float64("d", c.D).Str("reason", c.Reason).Msg("state change")
	}
	d.recordChanges(ctx, ch)
	d.publish(now, ch, bad, true)
	if err != nil {
		return fmt.Errorf("daemon: tick: %w", err)
	}
	return nil
}

func (d *Daemon) publish(now time.Time, ch []playbook.Change, bad int64, ticked bool) {
	views := d.fleet.Views()
	d.mu.Lock()
	defer d.mu.Unlock()
	s := &d.snap
	s.At, s.Hosts, s.Counts, s.Paused = now, views, d.fleet.Counts(), d.fleet.Paused()
	s.Groups, s.PausedGroups = d.fleet.Groups(), d.pauses.Groups
	if d.cfg.GroupsStatus != nil {
		st := d.cfg.GroupsStatus()
		s.GroupMembership = &st
	}
	s.EtcdWrites = d.writes.Load()
	if d.cfg.Webhooks != nil {
		s.Webhooks = d.cfg.Webhooks()
	}
	if d.cfg.Unfenceable != nil {
		s.Unfenceable = d.cfg.Unfenceable()
	}
	s.SampleErrors += bad
	if len(ch) > 0 {
		tr := make(map[string]int64, len(s.Transitions)+1)
		for k, v := range s.Transitions {
			tr[k] = v
		}
		for _, c := range ch {
			tr[string(c.To)]++
		}
		s.Transitions = tr
		all := append(append([]playbook.Change(nil), s.Changes...), ch...)
		if len(all) > d.cfg.History {
			all = all[len(all)-d.cfg.History:]
		}
		s.Changes = all
	}
	if ticked {
		s.Ticks++
	}
}

func sortViews(v []fleet.View) {
	sort.Slice(v, func(i, j int) bool { return v[i].Host.Name < v[j].Host.Name })
}

// GateAnswered records a live-migration gate answer in the audit log
// (hypervisor.AuditSink).
func (d *Daemon) GateAnswered(ctx context.Context, host string, a playbook.GateAnswer) {
	out := "closed"
	if a.Allowed {
		out = "open"
	}
	detail := strings.Join(a.Reasons, "; ")
	if a.Destination != "" {
		detail = "destination " + a.Destination + "; " + detail
	}
	d.record(ctx, audit.Record{Timestamp: d.cfg.Clock.Now(), Component: "migration-gate", HostID: host, Action: "live_migration_gate",
		Outcome: out, Detail: detail, PolicyVersion: d.Policy().Version()})
}

// OnLead registers work to run each time this replica becomes the leader,
// after it resumed the host records (before its first tick). Call it before
// Run.
func (d *Daemon) OnLead(f func(context.Context)) { d.onLead = append(d.onLead, f) }

// Page sends a notification to on-call through the playbook's notifier,
// only while this replica leads: two replicas never page twice.
func (d *Daemon) Page(ctx context.Context, n playbook.Notification) {
	if d.ha.get() == nil {
		return
	}
	if d.cfg.Actor.Notify != nil {
		d.cfg.Actor.Notify.Notify(ctx, n)
	}
}
