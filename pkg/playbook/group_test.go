package playbook

import (
	"strings"
	"testing"
	"time"
)

func TestParseMinHealthy(t *testing.T) {
	for _, tc := range []struct {
		in    string
		want  MinHealthy
		of10  int
		of3   int
		error bool
	}{
		{in: "", want: MinHealthy{}},
		{in: "3", want: MinHealthy{Count: 3}, of10: 3, of3: 3},
		{in: "60%", want: MinHealthy{Percent: 60}, of10: 6, of3: 2}, // 1.8 rounds up
		{in: "100%", want: MinHealthy{Percent: 100}, of10: 10, of3: 3},
		{in: "0%", error: true}, {in: "101%", error: true}, {in: "-1", error: true}, {in: "many", error: true}, {in: "NaN%", error: true},
	} {
		got, err := ParseMinHealthy(tc.in)
		if (err != nil) != tc.error || got != tc.want {
			t.Errorf("ParseMinHealthy(%q) = %+v, %v", tc.in, got, err)
			continue
		}
		if err == nil && (got.Of(10) != tc.of10 || got.Of(3) != tc.of3) {
			t.Errorf("%q: of 10 = %d, of 3 = %d; want %d, %d", tc.in, got.Of(10), got.Of(3), tc.of10, tc.of3)
		}
	}
}

// TestGroupGuardDecides: the group's guard and pause, on top of the
// fleet's, for an automatic fence, an operator's approval and on_timeout
// proceed; the default group adds nothing.
func TestGroupGuardDecides(t *testing.T) {
	crit := func(state State) Host {
		return Host{Name: "a1", State: state, Since: t0, OverWarnSince: t0.Add(-3 * time.Minute), OverCritSince: t0.Add(-2 * time.Minute),
			ApprovalDeadline: t0.Add(-time.Second)}
	}
	guarded := Group{Name: "a", Total: 4, Healthy: 2, AtWarnOrWorse: 2, Fencing: 1,
		Guard: GroupGuard{MinHealthy: MinHealthy{Count: 3}, MaxConcurrent: 2}}
	for _, tc := range []struct {
		name  string
		mode  Mode
		on    OnTimeout
		state State
		event Event
		group Group
		want  State
		why   string
	}{
		{name: "auto: below min_healthy holds", mode: ModeAuto, state: Critical, group: guarded, want: Critical,
			why: "group a guard: a fence would leave 2 of 4 hosts healthy; min_healthy 3 needs 3"},
		{name: "auto: enough healthy → fenced", mode: ModeAuto, state: Critical, group: with(guarded, func(g *Group) { g.Healthy = 3 }), want: Fenced},
		{name: "auto: group max_concurrent holds", mode: ModeAuto, state: Critical, group: with(guarded, func(g *Group) { g.Healthy, g.Fencing = 3, 2 }), want: Critical,
			why: "max_concurrent 2"},
		{name: "auto: saturated group holds", mode: ModeAuto, state: Critical, group: with(guarded, func(g *Group) { g.Healthy, g.AtWarnOrWorse = 3, 3 }), want: Critical,
			why: "group a saturated: 3 of 4 hosts at warn or worse (75% > 50%)"},
		{name: "auto: paused group holds", mode: ModeAuto, state: Critical, group: Group{Name: "a", Total: 4, Paused: true}, want: Critical,
			why: "fencing paused in group a by an operator"},
		{name: "auto: the default group has no guard of its own", mode: ModeAuto, state: Critical,
			group: Group{Name: DefaultGroup, Total: 4, AtWarnOrWorse: 4, Guard: GroupGuard{MaxConcurrent: 1}, Fencing: 3}, want: Fenced},
		{name: "approve: a paused group refuses the approval", mode: ModeApprove, state: AwaitingApproval, event: EvApprove,
			group: Group{Name: "a", Total: 4, Paused: true}, want: AwaitingApproval, why: "paused in group a: resume it first"},
		{name: "approve: group max_concurrent holds the approval", mode: ModeApprove, state: AwaitingApproval, event: EvApprove,
			group: with(guarded, func(g *Group) { g.Fencing = 2 }), want: AwaitingApproval, why: "approval held by the group a guard"},
		{name: "approve: min_healthy does not hold a person's approval", mode: ModeApprove, state: AwaitingApproval, event: EvApprove,
			group: guarded, want: Fenced},
		{name: "proceed at the deadline: the group guard must consent", mode: ModeApprove, on: OnTimeoutProceed, state: AwaitingApproval,
			group: guarded, want: NeedsHuman, why: "on_timeout proceed refused: the storm guard does not consent: group a guard"},
		{name: "proceed at the deadline: a paused group refuses", mode: ModeApprove, on: OnTimeoutProceed, state: AwaitingApproval,
			group: Group{Name: "a", Total: 4, Paused: true}, want: NeedsHuman, why: "fencing paused in group a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testCfg(tc.mode)
			cfg.ApprovalOnTimeout = tc.on
			in := Input{Now: t0, Verdict: verdict(0.9), Fleet: calmFleet, Group: tc.group, Event: tc.event, Reason: "ok"}
			if tc.event != "" {
				in.Verdict = nil
			}
			d := Decide(cfg, crit(tc.state), in)
			reason := d.Reason
			if d.Event == "" {
				reason = d.Host.Reason
			}
			if d.Host.State != tc.want || !strings.Contains(reason, tc.why) {
				t.Fatalf("%s %q, want %s with %q", d.Host.State, reason, tc.want, tc.why)
			}
		})
	}
}

func with(g Group, f func(*Group)) Group {
	f(&g)
	return g
}
