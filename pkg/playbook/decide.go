package playbook

import (
	"fmt"
	"math"
	"time"

	"github.com/fencedhq/fenced/pkg/signals"
)

// Mode says how far fenced may act on its own.
type Mode string

// Modes.
const (
	ModeAuto    Mode = "auto"    // fence and power-cycle without asking
	ModeApprove Mode = "approve" // control-plane fencing is automatic; anything irreversible waits for an operator
	ModeObserve Mode = "observe" // notify only; change nothing
)

// ParseMode checks a mode name.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeAuto, ModeApprove, ModeObserve:
		return m, nil
	}
	return "", fmt.Errorf("unknown mode %q (want auto, approve or observe)", s)
}

// AfterFence is what the playbook does with a fenced host's servers when
// live migration is impossible.
type AfterFence string

// After-fence recoveries.
const (
	// AfterFenceEvacuate powers the host off (verified), evacuates its
	// servers to destinations the gate chooses, then powers it on.
	AfterFenceEvacuate AfterFence = "evacuate"
	// AfterFenceRebootInPlace power-cycles the host; its servers come back
	// with it.
	AfterFenceRebootInPlace AfterFence = "reboot_in_place"
)

// ParseAfterFence checks an after_fence value ("" is evacuate).
func ParseAfterFence(s string) (AfterFence, error) {
	switch a := AfterFence(s); a {
	case "":
		return AfterFenceEvacuate, nil
	case AfterFenceEvacuate, AfterFenceRebootInPlace:
		return a, nil
	}
	return "", fmt.Errorf("unknown after_fence %q (want evacuate or reboot_in_place)", s)
}

// OnTimeout is what happens to a host awaiting approval when its approval
// deadline passes with no decision (policy approval.on_timeout).
type OnTimeout string

// What happens at the approval deadline.
const (
	// OnTimeoutNeedsHuman (the default): the host goes to needs_human;
	// nothing automatic.
	OnTimeoutNeedsHuman OnTimeout = "needs_human"
	// OnTimeoutProceed: the host is fenced as if approved, only when its
	// verdict is still critical and the storm guard consents at that moment
	// (the guard of an automatic fence); otherwise it goes to needs_human.
	OnTimeoutProceed OnTimeout = "proceed"
	// OnTimeoutAbort: the request is aborted as an operator's abort would
	// (control-plane fence undone, abort_cooldown), audited as automatic.
	OnTimeoutAbort OnTimeout = "abort"
)

// ParseOnTimeout checks an approval.on_timeout value ("" is needs_human).
func ParseOnTimeout(s string) (OnTimeout, error) {
	switch o := OnTimeout(s); o {
	case "":
		return OnTimeoutNeedsHuman, nil
	case OnTimeoutNeedsHuman, OnTimeoutProceed, OnTimeoutAbort:
		return o, nil
	}
	return "", fmt.Errorf("unknown on_timeout %q (want needs_human, proceed or abort)", s)
}

// Describe says in a few words what happens at the deadline, for people
// (webhooks, fenced hosts).
func (o OnTimeout) Describe() string {
	switch o {
	case OnTimeoutProceed:
		return "proceed: fenced if still critical and the storm guard consents, else needs_human"
	case OnTimeoutAbort:
		return "abort: control-plane fence undone, abort cool-down"
	}
	return "needs_human: nothing automatic"
}

// StormGuard limits automatic fencing across the fleet.
type StormGuard struct {
	MaxConcurrent int     // at most this many hosts fenced or rebooting at once
	MaxFraction   float64 // nor more than this fraction of the fleet
	// SaturationFraction: when more than this fraction of hosts is at warn or
	// worse the cluster is saturated (section 4.3): there is nowhere to
	// evacuate to, and automatic fencing stops.
	SaturationFraction float64
}

