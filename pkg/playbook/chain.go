package playbook

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/fencedhq/fenced/internal/obs"
)

// The escalation chain (Config.Chain) runs across two states: live_migrate
// in fenced (the entry actions), power_cycle and evacuate in rebooting (the
// entry starts the first, the polls run it, time it out and move on). The
// host's record says which step runs and since when (Host.Recovery), so a
// new leader resumes at that step; the actions inside a step keep their
// idempotent reads (the BMC's power state, Nova's servers).
//
// Every step's start and end (ok, failed, timeout, skipped) is a note in
// the journal (NoteJournal) and a log line; after the last step the host
// goes to needs_human with the chain as it ran.

// enterFenced runs the chain's live_migrate step, when it is first: the
// gate is its condition. Whatever it does not recover goes on to rebooting
// (the next step), or to needs_human when no step is left.
func (a *Actor) enterFenced(ctx context.Context, cfg Config, h *Host) (Event, string) {
	steps := cfg.Chain()
	if steps[0].Action != RecoverLiveMigrate {
		h.Recovery = Recovery{} // the rebooting entry starts the first step
		return EvPowerCycle, "recovery chain without live migration: " + DescribeChain(steps)
	}
	st := steps[0]
	if h.Recovery.Step != RecoverLiveMigrate {
		h.Recovery = Recovery{}
		a.begin(ctx, h, st, 0, len(steps), h.Since)
	}
	var ans GateAnswer
	a.read(ctx, func(c context.Context) { ans = a.Gate.Check(c, h.Name) })
	if !ans.Allowed {
		why := "live migration gate closed: " + strings.Join(ans.Reasons, "; ")
		a.end(ctx, h, StepSkipped, "when gate_open: "+why)
		return a.leaveFenced(h, steps, why)
	}
	servers, err := a.servers(ctx, h.Name)
	if err != nil {
		why := "cannot list servers: " + err.Error()
		a.end(ctx, h, StepFailed, why)
		return a.leaveFenced(h, steps, why)
	}
	servers = a.filter(ctx, cfg, h, servers, "live_migrate", "not live-migrated")
	for i, s := range servers {
		if took := a.Clock.Now().Sub(h.Recovery.Since); took > st.Timeout {
			why := fmt.Sprintf("live migration timed out: %d of %d servers moved within %s", i, len(servers), st.Timeout)
			a.end(ctx, h, StepTimeout, why)
			return a.leaveFenced(h, steps, why)
		}
		if err := a.do(ctx, h, "live_migrate", s.ID, "to "+ans.Destination, func(c context.Context) error {
			return a.Nova.LiveMigrate(c, s.ID, ans.Destination)
		}); err != nil {
			why := "live migration failed: " + err.Error()
			a.end(ctx, h, StepFailed, why)
			return a.leaveFenced(h, steps, why)
		}
	}
	why := fmt.Sprintf("%d servers live-migrated to %s", len(servers), ans.Destination)
	a.end(ctx, h, StepOK, why)
	return EvRestore, why
}

// leaveFenced goes on after the live_migrate step ended without recovering
// the host: to rebooting, where the next step starts, or to needs_human.
func (a *Actor) leaveFenced(h *Host, steps []RecoveryStep, why string) (Event, string) {
	if len(steps) > 1 {
		h.Recovery.Index = 1
		return EvPowerCycle, why
	}
	return EvGiveUp, exhausted(h, why)
}

// enterRebooting starts the next step of the chain; a power_cycle runs at
// once (as it always did), an evacuate from the next poll, step by step.
func (a *Actor) enterRebooting(ctx context.Context, cfg Config, h *Host) (Event, string) {
	h.Step = ""
	steps := cfg.Chain()
	if h.Recovery.Step == "" {
		if ev, why, ok := a.beginNext(ctx, h, steps, h.Since, ""); !ok {
			return ev, why
		}
	}
	if h.Recovery.Step != RecoverPowerCycle {
		return "", "" // the recovery runs from Poll, step by step
	}
	return a.powerCycle(ctx, h, steps, h.Since)
}

