// Package fleet runs the evaluator and one playbook machine per host: the
// engine that both `fenced simulate` (on a simulated clock) and `fenced run`
// (on the real one) drive. It keeps the fleet-wide counts the storm guard
// needs, in step with every transition.
package fleet

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fencedhq/fenced/pkg/groups"
	"github.com/fencedhq/fenced/pkg/playbook"
	"github.com/fencedhq/fenced/pkg/signals"
)

// View is one host as the fleet sees it now.
type View struct {
	Host    playbook.Host   `json:"host"`
	Verdict signals.Verdict `json:"verdict"`
	Group   string          `json:"group,omitempty"` // the host's group (playbook.DefaultGroup: none configured claims it)
	// Reserved is a reserved host's status (playbook.ReservedSpare or
	// ReservedInService; empty: not a reserved host).
	Reserved string `json:"reserved,omitempty"`
}

// Hooks are called from Tick and Operate, on the caller's goroutine.
type Hooks struct {
	// Control returns what the control plane says about a host, if known.
	Control func(host string) (signals.Control, bool)
	// Verdict sees every verdict before the playbook does.
	Verdict func(host string, v *signals.Verdict)
	// Change sees every state change with the verdict behind it.
	Change func(c playbook.Change, v *signals.Verdict)
}

type entry struct {
	m        *playbook.Machine
	verdict  signals.Verdict
	group    string
	reserved string // playbook.Reserve's status, as of the last tick
}

// Fleet is not safe for concurrent use: one goroutine owns it (Paused
// excepted).
type Fleet struct {
	eval *signals.Evaluator
	cfg  playbook.Config
	// gpol are the policies of groups that override the file's (policy
	// groups:): their hosts are weighed and decided with them
	gpol   map[string]groupPolicy
	actor  *playbook.Actor
	hooks  Hooks
	order  []string
	hosts  map[string]*entry
	counts playbook.Fleet
	paused atomic.Bool // read by actions running off the owner's goroutine

	// groups (group.go): the membership in force and every group's counts,
	// kept in step with every transition like counts
	members func() *groups.Membership // nil: every host in the default group
	memb    *groups.Membership
	gcounts map[string]*playbook.Group
	gmu     sync.RWMutex // guards groupOf and gpaused: actions read them off the owner's goroutine
	groupOf map[string]string
	gpaused map[string]bool
	// reserved is a host's reserved status (nil: no reserved hosts): a
	// spare is left out of its group's counts (group.go)
	reserved func(host string) string
}

// SetPaused pauses (or resumes) fencing fleet-wide: hosts are still
// classified and on-call notified, but nothing is acted on.
func (f *Fleet) SetPaused(p bool) { f.paused.Store(p) }

// Paused reports the fleet-wide pause.
func (f *Fleet) Paused() bool { return f.paused.Load() }

// New builds a fleet from the evaluator's and the playbook's configuration.
func New(sc signals.Config, pc playbook.Config, actor *playbook.Actor, hooks Hooks) (*Fleet, error) {
	if err := pc.Validate(); err != nil {
		return nil, fmt.Errorf("fleet: playbook: %w", err)
	}
	eval, err := signals.NewEvaluator(sc)
	if err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	return &Fleet{eval: eval, cfg: pc, actor: actor, hooks: hooks, hosts: map[string]*entry{},
		gcounts: map[string]*playbook.Group{}, groupOf: map[string]string{}, gpaused: map[string]bool{}}, nil
}

// GroupPolicy is a group's policy (the policy file's with the group's
// overrides): how its hosts are weighed and decided.
type GroupPolicy struct {
	Signals  signals.Config
	Playbook playbook.Config
}

type groupPolicy struct {
	scoring *signals.Scoring
	pc      playbook.Config
}

// SetPolicy replaces the evaluator's and every playbook's configuration (a
// reloaded policy without group overrides), keeping every host's samples,
// record and action in flight. Both are validated first: an error changes
// nothing.
func (f *Fleet) SetPolicy(sc signals.Config, pc playbook.Config) error {
	return f.SetPolicies(sc, pc, nil)
}