// Config holds the playbook's settings; pkg/policy fills it from a file.
type Config struct {
	Mode         Mode
	AfterFence   AfterFence // default evacuate
	DWarn, DCrit float64
	// Hysteresis: a host leaves a state only after d stays below the lower
	// threshold (d_warn−Hysteresis, d_crit−Hysteresis) for RecoverAfter.
	Hysteresis   float64
	DwellWarn    time.Duration // d ≥ d_warn this long before warn
	DwellCrit    time.Duration // d ≥ d_crit this long before critical
	RecoverAfter time.Duration
	RestoreHold  time.Duration // calm this long in restored before normal

	ApprovalTimeout time.Duration // an approval request expires after this
	// ApprovalOnTimeout is what happens when it expires ("": needs_human).
	ApprovalOnTimeout OnTimeout
	AbortCooldown     time.Duration // after an abort, no escalation past warn for this long
	FenceTimeout      time.Duration // longest time in fenced before a person is called
	RebootTimeout     time.Duration // longest wait for a power-cycled host to come back
	// MinPowerCycleInterval: a host is power-cycled automatically at most once
	// in this interval; a relapse goes to a person (no reboot loops).
	MinPowerCycleInterval time.Duration

	Storm StormGuard

	// Recovery is the escalation chain of a fenced host (policy
	// recovery:); nil takes the chain after_fence implies (Chain).
	Recovery []RecoveryStep
	// SkipError (policy instances.skip_error): servers whose Nova status
	// is ERROR are neither live-migrated nor evacuated, and do not fail the
	// restored check; each is audited as skipped.
	SkipError bool
}

// Validate checks relations between the settings.
func (c Config) Validate() error {
	if _, err := ParseMode(string(c.Mode)); err != nil {
		return fmt.Errorf("mode: %w", err)
	}
	if _, err := ParseAfterFence(string(c.AfterFence)); err != nil {
		return fmt.Errorf("after_fence: %w", err)
	}
	if _, err := ParseOnTimeout(string(c.ApprovalOnTimeout)); err != nil {
		return fmt.Errorf("approval.on_timeout: %w", err)
	}
	if !(0 < c.DWarn && c.DWarn < c.DCrit && c.DCrit <= 1) {
		return fmt.Errorf("thresholds: need 0 < d_warn < d_crit <= 1")
	}
	if c.Hysteresis < 0 || c.Hysteresis >= c.DWarn {
		return fmt.Errorf("thresholds.hysteresis: need 0 <= hysteresis < d_warn, have %g", c.Hysteresis)
	}
	for name, d := range map[string]time.Duration{
		"dwell.warn": c.DwellWarn, "dwell.critical": c.DwellCrit,
	} {
		if d < 0 {
			return fmt.Errorf("%s: must not be negative", name)
		}
	}
	for name, d := range map[string]time.Duration{
		"recover_after": c.RecoverAfter, "restore_hold": c.RestoreHold,
		"approval.timeout": c.ApprovalTimeout, "abort_cooldown": c.AbortCooldown,
		"timeouts.fenced": c.FenceTimeout, "timeouts.reboot": c.RebootTimeout,
		"min_power_cycle_interval": c.MinPowerCycleInterval,
	} {
		if d <= 0 {
			return fmt.Errorf("%s: must be positive", name)
		}
	}
	if err := validateRecovery(c.Recovery); err != nil {
		return err
	}
	if c.Storm.MaxConcurrent < 1 {
		return fmt.Errorf("storm_guard.max_concurrent: must be at least 1")
	}
	if !(c.Storm.MaxFraction > 0 && c.Storm.MaxFraction <= 1) {
		return fmt.Errorf("storm_guard.max_fraction: must be in (0,1]")
	}
	if !(c.Storm.SaturationFraction > 0 && c.Storm.SaturationFraction <= 1) {
		return fmt.Errorf("storm_guard.saturation_fraction: must be in (0,1]")
	}
	return nil
}

