// Package simulate replays a trace through the real evaluator and playbook on
// a simulated clock, against simulated backends (Nova, libvirt gate, Redfish
// power, notifier, journal) that obey the trace's fault lines.
//
// The world reacts to fenced: a host that fenced power-cycles sends no samples
// until it is back (after the reboot time), and the starvation the trace goes
// on to describe for it is treated as gone — samples over a signal's warn
// threshold are replaced by the host's own last healthy value until the trace
// itself falls back under warn. Live migration takes no simulated time.
//
// A trace with tick lines (recorded by a running replica, pkg/record) is
// evaluated at those ticks, the very times the replica evaluated; one
// without is evaluated on a grid every Options.Tick from its first line.
package simulate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"time"

	"github.com/rs/zerolog"

	"github.com/fencedhq/fenced/pkg/clock"
	"github.com/fencedhq/fenced/pkg/fleet"
	"github.com/fencedhq/fenced/pkg/groups"
	"github.com/fencedhq/fenced/pkg/lab"
	"github.com/fencedhq/fenced/pkg/playbook"
	"github.com/fencedhq/fenced/pkg/policy"
	"github.com/fencedhq/fenced/pkg/signals"
	"github.com/fencedhq/fenced/pkg/trace"
)

// Options configure a run.
type Options struct {
	Policy     *policy.Policy
	Tick       time.Duration // evaluation interval; default 10 s (a trace with tick lines brings its own)
	RebootTime time.Duration // power cycle to host back; default 6 min
	Out        io.Writer     // one JSON line per state change; nil discards
}

// HostResult is what happened to one host.
type HostResult struct {
	Host    string
	Onset   time.Time                    // first tick with a fresh signal over warn
	First   map[playbook.State]time.Time // first entry into each state
	Final   playbook.State               // state at the end
	Note    string                       // last reason the playbook gave (holds, waits)
	Changes int                          // number of state changes
	Reasons map[playbook.State]string    // reason of the first entry into each state
	Group   string                       // its group at the end (playbook.DefaultGroup: none)
	// Reserved is a reserved host's status at the end (spare, in service;
	// "": not reserved), and Servers how many servers it holds then.
	Reserved string
	Servers  int
}

// Result summarises a run.
type Result struct {
	Start, End     time.Time
	Ticks          int
	Samples        int
	Mode           playbook.Mode
	PolicyVersion  string
	Hosts          map[string]*HostResult
	Changes        []playbook.Change
	PowerCycles    int
	Migrations     int
	Evacuations    int
	MigrationFails int
	Notifications  int
	Intents        int
	// TraceTicks: the trace brought its own ticks (a recorded trace);
	// CollectErrors counts those at which a collector failed.
	TraceTicks    bool
	CollectErrors int
	// Groups are the trace's groups (group and member lines) at the end,
	// with their counts, in the order the trace named them, then the
	// default group; empty for a trace without groups.
	Groups []fleet.GroupView
}

type runner struct {
	// reserved hosts by group, from member lines with "reserved"
	reserved    map[string][]string
	reservedOrd []string

	opt    Options
	clk    *clock.Fake
	w      *lab.World
	fleet  *fleet.Fleet
	res    *Result
	enc    *json.Encoder
	encErr error

	// the trace's groups: definitions in the order named, each host's group
	gdefs   []groups.Def
	gindex  map[string]int
	member  map[string]string
	memb    *groups.Membership
	gserial uint64
}