// poll runs the step in progress in rebooting: first its timeout, then
// (unless an operator's pause or observe mode holds the recovery where it
// is) its next action, then the wait for the host.
func (a *Actor) poll(ctx context.Context, cfg Config, h *Host, now time.Time) (Event, string) {
	steps := cfg.Chain()
	if h.Recovery.Step == "" {
		if h.Recovery == (Recovery{}) {
			// a record written before chains existed: the step after
			// live_migrate, running since the host entered rebooting
			i := 0
			if steps[0].Action == RecoverLiveMigrate {
				i = 1
			}
			if i >= len(steps) {
				return EvGiveUp, "recovery chain exhausted: no step after live_migrate → needs_human"
			}
			h.Recovery = Recovery{Index: i, Step: steps[i].Action, Since: h.Since, ID: obs.NewRequestID()}
			if steps[i].Action == RecoverPowerCycle {
				// that leader's rebooting entry ran the power cycle (one
				// still in flight was settled by the daemon's resume, or
				// runs again as an entry): wait for the host, never cycle
				// it twice
				h.Step = StepOn
			}
		} else if ev, why, ok := a.beginNext(ctx, h, steps, now, ""); !ok {
			return ev, why
		}
	}
	i := h.Recovery.Index
	if i >= len(steps) || steps[i].Action != h.Recovery.Step {
		why := fmt.Sprintf("recovery step %s is not step %d of the chain in force (%s)", h.Recovery.Step, i+1, DescribeChain(steps))
		a.end(ctx, h, StepFailed, why)
		return EvGiveUp, exhausted(h, why)
	}
	st := steps[i]
	if now.Sub(h.Recovery.Since) > st.Timeout {
		why := fmt.Sprintf("host did not come back within %s", st.Timeout)
		if h.Step != StepOn {
			why = fmt.Sprintf("not done within %s (%s)", st.Timeout, progress(h.Step))
		}
		return a.advance(ctx, h, steps, now, StepTimeout, why)
	}
	if cfg.Mode == ModeObserve || (a.Paused != nil && a.Paused(h.Name)) {
		return "", "" // an operator's pause holds the recovery where it is
	}
	if h.Step != StepOn {
		switch st.Action {
		case RecoverPowerCycle:
			if ev, why := a.powerCycle(ctx, h, steps, now); ev != "" || h.Step != StepOn {
				return ev, why
			}
		case RecoverEvacuate:
			ev, why := a.recoverStep(ctx, cfg, h)
			if ev == EvGiveUp {
				return a.advance(ctx, h, steps, now, StepFailed, why)
			}
			if ev != "" || h.Step != StepOn {
				return ev, why
			}
		}
	}
	if !a.back(ctx, h) {
		return "", ""
	}
	why := "host back after power cycle: powered on, heartbeat fresh, libvirt responsive"
	a.end(ctx, h, StepOK, why)
	return EvRestore, why
}

// progress names how far an evacuate got.
func progress(step string) string {
	switch step {
	case StepOff:
		return "powered off, servers not evacuated yet"
	case StepEvacuated:
		return "servers evacuated, not powered on yet"
	}
	return "not powered off yet"
}

// powerCycle runs the power_cycle step's action, once: the record says so
// (Step on) before the wait for the host.
func (a *Actor) powerCycle(ctx context.Context, h *Host, steps []RecoveryStep, now time.Time) (Event, string) {
	if err := a.do(ctx, h, "power_cycle", "", h.Reason, func(c context.Context) error { return a.Power.PowerCycle(c, h.Name) }); err != nil {
		return a.advance(ctx, h, steps, now, StepFailed, "power cycle failed: "+err.Error())
	}
	h.Step = StepOn
	return "", ""
}

// advance ends the step in progress with outcome and starts the next one
// (it runs from the next poll), or gives up when none is left.
func (a *Actor) advance(ctx context.Context, h *Host, steps []RecoveryStep, now time.Time, outcome, why string) (Event, string) {
	ended := h.Recovery.Step
	a.end(ctx, h, outcome, why)
	h.Recovery.Index++
	h.Step = "" // the next step starts from the beginning: evacuate powers off (verified) first
	if ev, note, ok := a.beginNext(ctx, h, steps, now, why); !ok {
		return ev, note
	}
	return "", fmt.Sprintf("%s %s (%s); next: %s", ended, outcome, why, h.Recovery.Step)
}

