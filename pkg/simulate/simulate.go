// Package simulate replays a trace through the real evaluator and playbook on
// a simulated clock, against simulated backends (Nova, libvirt gate, Redfish
// power, notifier, journal) that obey the trace's fault lines.
//
// The world reacts to fenced: a host that fenced power-cycles sends no samples
// until it is back (after the reboot time), and the starvation the trace goes
// on to describe for it is treated as gone — samples over a signal's warn
// threshold are replaced by the host's own last healthy value until the trace
// itself falls back under warn. Live migration takes no simulated time.
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
	"github.com/fencedhq/fenced/pkg/playbook"
	"github.com/fencedhq/fenced/pkg/policy"
	"github.com/fencedhq/fenced/pkg/signals"
	"github.com/fencedhq/fenced/pkg/trace"
)

// Options configure a run.
type Options struct {
	Policy     *policy.Policy
	Tick       time.Duration // evaluation interval; default 10 s
	RebootTime time.Duration // power cycle to host back; default 6 min
	Out        io.Writer     // one JSON line per state change; nil discards
}

// HostResult is what happened to one host.
type HostResult struct {
	Host     string
	Onset    time.Time                          // first tick with a fresh signal over warn
	First    map[playbook.State]time.Time       // first entry into each state
	Final    playbook.State                     // state at the end
	Note     string                             // last reason the playbook gave (holds, waits)
	Changes  int                                // number of state changes
	Reasons  map[playbook.State]string          // reason of the first entry into each state
	Verdicts map[playbook.State]signals.Verdict `json:"-"`
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
	MigrationFails int
	Notifications  int
	Intents        int
}

