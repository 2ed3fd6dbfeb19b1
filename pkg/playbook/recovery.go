package playbook

import (
	"fmt"
	"strings"
	"time"
)

// RecoveryAction is one step of the escalation chain: what the playbook
// tries, in order, to recover a fenced host (policy recovery:).
type RecoveryAction string

// Recovery steps. needs_human is implicitly last.
const (
	// RecoverLiveMigrate live-migrates the host's servers to the gate's
	// destination (in fenced); only while the live-migration gate is open.
	RecoverLiveMigrate RecoveryAction = "live_migrate"
	// RecoverPowerCycle power-cycles the host out of band (verified), then
	// waits for it to come back; its servers come back with it.
	RecoverPowerCycle RecoveryAction = "power_cycle"
	// RecoverEvacuate powers the host off (verified), evacuates its
	// servers to hosts chosen by execution truth, powers it on and waits
	// for it to come back.
	RecoverEvacuate RecoveryAction = "evacuate"
)

// Condition says when a step of the chain runs. It is checked when the
// step's turn comes; a step whose condition does not hold is skipped (and
// audited as skipped) and the chain moves on.
type Condition string

// Conditions.
const (
	WhenAlways     Condition = "always"      // power_cycle and evacuate: the default
	WhenGateOpen   Condition = "gate_open"   // the live-migration gate is open (live_migrate: the only one allowed)
	WhenGateClosed Condition = "gate_closed" // the live-migration gate is closed (libvirt unresponsive, no destination, …)
)

// RecoveryStep is one entry of the chain.
type RecoveryStep struct {
	Action RecoveryAction `json:"step"`
	// Timeout bounds the step from its start; then the next step starts.
	// Zero takes the default: timeouts.fenced for live_migrate,
	// timeouts.reboot for the others.
	Timeout time.Duration `json:"timeout"`
	When    Condition     `json:"when"` // "": the step's default (gate_open for live_migrate, else always)
}

// Recovery is a host's progress through the chain (fenced and rebooting),
// in its durable record: a new leader resumes at the same step, and no step
// runs twice.
type Recovery struct {
	// Index is the step in progress in the chain, or the next to start
	// when Step is "".
	Index int            `json:"index,omitempty"`
	Step  RecoveryAction `json:"step,omitempty"` // the step in progress ("" before the first, or between fenced and rebooting)
	Since time.Time      `json:"since,omitzero"` // when it started: its timeout counts from here
	ID    string         `json:"id,omitempty"`   // request id of its audit records (start and end)
	Ran   string         `json:"ran,omitempty"`  // the steps ended so far, with their outcomes, as people read them
}

// Step outcomes in the audit (besides "started").
const (
	StepStarted = "started"
	StepOK      = "ok"
	StepFailed  = "failed"
	StepTimeout = "timeout"
	StepSkipped = "skipped"
)

// Chain is the escalation chain in force, with defaults filled in: the
// policy's recovery, or, without one, the chain after_fence implies
// (evacuate: live_migrate → evacuate; reboot_in_place: live_migrate →
// power_cycle), which behaves as fenced did before chains existed.
func (c Config) Chain() []RecoveryStep {
	steps := c.Recovery
	if len(steps) == 0 {
		last := RecoverEvacuate
		if c.AfterFence == AfterFenceRebootInPlace {
			last = RecoverPowerCycle
		}
		steps = []RecoveryStep{{Action: RecoverLiveMigrate}, {Action: last}}
	}
	out := make([]RecoveryStep, len(steps))
	for i, s := range steps {
		if s.When == "" {
			s.When = WhenAlways
			if s.Action == RecoverLiveMigrate {
				s.When = WhenGateOpen
			}
		}
		if s.Timeout <= 0 {
			s.Timeout = c.RebootTimeout
			if s.Action == RecoverLiveMigrate {
				s.Timeout = c.FenceTimeout
			}
		}
		out[i] = s
	}
	return out
}

// DescribeChain says the chain for people: "live_migrate (when gate_open,
// timeout 20m0s) → evacuate (timeout 15m0s) → needs_human".
func DescribeChain(steps []RecoveryStep) string {
	var b strings.Builder
	for _, s := range steps {
		b.WriteString(string(s.Action))
		if s.When != WhenAlways && s.When != "" {
			fmt.Fprintf(&b, " (when %s, timeout %s)", s.When, s.Timeout)
		} else {
			fmt.Fprintf(&b, " (timeout %s)", s.Timeout)
		}
		b.WriteString(" → ")
	}
	b.WriteString("needs_human")
	return b.String()
}

// validateRecovery checks an explicit chain; errors start with the field
// ("recovery[1].when: …").
func validateRecovery(steps []RecoveryStep) error {
	seen := map[RecoveryAction]int{}
	for i, s := range steps {
		f := fmt.Sprintf("recovery[%d]", i)
		switch s.Action {
		case RecoverLiveMigrate, RecoverPowerCycle, RecoverEvacuate:
		default:
			return fmt.Errorf("%s.step: unknown step %q (want live_migrate, power_cycle or evacuate; needs_human is always last)", f, s.Action)
		}
		if j, dup := seen[s.Action]; dup {
			return fmt.Errorf("%s.step: %s is already recovery[%d]: each step at most once", f, s.Action, j)
		}
		seen[s.Action] = i
		if s.Action == RecoverLiveMigrate && i != 0 {
			return fmt.Errorf("%s.step: live_migrate must be the first step (once the host was powered off or cycled there is nothing to migrate)", f)
		}
		if s.Timeout < 0 {
			return fmt.Errorf("%s.timeout: must be positive", f)
		}
		switch s.When {
		case "", WhenAlways, WhenGateOpen, WhenGateClosed:
		default:
			return fmt.Errorf("%s.when: unknown condition %q (want always, gate_open or gate_closed)", f, s.When)
		}
		if s.Action == RecoverLiveMigrate && s.When != "" && s.When != WhenGateOpen {
			return fmt.Errorf("%s.when: live_migrate runs only while the live-migration gate is open: when must be gate_open (or left out), have %s", f, s.When)
		}
	}
	return nil
}
