// Package playbook drives one compute host through the recovery and fencing
// playbook of Appendix B.5:
//
//	normal → warn → critical → fenced → rebooting → restored → normal
//
// with three extra states: awaiting_approval (approve mode: an operator must
// approve before anything irreversible happens, within a deadline) and
// needs_human (every automatic path failed or is forbidden; a person decides).
//
// Deciding and doing are separate. Decide is pure: given a host's record, a
// verdict, the fleet's situation, an optional event and the time, it names the
// next transition and why. The transition table (Transitions) is data and is
// enforced by a looplab/fsm machine. Doing happens in Actor, which performs a
// state's entry actions through small interfaces declared here (control plane,
// migration gate, power fencer, notifier, journal) and turns their results
// into the next event. Irreversible actions are written to the Journal as an
// intent before they run and as an outcome after.
package playbook
