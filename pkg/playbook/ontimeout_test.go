package playbook

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/fencedhq/fenced/pkg/clock"
	"github.com/fencedhq/fenced/pkg/signals"
)

// TestApprovalOnTimeout: what a host awaiting approval does when its
// deadline passes with no decision, for each approval.on_timeout.
func TestApprovalOnTimeout(t *testing.T) {
	deadline := t0.Add(15 * time.Minute)
	at := deadline.Add(10 * time.Second) // the first tick after the deadline
	waiting := func() Host {
		return Host{Name: "cmp-017", State: AwaitingApproval, Since: t0, ApprovalDeadline: deadline,
			OverWarnSince: t0.Add(-2 * time.Minute), OverCritSince: t0.Add(-time.Minute), ControlFenced: true}
	}
	stillCritical := func() *signals.Verdict { return verdict(0.9) }
	cases := []struct {
		name      string
		on        OnTimeout
		mode      Mode // approve when empty
		host      func(*Host)
		verdict   *signals.Verdict
		fleet     Fleet
		paused    bool
		now       time.Time // at when zero
		want      State
		why       []string // substrings of the reason
		notWhy    string   // must not be in the reason
		wantEvent Event
	}{
		{name: "default (unset) is needs_human, as before", on: "", verdict: stillCritical(), fleet: calmFleet,
			want: NeedsHuman, wantEvent: EvGiveUp, why: []string{"approval deadline 2026-01-15T01:29:00Z passed with no decision"}, notWhy: "on_timeout"},
		{name: "needs_human", on: OnTimeoutNeedsHuman, verdict: stillCritical(), fleet: calmFleet,
			want: NeedsHuman, wantEvent: EvGiveUp, why: []string{"approval deadline 2026-01-15T01:29:00Z passed with no decision"}, notWhy: "on_timeout"},
		{name: "needs_human: even a storm-free fleet and a critical host are not fenced", on: OnTimeoutNeedsHuman, verdict: verdict(0.95, signals.HeartbeatLag),
			fleet: Fleet{Total: 100}, want: NeedsHuman, wantEvent: EvGiveUp},
		{name: "before the deadline nothing happens", on: OnTimeoutProceed, verdict: stillCritical(), fleet: calmFleet, now: deadline.Add(-10 * time.Second),
			want: AwaitingApproval, why: []string{"waiting for approval until 2026-01-15T01:29:00Z"}},
		{name: "proceed: guard consents, still critical → fenced", on: OnTimeoutProceed, verdict: stillCritical(), fleet: Fleet{Total: 100, AtWarnOrWorse: 3, Fencing: 1},
			want: Fenced, wantEvent: EvFence, why: []string{"approval deadline 2026-01-15T01:29:00Z passed", "on_timeout proceed: still critical and the storm guard consents", "1 of 100 hosts fenced, max 2"}},
		{name: "proceed: a trigger alone is critical", on: OnTimeoutProceed, verdict: verdict(0.3, signals.HeartbeatLag), fleet: calmFleet,
			host: func(h *Host) { h.OverCritSince = time.Time{} }, want: Fenced, wantEvent: EvFence},
		{name: "proceed: max_concurrent reached → needs_human", on: OnTimeoutProceed, verdict: stillCritical(), fleet: Fleet{Total: 100, AtWarnOrWorse: 3, Fencing: 2},
			want: NeedsHuman, wantEvent: EvGiveUp, why: []string{"on_timeout proceed refused", "storm guard does not consent", "2 hosts already fenced (max 2)"}},
		{name: "proceed: max_fraction reached → needs_human", on: OnTimeoutProceed, verdict: stillCritical(), fleet: Fleet{Total: 10, AtWarnOrWorse: 2, Fencing: 1},
			want: NeedsHuman, wantEvent: EvGiveUp, why: []string{"storm guard does not consent", "max_fraction 10% allows 1"}},
		{name: "proceed: cluster-wide saturation → needs_human", on: OnTimeoutProceed, verdict: stillCritical(), fleet: Fleet{Total: 10, AtWarnOrWorse: 6},
			want: NeedsHuman, wantEvent: EvGiveUp, why: []string{"storm guard does not consent", "cluster-wide saturation"}},
		{name: "proceed: verdict no longer critical → needs_human, never fenced", on: OnTimeoutProceed, verdict: verdict(0.65), fleet: calmFleet,
			want: NeedsHuman, wantEvent: EvGiveUp, why: []string{"no longer critical (d=0.65, warn)"}},
		{name: "proceed: verdict normal again but not for recover_after → needs_human", on: OnTimeoutProceed, verdict: verdict(0.1), fleet: calmFleet,
			host: func(h *Host) { h.UnderCritSince = at.Add(-time.Minute) }, want: NeedsHuman, wantEvent: EvGiveUp, why: []string{"no longer critical"}},
		{name: "proceed: calm for recover_after steps down, as it would have before the deadline", on: OnTimeoutProceed, verdict: verdict(0.3), fleet: calmFleet,
			host: func(h *Host) { h.UnderCritSince = at.Add(-5 * time.Minute) }, want: Warn, wantEvent: EvDeescalate, why: []string{"on_timeout proceed not taken", "below 0.60"}},
		{name: "proceed: agent failure steps down, never fenced", on: OnTimeoutProceed,
			verdict: &signals.Verdict{D: 0.2, Level: signals.LevelWarn, AgentDown: "Nova heartbeat 45s old"}, fleet: calmFleet,
			want: Warn, wantEvent: EvDeescalate, why: []string{"on_timeout proceed not taken"}},
		{name: "proceed: blind at the deadline → needs_human", on: OnTimeoutProceed, verdict: &signals.Verdict{Blind: true}, fleet: calmFleet,
			want: NeedsHuman, wantEvent: EvGiveUp, why: []string{"no fresh verdict"}},
		{name: "proceed: fleet-wide pause → needs_human", on: OnTimeoutProceed, verdict: stillCritical(), fleet: calmFleet, paused: true,
			want: NeedsHuman, wantEvent: EvGiveUp, why: []string{"paused fleet-wide"}},
		{name: "proceed: observe mode (a reloaded policy) → needs_human", on: OnTimeoutProceed, mode: ModeObserve, verdict: stillCritical(), fleet: calmFleet,
			want: NeedsHuman, wantEvent: EvGiveUp, why: []string{"observe mode"}},
		{name: "proceed: power-cycled within min_power_cycle_interval → needs_human", on: OnTimeoutProceed, verdict: stillCritical(), fleet: calmFleet,
			host: func(h *Host) { h.LastPowerCycle = t0.Add(-time.Hour) }, want: NeedsHuman, wantEvent: EvGiveUp, why: []string{"no automatic reboot loop"}},
		{name: "abort: aborted automatically, with the cool-down", on: OnTimeoutAbort, verdict: stillCritical(), fleet: calmFleet,
			want: Normal, wantEvent: EvAbort, why: []string{"aborted automatically: approval deadline 2026-01-15T01:29:00Z passed with no decision", "on_timeout abort", "cool-down until 2026-01-15T01:59:10Z"}},
		{name: "abort: also when the verdict recovered", on: OnTimeoutAbort, verdict: verdict(0.1), fleet: calmFleet,
			want: Normal, wantEvent: EvAbort, why: []string{"aborted automatically"}},
		{name: "abort: also when blind", on: OnTimeoutAbort, verdict: &signals.Verdict{Blind: true}, fleet: calmFleet,
			want: Normal, wantEvent: EvAbort},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mode := tc.mode
			if mode == "" {
				mode = ModeApprove
			}
			cfg := testCfg(mode)
			cfg.ApprovalOnTimeout = tc.on
			h := waiting()
			if tc.host != nil {
				tc.host(&h)
			}
			now := tc.now
			if now.IsZero() {
				now = at
			}
			dec := Decide(cfg, h, Input{Now: now, Verdict: tc.verdict, Fleet: tc.fleet, Paused: tc.paused})
			why := dec.Reason + "|" + dec.Host.Reason
			if dec.Host.State != tc.want || dec.Event != tc.wantEvent {
				t.Fatalf("state %s by %q, want %s by %q (reason %q)", dec.Host.State, dec.Event, tc.want, tc.wantEvent, why)
			}
			for _, w := range tc.why {
				if !strings.Contains(why, w) {
					t.Errorf("reason %q does not say %q", why, w)
				}
			}
			if tc.notWhy != "" && strings.Contains(why, tc.notWhy) {
				t.Errorf("reason %q says %q", why, tc.notWhy)
			}
			if dec.Event != "" {
				if _, ok := Target(AwaitingApproval, dec.Event); !ok {
					t.Errorf("%s is not a transition from awaiting_approval", dec.Event)
				}
			}
			switch tc.want {
			case Normal:
				if want := now.Add(cfg.AbortCooldown); !dec.Host.CooldownUntil.Equal(want) {
					t.Errorf("cool-down until %s, want %s", dec.Host.CooldownUntil, want)
				}
			case AwaitingApproval:
				if dec.Host.ApprovalOnTimeout != tc.on {
					t.Errorf("record says %q happens at the deadline, want %q", dec.Host.ApprovalOnTimeout, tc.on)
				}
			default:
				if !dec.Host.CooldownUntil.IsZero() {
					t.Errorf("cool-down set on %s", tc.want)
				}
			}
			if tc.want != AwaitingApproval && dec.Host.ApprovalOnTimeout != "" {
				t.Errorf("%s still says %q happens at a deadline", tc.want, dec.Host.ApprovalOnTimeout)
			}
		})
	}
}

