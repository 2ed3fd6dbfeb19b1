package playbook

// State is a host's place in the playbook. The names are a public contract.
type State string

// States.
const (
	Normal           State = "normal"
	Warn             State = "warn"
	Critical         State = "critical"
	AwaitingApproval State = "awaiting_approval"
	Fenced           State = "fenced"
	Rebooting        State = "rebooting"
	Restored         State = "restored"
	NeedsHuman       State = "needs_human"
)

// States lists every state in playbook order.
var States = []State{Normal, Warn, Critical, AwaitingApproval, Fenced, Rebooting, Restored, NeedsHuman}

// Event names a transition.
type Event string

// Events. The first group is decided from verdicts and time, the second comes
// from operators, the third from the outcome of entry actions.
const (
	EvWarn            Event = "warn"             // d ≥ d_warn held for the dwell
	EvCritical        Event = "critical"         // d ≥ d_crit held for the dwell, or a trigger signal
	EvRequestApproval Event = "request_approval" // approve mode: wait for a person
	EvFence           Event = "fence"            // go ahead: evacuate or power-cycle (auto mode, or an expired approval under on_timeout proceed)
	EvRecover         Event = "recover"          // calm for long enough: back to watching
	EvDeescalate      Event = "deescalate"       // calm below critical before anything irreversible
	EvGiveUp          Event = "give_up"          // a deadline passed or an action failed: a person decides

	EvApprove Event = "approve"
	EvAbort   Event = "abort"
	EvUnfence Event = "unfence"

	EvPowerCycle Event = "power_cycle" // migration impossible or failed: reboot out of band
	EvRestore    Event = "restore"     // servers moved away, or the host came back
)

// Transition is one row of the table.
type Transition struct {
	Event Event
	From  []State
	To    State
}

// Transitions is the whole playbook as data.
var Transitions = []Transition{
	{EvWarn, []State{Normal, Restored}, Warn},
	{EvCritical, []State{Normal, Warn, Restored}, Critical},
	{EvRequestApproval, []State{Critical}, AwaitingApproval},
	{EvFence, []State{Critical, AwaitingApproval}, Fenced}, // from awaiting_approval: approval.on_timeout proceed
	{EvApprove, []State{AwaitingApproval, NeedsHuman, Critical}, Fenced},
	{EvPowerCycle, []State{Fenced}, Rebooting},
	{EvRestore, []State{Fenced, Rebooting}, Restored},
	{EvRecover, []State{Warn, Restored}, Normal},
	{EvDeescalate, []State{Critical, AwaitingApproval}, Warn},
	{EvAbort, []State{Warn, Critical, AwaitingApproval, NeedsHuman}, Normal},
	{EvUnfence, []State{NeedsHuman, Restored, Fenced}, Normal},
	{EvGiveUp, []State{AwaitingApproval, Critical, Fenced, Rebooting, Restored}, NeedsHuman},
}

// Target returns where ev leads from s, and whether it is allowed there.
func Target(s State, ev Event) (State, bool) {
	for _, t := range Transitions {
		if t.Event != ev {
			continue
		}
		for _, f := range t.From {
			if f == s {
				return t.To, true
			}
		}
	}
	return "", false
}

// Valid reports whether s is a known state.
func (s State) Valid() bool {
	for _, k := range States {
		if k == s {
			return true
		}
	}
	return false
}

// Rank orders states by severity for fleet counts: normal and restored are 0.
func (s State) Rank() int {
	switch s {
	case Warn:
		return 1
	case Critical, AwaitingApproval, NeedsHuman:
		return 2
	case Fenced, Rebooting:
		return 3
	}
	return 0
}