// Host is the durable record of one host: what a new leader needs to resume.
type Host struct {
	Name  string    `json:"name"`
	State State     `json:"state"`
	Since time.Time `json:"since"`

	// Dwell and hysteresis trackers: the start of the current run of
	// verdicts over or under a threshold (zero when the run is broken).
	OverWarnSince  time.Time `json:"over_warn_since,omitzero"`
	OverCritSince  time.Time `json:"over_crit_since,omitzero"`
	UnderWarnSince time.Time `json:"under_warn_since,omitzero"` // d < d_warn − hysteresis
	UnderCritSince time.Time `json:"under_crit_since,omitzero"` // d < d_crit − hysteresis

	Onset            time.Time `json:"onset,omitzero"` // first verdict of the current episode over warn
	ApprovalDeadline time.Time `json:"approval_deadline,omitzero"`
	// ApprovalOnTimeout is what happens at ApprovalDeadline (awaiting_approval
	// only): the policy in force, refreshed on every decision, so a reloaded
	// policy shows at once. It is what people are told; the decision at the
	// deadline reads the policy itself.
	ApprovalOnTimeout OnTimeout `json:"approval_on_timeout,omitempty"`
	CooldownUntil     time.Time `json:"cooldown_until,omitzero"`
	LastPowerCycle    time.Time `json:"last_power_cycle,omitzero"`
	ControlFenced     bool      `json:"control_fenced,omitempty"` // disabled + forced down by fenced
	// Step is the recovery's progress in rebooting (after_fence evacuate):
	// "" → off (verified) → evacuated → on, then the wait for the host.
	// Each step is idempotent, so a new leader resumes where the record says.
	Step string `json:"step,omitempty"`
	// Recovery is the escalation chain's progress in fenced and rebooting:
	// the step in progress, when it started, and how the earlier ones
	// ended. A new leader resumes at that step.
	Recovery Recovery `json:"recovery,omitzero"`
	// EnterFrom, when set, says the entry actions of State (entered from
	// EnterFrom) are in flight off the engine's goroutine and have not
	// completed: a new leader that resumes the record runs them again
	// (each is idempotent, or checked against the intents first).
	EnterFrom State   `json:"enter_from,omitempty"`
	Reason    string  `json:"reason,omitempty"`
	LastD     float64 `json:"last_d"`
}

// Fleet is the situation across all hosts, for the storm guard.
type Fleet struct {
	Total         int // hosts in the fleet
	AtWarnOrWorse int // hosts in warn or a more severe state
	Fencing       int // hosts fenced or rebooting now
}

// Input is everything Decide looks at.
type Input struct {
	Now     time.Time
	Verdict *signals.Verdict // nil when the input is only an event
	Fleet   Fleet
	Event   Event  // operator or action outcome; empty on a verdict tick
	Reason  string // why the event happened (operator's reason, error text)
	Paused  bool   // an operator paused fencing fleet-wide: classify, notify, act on nothing
	// Group is the host's group (zero: none): its own guard and pause,
	// checked on top of the fleet's.
	Group Group
}

// Decision is what Decide concluded. Event is empty when nothing changes.
type Decision struct {
	Event  Event
	To     State
	Reason string
	Host   Host // the record with trackers updated (and state changed, if Event is set)
}

// Decide is the whole decision logic: pure, no I/O.
func Decide(cfg Config, h Host, in Input) Decision {
	now := in.Now
	if in.Verdict != nil && !in.Verdict.Blind {
		track(cfg, &h, in.Verdict, now)
	}
	if h.State == AwaitingApproval {
		h.ApprovalOnTimeout = cfg.onTimeout()
	}
	ev, reason := choose(cfg, &h, in)
	d := Decision{Host: h}
	if ev == "" {
		if reason != "" {
			d.Host.Reason = reason
		}
		return d
	}
	to, ok := Target(h.State, ev)
	if !ok {
		d.Reason = fmt.Sprintf("%s not allowed in %s", ev, h.State)
		return d
	}
	d.Event, d.To, d.Reason = ev, to, reason
	d.Host = enter(cfg, h, to, ev, reason, now)
	return d
}

func track(cfg Config, h *Host, v *signals.Verdict, now time.Time) {
	h.LastD = v.D
	over := func(since *time.Time, cond bool) {
		switch {
		case !cond:
			*since = time.Time{}
		case since.IsZero():
			*since = now
		}
	}
	over(&h.OverWarnSince, v.D >= cfg.DWarn || v.Level >= signals.LevelWarn)
	over(&h.OverCritSince, v.D >= cfg.DCrit)
	over(&h.UnderWarnSince, v.D < cfg.DWarn-cfg.Hysteresis && v.Level == signals.LevelNormal)
	over(&h.UnderCritSince, v.D < cfg.DCrit-cfg.Hysteresis && v.Level < signals.LevelCritical)
	switch {
	case h.Onset.IsZero() && !h.OverWarnSince.IsZero():
		h.Onset = now
	case h.State == Normal && h.OverWarnSince.IsZero():
		h.Onset = time.Time{} // the episode is over
	}
}

