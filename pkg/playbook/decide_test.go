package playbook

import (
	"strings"
	"testing"
	"time"

	"github.com/fencedhq/fenced/pkg/signals"
)

var t0 = time.Date(2026, 1, 15, 1, 14, 0, 0, time.UTC)

func testCfg(mode Mode) Config {
	return Config{
		Mode: mode, DWarn: 0.4, DCrit: 0.7, Hysteresis: 0.1,
		DwellWarn: 30 * time.Second, DwellCrit: 60 * time.Second,
		RecoverAfter: 5 * time.Minute, RestoreHold: 5 * time.Minute,
		ApprovalTimeout: 15 * time.Minute, AbortCooldown: 30 * time.Minute,
		FenceTimeout: 20 * time.Minute, RebootTimeout: 15 * time.Minute,
		MinPowerCycleInterval: 6 * time.Hour,
		Storm:                 StormGuard{MaxConcurrent: 2, MaxFraction: 0.1, SaturationFraction: 0.5},
	}
}

func verdict(d float64, triggers ...signals.Name) *signals.Verdict {
	v := &signals.Verdict{D: d, Triggers: triggers}
	switch {
	case d >= 0.7 || len(triggers) > 0:
		v.Level = signals.LevelCritical
	case d >= 0.4:
		v.Level = signals.LevelWarn
	}
	return v
}

var calmFleet = Fleet{Total: 100, AtWarnOrWorse: 1}

// run feeds d values 10 s apart from start and returns the decisions that changed state.
func run(cfg Config, h Host, start time.Time, ds []float64, fleet Fleet) (Host, []Decision) {
	var out []Decision
	for i, d := range ds {
		dec := Decide(cfg, h, Input{Now: start.Add(time.Duration(i) * 10 * time.Second), Verdict: verdict(d), Fleet: fleet})
		h = dec.Host
		if dec.Event != "" {
			out = append(out, dec)
		}
	}
	return h, out
}

func repeat(d float64, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = d
	}
	return out
}

