package playbook

import (
	"context"
	"fmt"
	"time"

	"github.com/looplab/fsm"
)

// Change is one state change, as `fenced simulate` prints it.
type Change struct {
	At     time.Time `json:"t"`
	Host   string    `json:"host"`
	From   State     `json:"from"`
	To     State     `json:"to"`
	D      float64   `json:"d"`
	Reason string    `json:"reason"`
}

// Machine is one host's playbook: the record and the actor that performs
// entry actions. Every transition is enforced by a looplab/fsm machine built
// from Transitions at that moment: transitions are rare, and an FSM per host
// would cost about 3 KB for each of 10,000 hosts.
type Machine struct {
	cfg   Config
	host  Host
	actor *Actor
	// busy is the action running off the engine's goroutine (Actor.Async),
	// "" when none: its outcome comes back through Complete.
	busy      string
	busySince time.Time
	entry     bool // the job in flight is the entry actions of the state
}

// Job is a host's entry actions or recovery poll, run off the engine's
// goroutine when the actor has an Async runner. It works on a copy of the
// record and returns it with the follow-up event.
type Job func(ctx context.Context) JobResult

// JobResult is what a Job did: the record as the actions left it (only the
// fields actions own are taken back: ControlFenced, Step and Recovery) and the
// follow-up event, if any.
type JobResult struct {
	Host   Host
	Event  Event
	Reason string
}

// Busy says which action is in flight off the engine's goroutine ("" when
// none) and since when.
func (m *Machine) Busy() (string, time.Time) { return m.busy, m.busySince }

var fsmEvents = func() fsm.Events {
	var evs fsm.Events
	for _, t := range Transitions {
		src := make([]string, len(t.From))
		for i, s := range t.From {
			src[i] = string(s)
		}
		evs = append(evs, fsm.EventDesc{Name: string(t.Event), Src: src, Dst: string(t.To)})
	}
	return evs
}()

// NewMachine resumes a host from its record (a new host starts in normal).
func NewMachine(cfg Config, h Host, actor *Actor) (*Machine, error) {
	if h.State == "" {
		h.State = Normal
	}
	if !h.State.Valid() {
		return nil, fmt.Errorf("playbook: host %s: unknown state %q", h.Name, h.State)
	}
	return &Machine{cfg: cfg, host: h, actor: actor}, nil
}

// Host returns the current record.
func (m *Machine) Host() Host { return m.host }

// SetConfig replaces the configuration the machine decides and acts with
// (a reloaded policy, the host's group's policy): the actor reads the mode,
// the recovery chain and the instance filter from it. The record, its
// trackers and any action in flight are kept (a job in flight finishes
// under the configuration it started with). The caller validated cfg.
func (m *Machine) SetConfig(cfg Config) { m.cfg = cfg }

// maxChain bounds follow-up events within one step (fenced → rebooting → …).
const maxChain = 8

// Step feeds one input (a verdict tick, an operator event or both) and
// returns the state changes it caused. Entry actions run inline, or, when
// the actor has an Async runner, as a Job off the caller's goroutine: the
// state change is returned at once and the actions' outcome comes back
// through Complete. While a job is in flight the host's trackers follow its
// verdicts but nothing is decided, and operator events are refused.
func (m *Machine) Step(ctx context.Context, in Input) ([]Change, error) {
	if m.busy == "" && m.host.EnterFrom != "" && m.actor.Async != nil {
		// resumed from a record whose entry actions never completed (the
		// leader that started them died): run them again, before anything
		// else is decided for the host
		m.startEntry(in.Now, m.host.EnterFrom)
	}
	if m.busy != "" {
		if in.Event != "" {
			if _, ok := Target(m.host.State, in.Event); !ok {
				return nil, fmt.Errorf("playbook: host %s: %s not allowed in %s", m.host.Name, in.Event, m.host.State)
			}
			return nil, fmt.Errorf("playbook: host %s: %s is in flight (since %s); try again once it finished",
				m.host.Name, m.busy, m.busySince.Format(time.RFC3339))
		}
		if in.Verdict != nil && !in.Verdict.Blind {
			track(m.cfg, &m.host, in.Verdict, in.Now)
		}
		return nil, nil
	}
	if in.Event == "" && m.host.State == Rebooting {
		if m.actor.Async == nil {
			if ev, why := m.actor.Poll(ctx, m.cfg, &m.host, in.Now); ev != "" {
				in.Event, in.Reason = ev, why
			}
		} else {
			// deadlines first; then the recovery's next step, off the loop
			changes, err := m.chain(ctx, in)
			if err != nil || len(changes) > 0 || m.busy != "" || m.host.State != Rebooting {
				return changes, err
			}
			cfg, now := m.cfg, in.Now
			m.start(in.Now, "recovery of "+string(m.host.State), func(ctx context.Context, h *Host) (Event, string) {
				return m.actor.Poll(ctx, cfg, h, now)
			})
			return nil, nil
		}
	}
	return m.chain(ctx, in)
}