// SetPolicies is SetPolicy with the policies of groups that override the
// file's: a host of such a group is weighed and decided with its group's,
// every other host with sc and pc. Everything is validated before anything
// changes.
func (f *Fleet) SetPolicies(sc signals.Config, pc playbook.Config, groups map[string]GroupPolicy) error {
	if err := pc.Validate(); err != nil {
		return fmt.Errorf("fleet: playbook: %w", err)
	}
	base, err := signals.Compile(sc)
	if err != nil {
		return fmt.Errorf("fleet: %w", err)
	}
	gpol := make(map[string]groupPolicy, len(groups))
	for name, g := range groups {
		if err := g.Playbook.Validate(); err != nil {
			return fmt.Errorf("fleet: group %s: playbook: %w", name, err)
		}
		s, err := signals.Compile(g.Signals)
		if err != nil {
			return fmt.Errorf("fleet: group %s: %w", name, err)
		}
		gpol[name] = groupPolicy{scoring: s, pc: g.Playbook}
	}
	f.eval.Scoring = base
	f.cfg, f.gpol = pc, gpol
	for _, e := range f.hosts {
		e.m.SetConfig(f.cfgFor(e.group))
	}
	return nil
}

// cfgFor is the playbook configuration of a group's hosts.
func (f *Fleet) cfgFor(group string) playbook.Config {
	if g, ok := f.gpol[group]; ok {
		return g.pc
	}
	return f.cfg
}

// scoringFor is how a group's hosts are weighed (nil: the evaluator's own).
func (f *Fleet) scoringFor(group string) *signals.Scoring {
	if g, ok := f.gpol[group]; ok {
		return g.scoring
	}
	return nil
}

// ConfigOf is the playbook configuration a host is decided with now (its
// group's policy).
func (f *Fleet) ConfigOf(host string) playbook.Config {
	if e, ok := f.hosts[host]; ok {
		return f.cfgFor(e.group)
	}
	return f.cfg
}

// Resume adds a host from its durable record (a new leader picking up).
func (f *Fleet) Resume(h playbook.Host) error {
	if _, ok := f.hosts[h.Name]; ok {
		return fmt.Errorf("fleet: host %s already present", h.Name)
	}
	group := f.memb.Of(h.Name)
	m, err := playbook.NewMachine(f.cfgFor(group), h, f.actor)
	if err != nil {
		return err
	}
	e := &entry{m: m, verdict: signals.Verdict{Host: h.Name, Blind: true}, group: group, reserved: f.reservedOf(h.Name)}
	f.hosts[h.Name] = e
	f.setGroupOf(h.Name, e.group)
	f.tally(e, +1)
	i := sort.SearchStrings(f.order, h.Name)
	f.order = append(f.order, "")
	copy(f.order[i+1:], f.order[i:])
	f.order[i] = h.Name
	f.counts.Total++
	f.count(m.Host().State, +1)
	return nil
}

// Restore replaces a host's record (adding the host if new): a new leader
// resuming from etcd, or reconciling an action the old leader finished.
func (f *Fleet) Restore(h playbook.Host) error {
	e, ok := f.hosts[h.Name]
	if !ok {
		return f.Resume(h)
	}
	m, err := playbook.NewMachine(f.cfgFor(e.group), h, f.actor)
	if err != nil {
		return err
	}
	f.count(e.m.Host().State, -1)
	f.tally(e, -1)
	e.m = m
	f.count(h.State, +1)
	f.tally(e, +1)
	return nil
}

// Add makes sure a host is in the fleet, starting in normal.
func (f *Fleet) Add(host string) {
	if _, ok := f.hosts[host]; !ok {
		_ = f.Resume(playbook.Host{Name: host, State: playbook.Normal}) // a new host in normal is always valid
	}
}

// Observe records a sample (adding the host if new).
func (f *Fleet) Observe(s signals.Sample) error {
	f.Add(s.Host)
	return f.eval.Observe(s)
}

// Counts is the fleet situation the storm guard sees.
func (f *Fleet) Counts() playbook.Fleet { return f.counts }

func (f *Fleet) count(s playbook.State, delta int) {
	if s.Rank() >= 1 {
		f.counts.AtWarnOrWorse += delta
	}
	if s == playbook.Fenced || s == playbook.Rebooting {
		f.counts.Fencing += delta
	}
}