func held(since, now time.Time, d time.Duration) bool {
	return !since.IsZero() && now.Sub(since) >= d
}

// choose picks the event for this input, or "" with an optional note.
func choose(cfg Config, h *Host, in Input) (Event, string) {
	now := in.Now
	if in.Event != "" {
		return operatorOrOutcome(cfg, h, in)
	}
	v := in.Verdict
	// Deadlines run whether or not the host is visible.
	switch h.State {
	case AwaitingApproval:
		if now.After(h.ApprovalDeadline) {
			return atDeadline(cfg, h, in)
		}
	case Fenced:
		if now.Sub(h.Since) > cfg.FenceTimeout {
			return EvGiveUp, fmt.Sprintf("no evacuation outcome within %s", cfg.FenceTimeout)
		}
	case Rebooting:
		// a record with a chain step: the actor's poll owns the step's
		// timeout (it audits it and moves on); a record without one (written
		// before chains existed) keeps the single reboot deadline
		if h.Recovery.Step == "" && now.Sub(h.Since) > cfg.RebootTimeout {
			return EvGiveUp, fmt.Sprintf("host did not come back within %s of the power cycle", cfg.RebootTimeout)
		}
	}
	if v == nil {
		return "", ""
	}
	if v.Blind {
		return "", "blind: no fresh signals; holding state"
	}
	// the corroborated hard-failure rule is independent evidence that the
	// host no longer executes: critical at once, like a trigger
	triggered := len(v.Triggers) > 0 || v.HardFailure != ""
	critNow := triggered || held(h.OverCritSince, now, cfg.DwellCrit)
	agentDown := v.AgentDown != ""
	if agentDown {
		// the compute agent is down while execution is healthy: freeze
		// scheduling and page (warn), never fence
		critNow = false
	}
	warnNow := held(h.OverWarnSince, now, cfg.DwellWarn) || critNow
	cooling := now.Before(h.CooldownUntil)
	why := v.Explain // only called when a transition needs its reason

	switch h.State {
	case Normal, Warn, Restored:
		if critNow && !cooling {
			if h.State == Restored && now.Sub(h.LastPowerCycle) < cfg.MinPowerCycleInterval {
				return EvGiveUp, "relapse after a power cycle " + now.Sub(h.LastPowerCycle).Round(time.Second).String() + " ago: " + why()
			}
			return EvCritical, why()
		}
		if warnNow && h.State != Warn {
			if cooling && critNow {
				return EvWarn, why() + "; held at warn by the cool-down after an abort"
			}
			return EvWarn, why()
		}
		if h.State == Warn && held(h.UnderWarnSince, now, cfg.RecoverAfter) {
			return EvRecover, fmt.Sprintf("d below %.2f for %s", cfg.DWarn-cfg.Hysteresis, cfg.RecoverAfter)
		}
		if h.State == Restored && held(h.UnderWarnSince, now, cfg.RestoreHold) {
			return EvRecover, fmt.Sprintf("restored and calm for %s", cfg.RestoreHold)
		}
		if cooling && critNow {
			return "", "cool-down after abort until " + h.CooldownUntil.Format(time.RFC3339)
		}
	case Critical, AwaitingApproval:
		if agentDown {
			return EvDeescalate, why()
		}
		if !triggered && held(h.UnderCritSince, now, cfg.RecoverAfter) {
			return EvDeescalate, fmt.Sprintf("d below %.2f for %s", cfg.DCrit-cfg.Hysteresis, cfg.RecoverAfter)
		}
		if h.State == AwaitingApproval {
			return "", "waiting for approval until " + h.ApprovalDeadline.Format(time.RFC3339)
		}
		if in.Paused {
			return "", "fencing paused fleet-wide by an operator"
		}
		if in.Group.Paused {
			return "", "fencing paused in group " + in.Group.Name + " by an operator"
		}
		switch cfg.Mode {
		case ModeObserve:
			return "", "observe mode: no fencing"
		case ModeApprove:
			return EvRequestApproval, "approve mode: " + why()
		}
		if hold := guard(cfg, in.Fleet); hold != "" {
			return "", hold
		}
		if hold := groupGuard(cfg.Storm.SaturationFraction, in.Group); hold != "" {
			return "", hold
		}
		if !h.LastPowerCycle.IsZero() && now.Sub(h.LastPowerCycle) < cfg.MinPowerCycleInterval {
			return EvGiveUp, "power-cycled " + now.Sub(h.LastPowerCycle).Round(time.Second).String() + " ago; no automatic reboot loop"
		}
		return EvFence, why()
	}
	return "", ""
}