type runner struct {
	opt     Options
	eval    *signals.Evaluator
	pcfg    playbook.Config
	clk     *clock.Fake
	w       *world
	actor   *playbook.Actor
	order   []string
	mach    map[string]*playbook.Machine
	res     *Result
	enc     *json.Encoder
	fleet   playbook.Fleet
	rebootd map[string]bool // hosts whose windows must restart when they are back
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
	eval, err := signals.NewEvaluator(opt.Policy.SignalsConfig())
	if err != nil {
		return nil, err
	}
	sc := opt.Policy.SignalsConfig()
	rn := &runner{
		opt: opt, eval: eval, pcfg: opt.Policy.PlaybookConfig(),
		clk:  clock.NewFake(time.Time{}),
		mach: map[string]*playbook.Machine{}, rebootd: map[string]bool{},
		res: &Result{Hosts: map[string]*HostResult{}, Mode: opt.Policy.PlaybookConfig().Mode, PolicyVersion: opt.Policy.Version()},
	}
	rn.w = &world{hosts: map[string]*simHost{}, serverHost: map[string]string{}, now: rn.clk.Now, rebootTime: opt.RebootTime, warn: map[signals.Name]float64{}}
	for n, s := range sc.Signals {
		rn.w.warn[n] = s.Warn
	}
	for _, n := range signals.All {
		if _, ok := rn.w.warn[n]; !ok {
			rn.w.warn[n] = math.Inf(1)
		}
	}
	rn.actor = &playbook.Actor{Mode: rn.pcfg.Mode, Nova: rn.w, Gate: rn.w, Power: rn.w, Checker: rn.w,
		Notify: rn.w, Journal: rn.w, Clock: rn.clk, Log: zerolog.Nop()}
	if opt.Out != nil {
		rn.enc = json.NewEncoder(opt.Out)
		rn.enc.SetEscapeHTML(false)
	}
	var next, last time.Time
	started := false
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for b := range readAhead(ctx, r) {
		if b.err != nil {
			return nil, b.err
		}
		for _, rec := range b.recs {
			if rec.Kind == trace.KindCores {
				rn.hostSeen(rec.Host).cores = int(rec.Value)
				continue
			}
			if !started {
				started, next = true, rec.T
				rn.res.Start = rec.T
			}
			for next.Before(rec.T) {
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
	for !next.After(last) {
		if err := rn.tick(ctx, next); err != nil {
			return nil, err
		}
		next = next.Add(opt.Tick)
	}
	rn.res.End = last
	rn.res.PowerCycles, rn.res.Migrations, rn.res.MigrationFails = rn.w.powerCycles, rn.w.migrations, rn.w.migrationFailures
	rn.res.Notifications, rn.res.Intents = rn.w.notifications, rn.w.intents
	for name, m := range rn.mach {
		hr := rn.res.Hosts[name]
		hr.Final, hr.Note = m.Host().State, m.Host().Reason
	}
	return rn.res, nil
}

func (rn *runner) hostSeen(name string) *simHost {
	if _, ok := rn.mach[name]; !ok {
		m, err := playbook.NewMachine(rn.pcfg, playbook.Host{Name: name, State: playbook.Normal}, rn.actor)
		if err != nil {
			panic(err) // a fresh host in normal is always valid
		}
		rn.mach[name] = m
		i := sort.SearchStrings(rn.order, name)
		rn.order = append(rn.order, "")
		copy(rn.order[i+1:], rn.order[i:])
		rn.order[i] = name
		rn.res.Hosts[name] = &HostResult{Host: name, First: map[playbook.State]time.Time{}, Reasons: map[playbook.State]string{}, Verdicts: map[playbook.State]signals.Verdict{}}
		rn.fleet.Total++
	}
	return rn.w.host(name)
}

func (rn *runner) apply(rec trace.Record) error {
	rn.clk.Set(rec.T)
	h := rn.hostSeen(rec.Host)
	switch rec.Kind {
	case trace.KindSignal:
		i := index(rec.Signal)
		v, ok := rn.w.sample(h, i, rec.Value)
		if !ok {
			return nil
		}
		if rn.rebootd[h.name] {
			// the host is back from a power cycle: start its windows afresh
			rn.eval.Forget(h.name)
			rn.eval.ObserveControl(h.name, h.control())
			delete(rn.rebootd, h.name)
		}
		rn.res.Samples++
		return rn.eval.Observe(signals.Sample{Host: rec.Host, Signal: rec.Signal, Value: v, At: rec.T})
	case trace.KindControl:
		switch rec.Control {
		case trace.ControlNovaService:
			h.serviceUp = rec.Up
		case trace.ControlServersActive:
			h.servers = int(rec.Value)
		}
		rn.eval.ObserveControl(h.name, h.control())
	case trace.KindFault:
		if rec.Fault == trace.FaultCleared {
			clear(h.faults)
		} else {
			h.faults[rec.Fault] = true
		}
	}
	return nil
}

func index(n signals.Name) int {
	for i, a := range signals.All {
		if a == n {
			return i
		}
	}
	return -1
}

func (rn *runner) count(s playbook.State, delta int) {
	if s.Rank() >= 1 {
		rn.fleet.AtWarnOrWorse += delta
	}
	if s == playbook.Fenced || s == playbook.Rebooting {
		rn.fleet.Fencing += delta
	}
}

func (rn *runner) tick(ctx context.Context, now time.Time) error {
	rn.clk.Set(now)
	rn.res.Ticks++
	for _, name := range rn.order {
		h, m := rn.w.hosts[name], rn.mach[name]
		hr := rn.res.Hosts[name]
		rn.eval.ObserveControl(name, h.control())
		v := rn.eval.Evaluate(name, now)
		h.verdict = v
		if hr.Onset.IsZero() {
			for _, c := range v.Contributions {
				if c.OverWarn && !c.Stale && c.Weight > 0 {
					hr.Onset = now
					break
				}
			}
		}
		before := m.Host().State
		rn.count(before, -1)
		changes, err := m.Step(ctx, playbook.Input{Now: now, Verdict: &v, Fleet: rn.fleet})
		after := m.Host().State
		rn.count(after, +1)
		h.state = after
		if err != nil {
			return fmt.Errorf("simulate: %s at %s: %w", name, now.Format(time.RFC3339), err)
		}
		for _, c := range changes {
			if c.To == playbook.Rebooting {
				rn.rebootd[name] = true
			}
			if _, ok := hr.First[c.To]; !ok {
				hr.First[c.To], hr.Reasons[c.To], hr.Verdicts[c.To] = c.At, c.Reason, v
			}
			hr.Changes++
			rn.res.Changes = append(rn.res.Changes, c)
			if rn.enc != nil {
				c.D = math.Round(c.D*1000) / 1000
				if err := rn.enc.Encode(c); err != nil {
					return fmt.Errorf("simulate: write: %w", err)
				}
			}
		}
	}
	return nil
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
