package playbook

import (
	"strings"
	"testing"
	"time"

	"github.com/fencedhq/fenced/pkg/signals"
)

// hardFailure is a verdict of the corroborated hard-failure rule: d may be
// low (libvirt timeouts and a 20 s heartbeat are under their thresholds),
// yet the host no longer executes.
func hardFailure(d float64) *signals.Verdict {
	return &signals.Verdict{D: d, Level: signals.LevelCritical, HardFailure: "libvirt failed 3 probes in a row, Nova heartbeat 21s old"}
}

// agentDown is an agent-failure verdict: the heartbeat trigger dropped and
// d counted without it.
func agentDown(d float64) *signals.Verdict {
	return &signals.Verdict{D: d, Level: signals.LevelWarn, AgentDown: "Nova heartbeat 45s old"}
}

func TestHardFailureIsCriticalWithoutDwell(t *testing.T) {
	for _, mode := range []Mode{ModeAuto, ModeApprove, ModeObserve} {
		for _, from := range []State{Normal, Warn} {
			dec := Decide(testCfg(mode), Host{State: from}, Input{Now: t0, Verdict: hardFailure(0.2), Fleet: calmFleet})
			if dec.Event != EvCritical || dec.To != Critical {
				t.Errorf("%s from %s: event %q to %q, want critical on the first verdict", mode, from, dec.Event, dec.To)
			}
			if !strings.Contains(dec.Reason, "hard failure") {
				t.Errorf("%s from %s: reason %q does not name the hard failure", mode, from, dec.Reason)
			}
		}
	}
	// once critical, a hard failure is not calm: no de-escalation however long it lasts
	h := Host{State: Critical, Since: t0, UnderCritSince: t0.Add(-time.Hour)}
	dec := Decide(testCfg(ModeObserve), h, Input{Now: t0.Add(10 * time.Minute), Verdict: hardFailure(0.2), Fleet: calmFleet})
	if dec.Event == EvDeescalate {
		t.Errorf("a host in hard failure de-escalated: %q", dec.Reason)
	}
}

// TestAgentDownNeverFences walks an agent failure through every mode for an
// hour of verdicts: warn (scheduling frozen) after the dwell, never critical,
// never fenced, whatever the heartbeat does.
func TestAgentDownNeverFences(t *testing.T) {
	for _, mode := range []Mode{ModeAuto, ModeApprove, ModeObserve} {
		h := Host{Name: "cn1", State: Normal}
		var states []State
		for i := 0; i < 360; i++ {
			now := t0.Add(time.Duration(i) * 10 * time.Second)
			dec := Decide(testCfg(mode), h, Input{Now: now, Verdict: agentDown(0.05), Fleet: calmFleet})
			h = dec.Host
			if dec.Event != "" {
				states = append(states, dec.To)
				if dec.To != Warn {
					t.Fatalf("%s: agent failure led to %s (%s)", mode, dec.To, dec.Reason)
				}
				if !strings.HasPrefix(dec.Reason, signals.AgentDownReason) {
					t.Errorf("%s: reason %q, want it to start with %q", mode, dec.Reason, signals.AgentDownReason)
				}
			}
		}
		if len(states) != 1 || h.State != Warn {
			t.Errorf("%s: transitions %v, end state %s; want exactly one, to warn", mode, states, h.State)
		}
	}
}

// TestAgentDownDeescalatesACriticalHost: a host already critical (say the
// heartbeat trigger fired before libvirt answered again) that turns out to
// be an agent failure steps down to warn at once, before anything
// irreversible, instead of being fenced.
func TestAgentDownDeescalatesACriticalHost(t *testing.T) {
	for _, st := range []State{Critical, AwaitingApproval} {
		h := Host{Name: "cn1", State: st, Since: t0, ApprovalDeadline: t0.Add(15 * time.Minute)}
		dec := Decide(testCfg(ModeAuto), h, Input{Now: t0.Add(10 * time.Second), Verdict: agentDown(0.1), Fleet: calmFleet})
		if dec.Event != EvDeescalate || dec.To != Warn {
			t.Errorf("%s: event %q to %q, want deescalate to warn", st, dec.Event, dec.To)
		}
	}
}

// TestAgentDownWithHighDNeverCritical: even if d were over d_crit for the
// dwell (a policy weighting the discounted signals heavily), the agent
// verdict keeps the host at warn.
func TestAgentDownWithHighDNeverCritical(t *testing.T) {
	h := Host{Name: "cn1", State: Warn}
	for i := 0; i < 30; i++ {
		dec := Decide(testCfg(ModeAuto), h, Input{Now: t0.Add(time.Duration(i) * 10 * time.Second), Verdict: agentDown(0.8), Fleet: calmFleet})
		h = dec.Host
		if h.State != Warn {
			t.Fatalf("step %d: %s (%s)", i, h.State, dec.Reason)
		}
	}
}