// beginNext starts the step at Recovery.Index, or the first after it whose
// condition holds; ok is false (and the event give_up) when none is left.
// last is why the previous step ended (for the give-up's reason).
func (a *Actor) beginNext(ctx context.Context, h *Host, steps []RecoveryStep, now time.Time, last string) (Event, string, bool) {
	for ; h.Recovery.Index < len(steps); h.Recovery.Index++ {
		st := steps[h.Recovery.Index]
		a.begin(ctx, h, st, h.Recovery.Index, len(steps), now)
		if st.Action == RecoverLiveMigrate {
			last = "live migration runs only in fenced, before anything is powered off"
			a.end(ctx, h, StepSkipped, last)
			continue
		}
		if ok, why := a.holds(ctx, h, st.When); !ok {
			last = why
			a.end(ctx, h, StepSkipped, why)
			continue
		}
		return "", "", true
	}
	return EvGiveUp, exhausted(h, last), false
}

// holds checks a step's condition now.
func (a *Actor) holds(ctx context.Context, h *Host, when Condition) (bool, string) {
	if when != WhenGateOpen && when != WhenGateClosed {
		return true, ""
	}
	var ans GateAnswer
	a.read(ctx, func(c context.Context) { ans = a.Gate.Check(c, h.Name) })
	switch {
	case when == WhenGateOpen && !ans.Allowed:
		return false, "when gate_open: live migration gate closed: " + strings.Join(ans.Reasons, "; ")
	case when == WhenGateClosed && ans.Allowed:
		return false, "when gate_closed: the live migration gate is open"
	}
	return true, ""
}

// begin starts step st (index i of n) at now.
func (a *Actor) begin(ctx context.Context, h *Host, st RecoveryStep, i, n int, now time.Time) {
	h.Recovery.Index, h.Recovery.Step, h.Recovery.Since, h.Recovery.ID = i, st.Action, now, obs.NewRequestID()
	a.note(ctx, h, Note{ID: h.Recovery.ID, Action: "recovery " + string(st.Action), Outcome: StepStarted, At: now,
		Detail: fmt.Sprintf("step %d of %d, timeout %s, when %s", i+1, n, st.Timeout, st.When)})
}

// end ends the step in progress with outcome (why says why: the audit
// has it) and adds it to the chain as it ran.
func (a *Actor) end(ctx context.Context, h *Host, outcome, why string) {
	r := &h.Recovery
	at := a.Clock.Now()
	if at.Before(r.Since) {
		at = r.Since
	}
	a.note(ctx, h, Note{ID: r.ID, Action: "recovery " + string(r.Step), Outcome: outcome, Detail: why, At: at})
	if r.Ran != "" {
		r.Ran += " → "
	}
	r.Ran += string(r.Step) + " " + outcome
	r.Step, r.Since, r.ID = "", time.Time{}, ""
}

// exhausted is the reason of the give_up after the last step: why it
// ended, then the chain as it ran (each step's why is in the audit, and
// the reasons of the transitions on the way).
func exhausted(h *Host, why string) string {
	s := "recovery chain exhausted: " + h.Recovery.Ran + " → needs_human"
	if why != "" {
		s = why + "; " + s
	}
	return s
}

// filter leaves out the servers the instance filter skips (Nova status
// ERROR under instances.skip_error), each noted with why.
func (a *Actor) filter(ctx context.Context, cfg Config, h *Host, servers []Server, action, what string) []Server {
	if !cfg.SkipError {
		return servers
	}
	out := make([]Server, 0, len(servers))
	for _, s := range servers {
		if s.Status != "ERROR" {
			out = append(out, s)
			continue
		}
		a.note(ctx, h, Note{Action: action, Target: s.ID, Outcome: StepSkipped,
			Detail: fmt.Sprintf("server %s is in ERROR: %s (instances.skip_error)", s.Name, what)})
	}
	return out
}

// note logs n and records it in the journal, when the journal takes notes.
func (a *Actor) note(ctx context.Context, h *Host, n Note) {
	n.Host = h.Name
	if n.At.IsZero() {
		n.At = a.Clock.Now()
	}
	if n.ID == "" {
		n.ID = obs.NewRequestID()
	}
	obs.Fields{Component: "playbook", RequestID: n.ID, HostID: h.Name, VMID: n.Target, Action: n.Action}.
		Log(a.Log.Info(), 0, n.Outcome).Str("detail", n.Detail).Msg("recovery")
	nj, ok := a.Journal.(NoteJournal)
	if !ok {
		return
	}
	if err := nj.Note(ctx, n); err != nil {
		obs.Fields{Component: "playbook", RequestID: n.ID, HostID: h.Name, VMID: n.Target, Action: n.Action}.
			Log(a.Log.Warn().Err(err), 0, "error").Msg("recovery note not recorded")
	}
}