// TestAbortAtDeadlineCoolsDown: after an automatic abort the host is not
// escalated past warn until abort_cooldown is over, as after an operator's.
func TestAbortAtDeadlineCoolsDown(t *testing.T) {
	cfg := testCfg(ModeApprove)
	cfg.ApprovalOnTimeout = OnTimeoutAbort
	h := Host{Name: "cmp-017", State: Normal}
	steps := []struct {
		at   time.Duration
		want State
	}{
		{0, Critical},
		{10 * time.Second, AwaitingApproval},
		{10*time.Second + 15*time.Minute + time.Second, Normal}, // the deadline: aborted
		{15*time.Minute + 20*time.Second, Warn},                 // still critical: held at warn
		{15*time.Minute + 30*time.Minute, Warn},                 // the cool-down ends 30 min after the abort
		{15*time.Minute + 31*time.Minute, Critical},
	}
	for i, s := range steps {
		dec := Decide(cfg, h, Input{Now: t0.Add(s.at), Verdict: verdict(0.9, signals.HeartbeatLag), Fleet: calmFleet})
		h = dec.Host
		if h.State != s.want {
			t.Fatalf("step %d: %s, want %s (%q)", i, h.State, s.want, h.Reason)
		}
	}
}

// TestOnTimeoutOnTheRecord: the record of a host awaiting approval says
// what happens at its deadline (the API, fenced hosts and the webhooks read
// it), follows a reloaded policy, and is cleared once the host moves on.
func TestOnTimeoutOnTheRecord(t *testing.T) {
	cfg := testCfg(ModeApprove)
	cfg.ApprovalOnTimeout = OnTimeoutProceed
	h := Host{Name: "cmp-017", State: Normal}
	h = Decide(cfg, h, Input{Now: t0, Verdict: verdict(0.9, signals.HeartbeatLag), Fleet: calmFleet}).Host
	h = Decide(cfg, h, Input{Now: t0.Add(10 * time.Second), Verdict: verdict(0.9, signals.HeartbeatLag), Fleet: calmFleet}).Host
	if h.State != AwaitingApproval || h.ApprovalOnTimeout != OnTimeoutProceed || !h.ApprovalDeadline.Equal(t0.Add(10*time.Second+15*time.Minute)) {
		t.Fatalf("entering awaiting_approval: %+v", h)
	}
	cfg.ApprovalOnTimeout = OnTimeoutAbort // SIGHUP
	h = Decide(cfg, h, Input{Now: t0.Add(20 * time.Second), Verdict: verdict(0.9, signals.HeartbeatLag), Fleet: calmFleet}).Host
	if h.ApprovalOnTimeout != OnTimeoutAbort {
		t.Fatalf("after a reload the record says %q", h.ApprovalOnTimeout)
	}
	cfg.ApprovalOnTimeout = "" // the default
	h = Decide(cfg, h, Input{Now: t0.Add(30 * time.Second), Verdict: verdict(0.9, signals.HeartbeatLag), Fleet: calmFleet}).Host
	if h.ApprovalOnTimeout != OnTimeoutNeedsHuman {
		t.Fatalf("default: the record says %q", h.ApprovalOnTimeout)
	}
	dec := Decide(cfg, h, Input{Now: t0.Add(time.Minute), Event: EvApprove, Reason: "alice: ok", Fleet: calmFleet})
	if dec.Host.State != Fenced || dec.Host.ApprovalOnTimeout != "" {
		t.Fatalf("approved: %+v", dec.Host)
	}
}