// Run replays the trace read from r.
func Run(ctx context.Context, r *trace.Reader, opt Options) (*Result, error) {
	if opt.Policy == nil {
		opt.Policy = policy.Default()
	}
	if opt.Tick <= 0 {
		opt.Tick = 10 * time.Second
	}
	if opt.RebootTime <= 0 {
		opt.RebootTime = 6 * time.Minute
	}
	sc, pc := opt.Policy.SignalsConfig(), opt.Policy.PlaybookConfig()
	rn := &runner{
		opt: opt, clk: clock.NewFake(time.Time{}),
		res: &Result{Hosts: map[string]*HostResult{}, Mode: pc.Mode, PolicyVersion: opt.Policy.Version()},
	}
	rn.w = lab.NewWorld(rn.clk.Now, opt.RebootTime, sc)
	actor := &playbook.Actor{Nova: rn.w, Gate: rn.w, Placer: rn.w, Power: rn.w, Checker: rn.w,
		EvacuateParallel: 1, // the simulated world is not safe for concurrent use
		Notify:           rn.w, Journal: rn.w, Clock: rn.clk, Log: zerolog.Nop()}
	f, err := fleet.New(sc, pc, actor, fleet.Hooks{Control: rn.w.Control, Verdict: rn.verdict, Change: rn.change})
	if err != nil {
		return nil, err
	}
	if err := f.SetPolicies(sc, pc, opt.Policy.FleetGroups()); err != nil {
		return nil, err
	}
	rn.fleet = f
	rn.w.SetViews(f)
	rn.gindex, rn.member, rn.reserved = map[string]int{}, map[string]string{}, map[string][]string{}
	f.SetMembership(rn.membership)
	if opt.Out != nil {
		rn.enc = json.NewEncoder(opt.Out)
		rn.enc.SetEscapeHTML(false)
	}
	var next, last time.Time
	started, traceTicks := false, false
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for b := range readAhead(ctx, r) {
		if b.err != nil {
			return nil, b.err
		}
		for _, rec := range b.recs {
			if rec.Kind != trace.KindTick && rec.Kind != trace.KindGroup {
				rn.hostSeen(rec.Host)
			}
			if rec.Kind == trace.KindCores {
				rn.w.SetCores(rec.Host, int(rec.Value))
				continue
			}
			if rec.Kind == trace.KindGroup || rec.Kind == trace.KindMember {
				if rec.Reserved && started {
					return nil, fmt.Errorf("simulate: line %d: a reserved host named after the trace's first timed line; name the spares before it (they are set when the replay starts)", rec.Line)
				}
				rn.group(rec)
				continue
			}
			if !started {
				started, next = true, rec.T
				rn.res.Start = rec.T
				rn.spares(ctx, actor)
			}
			if rec.Kind == trace.KindTick {
				// the trace says when the replica evaluated: from now on
				// only its ticks count, the grid is off
				traceTicks, last = true, rec.T
				if rec.Errors != "" {
					rn.res.CollectErrors++
				}
				if err := rn.tick(ctx, rec.T); err != nil {
					return nil, err
				}
				continue
			}
			for !traceTicks && next.Before(rec.T) {
				if err := rn.tick(ctx, next); err != nil {
					return nil, err
				}
				next = next.Add(opt.Tick)
			}
			last = rec.T
			if err := rn.apply(rec); err != nil {
				return nil, fmt.Errorf("simulate: line %d: %w", rec.Line, err)
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !started {
		return nil, fmt.Errorf("simulate: the trace has no timed lines")
	}
	names := make([]string, len(rn.gdefs))
	for i, d := range rn.gdefs {
		names[i] = d.Name
	}
	if err := opt.Policy.CheckGroups(names); err != nil {
		return nil, fmt.Errorf("simulate: %w (the trace's groups are its group and member lines)", err)
	}
	for !traceTicks && !next.After(last) {
		if err := rn.tick(ctx, next); err != nil {
			return nil, err
		}
		next = next.Add(opt.Tick)
	}
	rn.res.End, rn.res.TraceTicks = last, traceTicks
	c := rn.w.Counters
	rn.res.PowerCycles, rn.res.Migrations, rn.res.MigrationFails, rn.res.Evacuations = c.PowerCycles, c.Migrations, c.MigrationFailures, c.Evacuations
	rn.res.Notifications, rn.res.Intents = c.Notifications, c.Intents
	for _, v := range f.Views() {
		hr := rn.res.Hosts[v.Host.Name]
		hr.Final, hr.Note, hr.Group, hr.Reserved = v.Host.State, v.Host.Reason, v.Group, v.Reserved
		_, vcpus, _ := rn.w.Capacity(v.Host.Name)
		hr.Servers = vcpus / lab.VCPUsPerServer
	}
	if len(rn.gdefs) > 0 {
		rn.res.Groups = f.Groups()
	}
	return rn.res, nil
}

// group takes a group or member line: the membership is rebuilt, and the
// fleet moves hosts at its next tick, as a replica does after a refresh.
func (rn *runner) group(rec trace.Record) {
	if rec.Kind == trace.KindMember && rec.Group == playbook.DefaultGroup {
		delete(rn.member, rec.Host) // left its group for none
		rn.memb = nil
		return
	}
	i, ok := rn.gindex[rec.Group]
	if !ok {
		i = len(rn.gdefs)
		rn.gindex[rec.Group] = i
		rn.gdefs = append(rn.gdefs, groups.Def{Name: rec.Group})
	}
	if rec.Kind == trace.KindGroup {
		mh, _ := playbook.ParseMinHealthy(rec.MinHealthy) // checked by the reader
		rn.gdefs[i].Guard = playbook.GroupGuard{MinHealthy: mh, MaxConcurrent: rec.MaxConcurrent}
	} else if rec.Reserved {
		if _, ok := rn.reserved[rec.Group]; !ok {
			rn.reservedOrd = append(rn.reservedOrd, rec.Group)
		}
		delete(rn.member, rec.Host)
		rn.reserved[rec.Group] = append(rn.reserved[rec.Group], rec.Host)
	} else {
		rn.member[rec.Host] = rec.Group
	}
	rn.memb = nil // rebuilt when next read: a trace names thousands of members in a row
}

// spares sets up the trace's reserved hosts when the replay starts, as a
// leader does: each kept disabled, the actor and the world told, the fleet
// leaving spares out of their groups' counts.
func (rn *runner) spares(ctx context.Context, actor *playbook.Actor) {
	if len(rn.reservedOrd) == 0 {
		return
	}
	var gs []playbook.ReservedGroup
	for _, g := range rn.reservedOrd {
		gs = append(gs, playbook.ReservedGroup{Group: g, Hosts: rn.reserved[g]})
		for _, h := range rn.reserved[g] {
			_ = rn.w.Disable(ctx, h, "fenced: reserved host")
		}
	}
	r := playbook.NewReserve(gs)
	actor.Reserve = r
	rn.w.SetGroups(func(h string) string { return rn.membership().Of(h) }, r)
	rn.fleet.SetReserved(r.Status)
}

// membership is the membership the trace's lines make, rebuilt after a
// group or member line (nil: the trace has none).
func (rn *runner) membership() *groups.Membership {
	if rn.memb != nil || len(rn.gdefs) == 0 {
		return rn.memb
	}
	defs := make([]groups.Def, len(rn.gdefs))
	copy(defs, rn.gdefs)
	for h, g := range rn.member {
		defs[rn.gindex[g]].Hosts = append(defs[rn.gindex[g]].Hosts, h)
	}
	for g, hs := range rn.reserved {
		defs[rn.gindex[g]].Reserved = hs
	}
	for i := range defs {
		sort.Strings(defs[i].Hosts)
	}
	rn.gserial++
	rn.memb = groups.New(defs, groups.Nova{}, rn.gserial)
	return rn.memb
}

func (rn *runner) hostSeen(name string) {
	if _, ok := rn.res.Hosts[name]; !ok {
		rn.fleet.Add(name)
		rn.res.Hosts[name] = &HostResult{Host: name, First: map[playbook.State]time.Time{}, Reasons: map[playbook.State]string{}}
	}
}

func (rn *runner) apply(rec trace.Record) error {
	rn.clk.Set(rec.T)
	switch rec.Kind {
	case trace.KindSignal:
		s := signals.Sample{Host: rec.Host, Signal: rec.Signal, Value: rec.Value, At: rec.T}
		v, keep := rn.w.Sample(s)
		if !keep {
			return nil
		}
		s.Value = v
		rn.res.Samples++
		return rn.fleet.Observe(s)
	case trace.KindControl:
		switch rec.Control {
		case trace.ControlNovaService:
			// forced_down is what the recording replica (or an operator)
			// did; the simulated world forces down on its own
			rn.w.SetService(rec.Host, rec.Up)
			rn.w.SetHeartbeat(rec.Host, rec.HeartbeatAge, rec.HeartbeatKnown, rec.ReportInterval)
		case trace.ControlServersActive:
			rn.w.SetServers(rec.Host, int(rec.Value))
		case trace.ControlLibvirt:
			rn.w.SetLibvirt(rec.Host, signals.Liveness{Probed: true, Answered: rec.Answered, Failures: int(rec.Value)})
		case trace.ControlBMCPower:
			rn.w.SetBMCPower(rec.Host, rec.Power)
		}
	case trace.KindFault:
		rn.w.Fault(rec.Host, rec.Fault)
	}
	return nil
}

func (rn *runner) verdict(host string, v *signals.Verdict) {
	hr := rn.res.Hosts[host]
	if !hr.Onset.IsZero() {
		return
	}
	for _, c := range v.Contributions {
		if c.OverWarn && !c.Stale && c.Weight > 0 {
			hr.Onset = v.At
			return
		}
	}
}

func (rn *runner) change(c playbook.Change, v *signals.Verdict) {
	hr := rn.res.Hosts[c.Host]
	if _, ok := hr.First[c.To]; !ok {
		hr.First[c.To], hr.Reasons[c.To] = c.At, c.Reason
	}
	hr.Changes++
	rn.res.Changes = append(rn.res.Changes, c)
	if rn.enc != nil {
		c.D = math.Round(c.D*1000) / 1000
		if err := rn.enc.Encode(c); err != nil && rn.encErr == nil {
			rn.encErr = fmt.Errorf("simulate: write: %w", err)
		}
	}
}

func (rn *runner) tick(ctx context.Context, now time.Time) error {
	rn.clk.Set(now)
	rn.res.Ticks++
	if _, err := rn.fleet.Tick(ctx, now); err != nil {
		return fmt.Errorf("simulate: %w", err)
	}
	return rn.encErr
}

type batch struct {
	recs []trace.Record
	err  error
}

// readAhead parses the trace on its own goroutine, in batches, so parsing
// and evaluation use both cores. The channel closes at the end of the trace,
// after an error, or when ctx is cancelled.
func readAhead(ctx context.Context, r *trace.Reader) <-chan batch {
	const size = 4096
	out := make(chan batch, 4)
	go func() {
		defer close(out)
		recs := make([]trace.Record, 0, size)
		send := func(b batch) bool {
			select {
			case out <- b:
				return true
			case <-ctx.Done():
				return false
			}
		}
		for {
			rec, err := r.Next()
			if errors.Is(err, io.EOF) {
				send(batch{recs: recs})
				return
			}
			if err != nil {
				if send(batch{recs: recs}) {
					send(batch{err: err})
				}
				return
			}
			recs = append(recs, rec)
			if len(recs) == size {
				if !send(batch{recs: recs}) {
					return
				}
				recs = make([]trace.Record, 0, size)
			}
		}
	}()
	return out
}