func TestTransitionsTable(t *testing.T) {
	type step struct {
		at      time.Duration
		d       float64
		trigger bool
		event   Event
		fleet   *Fleet
		want    State  // expected state after the step
		wantWhy string // substring of the reason or note
	}
	cases := []struct {
		name  string
		mode  Mode
		start Host
		steps []step
	}{
		{"warn needs the dwell", ModeAuto, Host{State: Normal}, []step{
			{at: 0, d: 0.45, want: Normal},
			{at: 20 * time.Second, d: 0.45, want: Normal},
			{at: 30 * time.Second, d: 0.45, want: Warn, wantWhy: "d=0.45"},
		}},
		{"critical after d ≥ d_crit held for the dwell, fenced one tick later", ModeAuto, Host{State: Warn}, []step{
			{at: 0, d: 0.75, want: Warn},
			{at: 50 * time.Second, d: 0.75, want: Warn},
			{at: 60 * time.Second, d: 0.75, want: Critical},
			{at: 70 * time.Second, d: 0.75, want: Fenced},
		}},
		{"critical from heartbeat lag alone, straight from normal", ModeAuto, Host{State: Normal}, []step{
			{at: 0, d: 0.2, trigger: true, want: Critical, wantWhy: "heartbeat_lag_s over critical"},
			{at: 10 * time.Second, d: 0.2, trigger: true, want: Fenced},
		}},
		{"observe mode never fences", ModeObserve, Host{State: Normal}, []step{
			{at: 0, d: 0.9, trigger: true, want: Critical},
			{at: 10 * time.Second, d: 0.9, trigger: true, want: Critical, wantWhy: "observe mode"},
			{at: time.Hour, d: 0.9, trigger: true, want: Critical},
			{at: time.Hour, event: EvApprove, want: Critical, wantWhy: "observe mode"},
		}},
		{"approve mode waits for approval, then fences", ModeApprove, Host{State: Normal}, []step{
			{at: 0, d: 0.9, trigger: true, want: Critical},
			{at: 10 * time.Second, d: 0.9, trigger: true, want: AwaitingApproval},
			{at: 14 * time.Minute, d: 0.9, trigger: true, want: AwaitingApproval, wantWhy: "waiting for approval"},
			{at: 14 * time.Minute, event: EvApprove, want: Fenced, wantWhy: "approved"},
		}},
		{"approval has a deadline", ModeApprove, Host{State: Normal}, []step{
			{at: 0, d: 0.9, trigger: true, want: Critical},
			{at: 10 * time.Second, d: 0.9, trigger: true, want: AwaitingApproval},
			{at: 10*time.Second + 15*time.Minute + time.Second, d: 0.9, trigger: true, want: NeedsHuman, wantWhy: "approval deadline"},
		}},
		{"abort returns to watching with a cool-down", ModeApprove, Host{State: Normal}, []step{
			{at: 0, d: 0.9, trigger: true, want: Critical},
			{at: 10 * time.Second, d: 0.9, trigger: true, want: AwaitingApproval},
			{at: 20 * time.Second, event: EvAbort, want: Normal, wantWhy: "aborted"},
			{at: 30 * time.Second, d: 0.9, trigger: true, want: Warn, wantWhy: "cool-down"},
			{at: 29 * time.Minute, d: 0.9, trigger: true, want: Warn},
			{at: 31 * time.Minute, d: 0.9, trigger: true, want: Critical},
		}},
		{"storm guard: too many hosts fenced", ModeAuto, Host{State: Normal}, []step{
			{at: 0, d: 0.9, trigger: true, want: Critical, fleet: &Fleet{Total: 100, AtWarnOrWorse: 3, Fencing: 2}},
			{at: 10 * time.Second, d: 0.9, trigger: true, want: Critical, fleet: &Fleet{Total: 100, AtWarnOrWorse: 3, Fencing: 2}, wantWhy: "storm guard"},
			{at: 20 * time.Second, event: EvApprove, want: Critical, fleet: &Fleet{Total: 100, AtWarnOrWorse: 3, Fencing: 2}, wantWhy: "storm guard"},
			{at: 30 * time.Second, d: 0.9, trigger: true, want: Fenced, fleet: &Fleet{Total: 100, AtWarnOrWorse: 3, Fencing: 1}},
		}},
		{"storm guard: fraction of the fleet", ModeAuto, Host{State: Critical}, []step{
			{at: 0, d: 0.9, trigger: true, want: Critical, fleet: &Fleet{Total: 10, AtWarnOrWorse: 2, Fencing: 1}, wantWhy: "allows 1"},
		}},
		{"cluster-wide saturation stops automatic fencing", ModeAuto, Host{State: Critical}, []step{
			{at: 0, d: 0.9, trigger: true, want: Critical, fleet: &Fleet{Total: 10, AtWarnOrWorse: 6}, wantWhy: "cluster-wide saturation"},
			{at: 10 * time.Second, d: 0.9, trigger: true, want: Fenced, fleet: &Fleet{Total: 10, AtWarnOrWorse: 5}},
		}},
		{"calm below critical before anything irreversible steps down", ModeApprove, Host{State: Normal}, []step{
			{at: 0, d: 0.9, trigger: true, want: Critical},
			{at: 10 * time.Second, d: 0.9, trigger: true, want: AwaitingApproval},
			{at: 20 * time.Second, d: 0.5, want: AwaitingApproval},
			{at: 20*time.Second + 5*time.Minute, d: 0.5, want: Warn, wantWhy: "below 0.60"},
		}},
		{"fenced without an outcome calls a person", ModeAuto, Host{State: Fenced, Since: t0}, []step{
			{at: 21 * time.Minute, d: 0.9, want: NeedsHuman, wantWhy: "no evacuation outcome"},
		}},
		{"reboot that never returns calls a person, even when blind", ModeAuto, Host{State: Rebooting, Since: t0}, []step{
			{at: 16 * time.Minute, d: -1, want: NeedsHuman, wantWhy: "did not come back"},
		}},
		{"blind host holds its state", ModeAuto, Host{State: Warn}, []step{
			{at: 0, d: -1, want: Warn, wantWhy: "blind"},
			{at: time.Hour, d: -1, want: Warn},
		}},
		{"restored goes back to normal once calm", ModeAuto, Host{State: Restored, LastPowerCycle: t0.Add(-10 * time.Minute)}, []step{
			{at: 0, d: 0.1, want: Restored},
			{at: 5 * time.Minute, d: 0.1, want: Normal},
		}},
		{"relapse after a power cycle is not rebooted again", ModeAuto, Host{State: Restored, LastPowerCycle: t0.Add(-10 * time.Minute)}, []step{
			{at: 0, d: 0.9, trigger: true, want: NeedsHuman, wantWhy: "relapse"},
		}},
		{"outcomes: power cycle, then host back", ModeAuto, Host{State: Fenced}, []step{
			{at: 0, event: EvPowerCycle, want: Rebooting},
			{at: time.Minute, event: EvRestore, want: Restored},
		}},
		{"unfence from needs_human", ModeAuto, Host{State: NeedsHuman}, []step{
			{at: 0, event: EvUnfence, want: Normal, wantWhy: "unfenced"},
		}},
		{"a fleet-wide pause holds fencing and approvals", ModeAuto, Host{State: Critical}, []step{
			{at: 0, d: 0.9, trigger: true, want: Critical, wantWhy: "paused"},
			{at: 10 * time.Second, event: EvApprove, want: Critical, wantWhy: "paused"},
		}},
		{"abort refused once irreversible actions run", ModeAuto, Host{State: Rebooting, Since: t0}, []step{
			{at: 0, event: EvAbort, want: Rebooting, wantWhy: "not allowed"},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testCfg(tc.mode)
			h := tc.start
			h.Name = "cmp-017"
			for i, s := range tc.steps {
				in := Input{Now: t0.Add(s.at), Fleet: calmFleet, Event: s.event, Reason: "test", Paused: strings.Contains(tc.name, "pause")}
				if s.fleet != nil {
					in.Fleet = *s.fleet
				}
				if s.event == "" {
					v := verdict(s.d)
					if s.d < 0 {
						v = &signals.Verdict{Blind: true}
					}
					if s.trigger {
						v = verdict(s.d, signals.HeartbeatLag)
						v.Level = signals.LevelCritical
					}
					in.Verdict = v
				}
				dec := Decide(cfg, h, in)
				h = dec.Host
				why := dec.Reason + "|" + h.Reason
				if h.State != s.want {
					t.Fatalf("step %d: state %s, want %s (reason %q)", i, h.State, s.want, why)
				}
				if s.wantWhy != "" && !strings.Contains(why, s.wantWhy) {
					t.Fatalf("step %d: reason %q does not mention %q", i, why, s.wantWhy)
				}
			}
		})
	}
}

