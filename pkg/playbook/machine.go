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
}

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

// maxChain bounds follow-up events within one step (fenced → rebooting → …).
const maxChain = 8

// Step feeds one input (a verdict tick, an operator event or both) and
// returns the state changes it caused, entry actions included.
func (m *Machine) Step(ctx context.Context, in Input) ([]Change, error) {
	var changes []Change
	if in.Event == "" {
		if ev, why := m.actor.Poll(ctx, &m.host); ev != "" {
			in.Event, in.Reason = ev, why
		}
	}
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
		changes = append(changes, Change{At: in.Now, Host: m.host.Name, From: from, To: m.host.State, D: m.host.LastD, Reason: d.Reason})
		ev, why := m.actor.Enter(ctx, &m.host, from)
		if ev == "" {
			return changes, nil
		}
		in = Input{Now: in.Now, Fleet: in.Fleet, Event: ev, Reason: why}
	}
	return changes, fmt.Errorf("playbook: host %s: more than %d transitions in one step", m.host.Name, maxChain)
}