// Tick evaluates every host at now and steps its playbook. Hosts are visited
// in name order so runs are reproducible.
func (f *Fleet) Tick(ctx context.Context, now time.Time) ([]playbook.Change, error) {
	f.regroup()
	var all []playbook.Change
	for _, name := range f.order {
		e := f.hosts[name]
		if f.hooks.Control != nil {
			if c, ok := f.hooks.Control(name); ok {
				f.eval.ObserveControl(name, c)
			}
		}
		f.tally(e, -1) // a verdict decides whether the host counts as healthy in its group
		e.reserved = f.reservedOf(name)
		e.verdict = f.eval.EvaluateWith(name, now, f.scoringFor(e.group))
		if f.hooks.Verdict != nil {
			f.hooks.Verdict(name, &e.verdict)
		}
		f.tally(e, +1)
		ch, err := f.step(ctx, e, playbook.Input{Now: now, Verdict: &e.verdict})
		all = append(all, ch...)
		if err != nil {
			return all, err
		}
	}
	return all, nil
}

// Operate applies an operator's event (approve, abort, unfence) to a host.
func (f *Fleet) Operate(ctx context.Context, now time.Time, host string, ev playbook.Event, reason string) ([]playbook.Change, error) {
	e, ok := f.hosts[host]
	if !ok {
		return nil, fmt.Errorf("fleet: unknown host %q", host)
	}
	return f.step(ctx, e, playbook.Input{Now: now, Event: ev, Reason: reason})
}

// Complete hands a host the outcome of its job (playbook.Actor.Async) and
// follows the event it implies.
func (f *Fleet) Complete(ctx context.Context, now time.Time, host string, r playbook.JobResult) ([]playbook.Change, error) {
	e, ok := f.hosts[host]
	if !ok {
		return nil, fmt.Errorf("fleet: outcome for unknown host %q", host)
	}
	return f.run(ctx, e, playbook.Input{Now: now}, func(in playbook.Input) ([]playbook.Change, error) {
		return e.m.Complete(ctx, in, r)
	})
}

func (f *Fleet) step(ctx context.Context, e *entry, in playbook.Input) ([]playbook.Change, error) {
	return f.run(ctx, e, in, func(in playbook.Input) ([]playbook.Change, error) { return e.m.Step(ctx, in) })
}

// run steps one host's machine with the fleet's counts, keeping them in step.
func (f *Fleet) run(ctx context.Context, e *entry, in playbook.Input, step func(playbook.Input) ([]playbook.Change, error)) ([]playbook.Change, error) {
	before := e.m.Host().State
	f.count(before, -1)
	f.tally(e, -1)
	in.Fleet, in.Paused = f.counts, f.paused.Load()
	in.Group = f.groupInput(e.group)
	if before.Rank() >= 1 {
		in.Fleet.AtWarnOrWorse++ // the host itself counts towards saturation
		in.Group.AtWarnOrWorse++ // in its group too
	}
	in.Group.Total++
	ch, err := step(in)
	f.count(e.m.Host().State, +1)
	f.tally(e, +1)
	for _, c := range ch {
		if c.From == playbook.Rebooting && c.To == playbook.Restored {
			// samples from before the power cycle describe a machine that no
			// longer runs: the windows start afresh
			f.eval.Forget(c.Host)
		}
		if f.hooks.Change != nil {
			f.hooks.Change(c, &e.verdict)
		}
	}
	if err != nil {
		return ch, fmt.Errorf("fleet: %s at %s: %w", e.m.Host().Name, in.Now.Format(time.RFC3339), err)
	}
	return ch, nil
}

// Get returns one host's view.
func (f *Fleet) Get(host string) (View, bool) {
	e, ok := f.hosts[host]
	if !ok {
		return View{}, false
	}
	return View{Host: e.m.Host(), Verdict: e.verdict, Group: e.group, Reserved: e.reserved}, true
}

// Views returns every host's view, in name order.
func (f *Fleet) Views() []View {
	out := make([]View, 0, len(f.order))
	for _, name := range f.order {
		e := f.hosts[name]
		out = append(out, View{Host: e.m.Host(), Verdict: e.verdict, Group: e.group, Reserved: e.reserved})
	}
	return out
}

// Len is the number of hosts.
func (f *Fleet) Len() int { return len(f.order) }