func TestFlappingDoesNotFlap(t *testing.T) {
	cfg := testCfg(ModeAuto)
	// d oscillates around d_warn every tick for an hour: never enters warn
	var ds []float64
	for i := 0; i < 360; i++ {
		ds = append(ds, []float64{0.38, 0.42}[i%2])
	}
	if _, decs := run(cfg, Host{Name: "h", State: Normal}, t0, ds, calmFleet); len(decs) != 0 {
		t.Fatalf("oscillating d produced %d transitions: first %+v", len(decs), decs[0])
	}
	// once in warn, dipping just under d_warn (inside the hysteresis band) keeps it there
	ds = append(repeat(0.5, 4), nil...)
	for i := 0; i < 360; i++ {
		ds = append(ds, []float64{0.35, 0.45}[i%2])
	}
	h, decs := run(cfg, Host{Name: "h", State: Normal}, t0, ds, calmFleet)
	if len(decs) != 1 || decs[0].To != Warn || h.State != Warn {
		t.Fatalf("want exactly one transition to warn, got %d (state %s)", len(decs), h.State)
	}
	// leaving warn needs d below d_warn − hysteresis for RecoverAfter: 4 min 50 s is not enough
	h, decs = run(cfg, h, t0.Add(2*time.Hour), repeat(0.25, 30), calmFleet)
	if len(decs) != 0 {
		t.Fatalf("left warn after 290 s of calm: %+v", decs)
	}
	_, decs = run(cfg, h, t0.Add(2*time.Hour+300*time.Second), repeat(0.25, 1), calmFleet)
	if len(decs) != 1 || decs[0].To != Normal {
		t.Fatalf("want recover to normal after 5 min calm, got %+v", decs)
	}
}

func TestEveryTransitionReachable(t *testing.T) {
	// every row of the table names known states and no (state, event) pair is ambiguous
	seen := map[string]bool{}
	for _, tr := range Transitions {
		if !tr.To.Valid() {
			t.Errorf("%s leads to unknown state %s", tr.Event, tr.To)
		}
		for _, f := range tr.From {
			k := string(f) + "/" + string(tr.Event)
			if seen[k] {
				t.Errorf("%s is ambiguous", k)
			}
			seen[k] = true
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if err := testCfg(ModeAuto).Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*Config){
		"mode":       func(c *Config) { c.Mode = "yolo" },
		"hys":        func(c *Config) { c.Hysteresis = 0.5 },
		"approval":   func(c *Config) { c.ApprovalTimeout = 0 },
		"storm":      func(c *Config) { c.Storm.MaxConcurrent = 0 },
		"saturation": func(c *Config) { c.Storm.SaturationFraction = 1.5 },
	} {
		c := testCfg(ModeAuto)
		mut(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), strings.Split(name, "_")[0][:3]) {
			t.Errorf("%s: got %v", name, err)
		}
	}
}