// Complete takes back the outcome of the job in flight and follows its
// event, if any. in carries the time and the fleet; its Event is ignored.
func (m *Machine) Complete(ctx context.Context, in Input, r JobResult) ([]Change, error) {
	if m.busy == "" {
		return nil, fmt.Errorf("playbook: host %s: an outcome arrived with no action in flight", m.host.Name)
	}
	if m.entry {
		m.host.EnterFrom = ""
	}
	m.busy, m.busySince, m.entry = "", time.Time{}, false
	m.host.ControlFenced, m.host.Step, m.host.Recovery = r.Host.ControlFenced, r.Host.Step, r.Host.Recovery
	if r.Event == "" {
		return nil, nil // as inline: a note without an event (retrying) changes nothing
	}
	return m.chain(ctx, Input{Now: in.Now, Fleet: in.Fleet, Paused: in.Paused, Group: in.Group, Event: r.Event, Reason: r.Reason})
}

// start hands act, run on a copy of the record, to the actor's Async runner.
func (m *Machine) start(now time.Time, what string, act func(context.Context, *Host) (Event, string)) {
	m.busy, m.busySince = what, now
	h := m.host
	m.actor.Async(h.Name, func(ctx context.Context) JobResult {
		ev, why := act(ctx, &h)
		return JobResult{Host: h, Event: ev, Reason: why}
	})
}

// startEntry runs the entry actions of the current state, entered from
// from, off the caller's goroutine; the record says so until they complete.
func (m *Machine) startEntry(now time.Time, from State) {
	m.host.EnterFrom = from
	cfg := m.cfg
	m.start(now, "entry actions of "+string(m.host.State), func(ctx context.Context, h *Host) (Event, string) {
		return m.actor.Enter(ctx, cfg, h, from)
	})
	m.entry = true
}

// chain decides and enters states until nothing follows (bounded).
func (m *Machine) chain(ctx context.Context, in Input) ([]Change, error) {
	var changes []Change
	for range maxChain {
		d := Decide(m.cfg, m.host, in)
		if d.Event == "" {
			m.host = d.Host
			if in.Event != "" && d.Reason != "" {
				return changes, fmt.Errorf("playbook: host %s: %s", m.host.Name, d.Reason)
			}
			return changes, nil
		}
		from := m.host.State
		if err := fsm.NewFSM(string(from), fsmEvents, nil).Event(ctx, string(d.Event)); err != nil {
			return changes, fmt.Errorf("playbook: host %s: %s from %s: %w", m.host.Name, d.Event, from, err)
		}
		m.host = d.Host
		m.host.EnterFrom = ""
		changes = append(changes, Change{At: in.Now, Host: m.host.Name, From: from, To: m.host.State, D: m.host.LastD, Reason: d.Reason})
		if m.actor.Async != nil && !m.actor.notifyOnly(m.host.State) {
			m.startEntry(in.Now, from)
			return changes, nil
		}
		ev, why := m.actor.Enter(ctx, m.cfg, &m.host, from)
		if ev == "" {
			return changes, nil
		}
		in = Input{Now: in.Now, Fleet: in.Fleet, Event: ev, Reason: why}
	}
	return changes, fmt.Errorf("playbook: host %s: more than %d transitions in one step", m.host.Name, maxChain)
}