// onTimeout is what happens at the approval deadline (needs_human unless
// the policy says otherwise).
func (c Config) onTimeout() OnTimeout {
	if o, err := ParseOnTimeout(string(c.ApprovalOnTimeout)); err == nil {
		return o
	}
	return OnTimeoutNeedsHuman // Validate refuses it; never act on a bad value
}

// atDeadline decides for a host whose approval deadline passed with no
// decision, as approval.on_timeout says. The reason names the deadline,
// what was done and why: it is the transition's record in the audit log.
func atDeadline(cfg Config, h *Host, in Input) (Event, string) {
	passed := fmt.Sprintf("approval deadline %s passed with no decision", h.ApprovalDeadline.Format(time.RFC3339))
	switch cfg.onTimeout() {
	case OnTimeoutAbort:
		// as an operator's abort: back to watching, the control-plane
		// fence undone, and the cool-down (enter) keeps it at warn
		return EvAbort, fmt.Sprintf("aborted automatically: %s; on_timeout abort (cool-down until %s)",
			passed, in.Now.Add(cfg.AbortCooldown).Format(time.RFC3339))
	case OnTimeoutProceed:
		return proceedAtDeadline(cfg, h, in, passed)
	}
	return EvGiveUp, passed
}

// proceedAtDeadline fences a host whose approval expired under on_timeout
// proceed, only when an automatic fence would be allowed at this moment:
// the verdict is still critical (a host that is no longer critical is never
// fenced without a person), nothing holds fencing fleet-wide, the storm
// guard consents (max_concurrent, max_fraction, saturation) and no power
// cycle ran within min_power_cycle_interval. A verdict calm long enough to
// step down steps down, as it would have a tick earlier (an operator can
// no longer approve such a host either); any other refusal goes to
// needs_human, saying why.
func proceedAtDeadline(cfg Config, h *Host, in Input, passed string) (Event, string) {
	refuse := func(why string) (Event, string) {
		return EvGiveUp, passed + "; on_timeout proceed refused: " + why
	}
	v, now := in.Verdict, in.Now
	if v == nil || v.Blind {
		return refuse("no fresh verdict shows the host is still critical")
	}
	triggered := len(v.Triggers) > 0 || v.HardFailure != ""
	switch {
	case v.AgentDown != "":
		return EvDeescalate, passed + "; on_timeout proceed not taken: " + v.Explain()
	case !triggered && held(h.UnderCritSince, now, cfg.RecoverAfter):
		return EvDeescalate, fmt.Sprintf("%s; on_timeout proceed not taken: d below %.2f for %s", passed, cfg.DCrit-cfg.Hysteresis, cfg.RecoverAfter)
	case v.Level < signals.LevelCritical:
		return refuse(fmt.Sprintf("the verdict is no longer critical (d=%.2f, %s); not fenced without a person", v.D, v.Level))
	case in.Paused:
		return refuse("fencing paused fleet-wide by an operator")
	case in.Group.Paused:
		return refuse("fencing paused in group " + in.Group.Name + " by an operator")
	case cfg.Mode == ModeObserve:
		return refuse("observe mode: no fencing")
	}
	if hold := guard(cfg, in.Fleet); hold != "" {
		return refuse("the storm guard does not consent: " + hold)
	}
	if hold := groupGuard(cfg.Storm.SaturationFraction, in.Group); hold != "" {
		return refuse("the storm guard does not consent: " + hold)
	}
	if !h.LastPowerCycle.IsZero() && now.Sub(h.LastPowerCycle) < cfg.MinPowerCycleInterval {
		return refuse("power-cycled " + now.Sub(h.LastPowerCycle).Round(time.Second).String() + " ago; no automatic reboot loop")
	}
	f := in.Fleet
	return EvFence, fmt.Sprintf("%s; on_timeout proceed: still critical and the storm guard consents (%d of %d hosts fenced, max %d): %s",
		passed, f.Fencing, f.Total, cfg.Storm.MaxConcurrent, v.Explain())
}