// TestProceedAtDeadlineRunsTheFence: on the machine, a proceed at the
// deadline runs the fenced state's entry actions (the gate, then the power
// cycle), the notification of the request says what happens at the
// deadline, and a refusal touches nothing.
func TestProceedAtDeadlineRunsTheFence(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fleet Fleet
		want  string
	}{
		{"guard consents", calmFleet, "critical,awaiting_approval,fenced,rebooting"},
		{"guard refuses", Fleet{Total: 100, AtWarnOrWorse: 3, Fencing: 2}, "critical,awaiting_approval,needs_human"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &fakeWorld{}
			var notes []Notification
			a := &Actor{Nova: w, Gate: w, Power: w, Checker: w,
				Notify: notifyFunc(func(n Notification) { notes = append(notes, n) }), Journal: w, Clock: clock.NewFake(t0), Log: zerolog.Nop()}
			cfg := testCfg(ModeApprove)
			cfg.ApprovalOnTimeout = OnTimeoutProceed
			cfg.AfterFence = AfterFenceRebootInPlace
			m, err := NewMachine(cfg, Host{Name: "cmp-017", State: Normal}, a)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			var all []Change
			for _, at := range []time.Duration{0, 10 * time.Second, 15*time.Minute + 20*time.Second} {
				fleet := calmFleet
				if at > time.Minute {
					fleet = tc.fleet
				}
				ch, err := m.Step(ctx, Input{Now: t0.Add(at), Verdict: critical(), Fleet: fleet})
				if err != nil {
					t.Fatal(err)
				}
				all = append(all, ch...)
			}
			if got := states(all); got != tc.want {
				t.Fatalf("went %s, want %s", got, tc.want)
			}
			cycled := indexOf(w.calls, "power_cycle cmp-017") >= 0
			if cycled != strings.HasSuffix(tc.want, "rebooting") {
				t.Fatalf("power cycled: %v (calls %v)", cycled, w.calls)
			}
			var asked *Notification
			for i := range notes {
				if notes[i].State == AwaitingApproval {
					asked = &notes[i]
				}
			}
			if asked == nil || asked.OnTimeout != OnTimeoutProceed || !asked.Deadline.Equal(t0.Add(10*time.Second+15*time.Minute)) {
				t.Fatalf("the approval request's notification: %+v", asked)
			}
		})
	}
}

type notifyFunc func(Notification)

func (f notifyFunc) Notify(_ context.Context, n Notification) { f(n) }

func TestParseOnTimeout(t *testing.T) {
	for in, want := range map[string]OnTimeout{"": OnTimeoutNeedsHuman, "needs_human": OnTimeoutNeedsHuman, "proceed": OnTimeoutProceed, "abort": OnTimeoutAbort} {
		if got, err := ParseOnTimeout(in); err != nil || got != want {
			t.Errorf("%q: %q %v", in, got, err)
		}
	}
	for _, bad := range []string{"Proceed", "fence", "needs-human", " abort"} {
		if _, err := ParseOnTimeout(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	c := testCfg(ModeApprove)
	c.ApprovalOnTimeout = "fence"
	if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), "approval.on_timeout: ") {
		t.Fatalf("Validate: %v", err)
	}
	// an unvalidated bad value never acts: it is needs_human
	h := Host{Name: "cmp-017", State: AwaitingApproval, ApprovalDeadline: t0}
	if dec := Decide(c, h, Input{Now: t0.Add(time.Second), Verdict: verdict(0.9), Fleet: calmFleet}); dec.Host.State != NeedsHuman {
		t.Fatalf("bad on_timeout: %s", dec.Host.State)
	}
}