// guard returns why automatic fencing must wait, or "".
func guard(cfg Config, f Fleet) string {
	if f.Total <= 0 {
		return ""
	}
	if frac := float64(f.AtWarnOrWorse) / float64(f.Total); frac > cfg.Storm.SaturationFraction {
		return fmt.Sprintf("cluster-wide saturation: %d of %d hosts at warn or worse (%.0f%% > %.0f%%); no evacuation target, automatic fencing stopped",
			f.AtWarnOrWorse, f.Total, 100*frac, 100*cfg.Storm.SaturationFraction)
	}
	if f.Fencing >= cfg.Storm.MaxConcurrent {
		return fmt.Sprintf("storm guard: %d hosts already fenced (max %d)", f.Fencing, cfg.Storm.MaxConcurrent)
	}
	if allowed := FractionAllows(cfg.Storm.MaxFraction, f.Total); f.Fencing+1 > allowed {
		return fmt.Sprintf("storm guard: fencing one more would fence %d of %d hosts; max_fraction %.0f%% allows %d",
			f.Fencing+1, f.Total, 100*cfg.Storm.MaxFraction, allowed)
	}
	return ""
}

// FractionAllows is how many hosts of a fleet of total max_fraction lets be
// fenced at once: floor(max_fraction × total), but at least one, so a small
// cloud can still fence its one bad host (max_concurrent and the saturation
// guard still apply). With 0.1: 1 host of 1, 3, 6 or 10; 10 of 100.
func FractionAllows(maxFraction float64, total int) int {
	n := int(math.Floor(maxFraction*float64(total) + 1e-9))
	return max(n, 1)
}

func operatorOrOutcome(cfg Config, h *Host, in Input) (Event, string) {
	reason := in.Reason
	switch in.Event {
	case EvApprove:
		if in.Paused {
			return "", "fencing is paused fleet-wide: resume first"
		}
		if g := in.Group; g.Paused {
			return "", "fencing is paused in group " + g.Name + ": resume it first"
		}
		if f := in.Fleet; f.Total > 0 && f.Fencing >= cfg.Storm.MaxConcurrent {
			return "", fmt.Sprintf("approval held by the storm guard: %d hosts already fenced (max %d)", f.Fencing, cfg.Storm.MaxConcurrent)
		}
		if g := in.Group; g.guarded() && g.Guard.MaxConcurrent > 0 && g.Fencing >= g.Guard.MaxConcurrent {
			return "", fmt.Sprintf("approval held by the group %s guard: %d hosts already fenced (max_concurrent %d)", g.Name, g.Fencing, g.Guard.MaxConcurrent)
		}
		if cfg.Mode == ModeObserve {
			return "", "observe mode: approval recorded, no fencing"
		}
		return EvApprove, "approved: " + reason
	case EvAbort:
		return EvAbort, "aborted: " + reason
	case EvUnfence:
		return EvUnfence, "unfenced by operator: " + reason
	}
	return in.Event, reason
}

// enter updates the record for entering state to.
func enter(cfg Config, h Host, to State, ev Event, reason string, now time.Time) Host {
	h.State, h.Since, h.Reason = to, now, reason
	if to != AwaitingApproval {
		h.ApprovalOnTimeout = ""
	}
	if to != Rebooting {
		// entering fenced starts a fresh chain; rebooting goes on with it
		h.Step, h.Recovery = "", Recovery{}
	}
	switch to {
	case AwaitingApproval:
		h.ApprovalDeadline = now.Add(cfg.ApprovalTimeout)
		h.ApprovalOnTimeout = cfg.onTimeout()
	case Rebooting:
		h.LastPowerCycle = now
	case Normal:
		// Onset stays until the next calm tick, so the "back to normal"
		// notification still belongs to its incident
		h.ApprovalDeadline = time.Time{}
		if ev == EvAbort {
			h.CooldownUntil = now.Add(cfg.AbortCooldown)
		}
	case Warn:
		h.ApprovalDeadline = time.Time{}
	}
	if ev == EvRecover || ev == EvDeescalate {
		// a step down restarts the dwell: escalating again needs a fresh run
		h.OverWarnSince, h.OverCritSince = time.Time{}, time.Time{}
	}
	return h
}
