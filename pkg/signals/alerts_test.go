package signals

import (
	"math"
	"strings"
	"testing"
	"time"
)

func alertSample(host string, at time.Time, a Alert) Sample {
	v := a.Value
	if a.Signal == "" {
		v = a.Weight
	}
	return Sample{Host: host, Signal: AlertSignal, Value: v, At: at, Alert: &a}
}

var (
	stealAlert = Alert{Name: "HostStealHigh", Signal: CPUSteal, Value: 90} // m = 1
	downAlert  = Alert{Name: "NodeDown", Weight: 1}
	mildAlert  = Alert{Name: "StealSome", Signal: CPUSteal, Value: 5} // m = 0.2
)

// TestAlertsNeverAlone is the table of the alerts rule: which combinations
// of alerts, fenced's own signals and the hard-failure sources give which
// verdict. No row with alerts as the only evidence reaches critical.
func TestAlertsNeverAlone(t *testing.T) {
	const ri = 10 * time.Second
	stale := Control{ServiceUp: true, HeartbeatKnown: true, HeartbeatAge: 25 * time.Second, ReportInterval: ri}
	fresh := Control{ServiceUp: true, HeartbeatKnown: true, HeartbeatAge: 3 * time.Second, ReportInterval: ri}
	with := func(c Control, l Liveness) *Control { c.Libvirt = l; return &c }
	for _, tc := range []struct {
		name   string
		alerts []Alert
		steal  float64 // cpu_steal_pct sample; -1: none (the host is blind)
		ctl    *Control

		level               Level
		hard, warned, blind bool
	}{
		{name: "no alerts, healthy", steal: 0, level: LevelNormal},
		{name: "a strong signal alert alone: warn, no further", alerts: []Alert{stealAlert}, steal: 0, level: LevelWarn, warned: true},
		{name: "every alert at once: still warn", alerts: []Alert{stealAlert, downAlert, {Name: "X", Weight: 1}, {Name: "Y", Signal: HeartbeatLag, Value: 1e6}},
			steal: 0, level: LevelWarn, warned: true},
		{name: "a weight alert alone: warn", alerts: []Alert{downAlert}, steal: 0, level: LevelWarn, warned: true},
		{name: "weights add up", alerts: []Alert{{Name: "A", Weight: 0.2}, {Name: "B", Weight: 0.2}}, steal: 0, level: LevelWarn, warned: true},
		{name: "a weak alert: normal", alerts: []Alert{mildAlert, {Name: "A", Weight: 0.1}}, steal: 0, level: LevelNormal},
		{name: "an alert for an unweighted signal scores 0", alerts: []Alert{{Name: "E", Signal: PodEvictions, Value: 100}}, steal: 0, level: LevelNormal},
		{name: "blind host stays blind", alerts: []Alert{stealAlert, downAlert}, steal: -1, blind: true},
		{name: "own evidence critical: critical as before", alerts: []Alert{stealAlert}, steal: 90, level: LevelCritical},
		{name: "own evidence warn with a strong alert: warn (alerts never add to d)", alerts: []Alert{stealAlert}, steal: 12, level: LevelWarn},

		{name: "alerts and a stale heartbeat, no libvirt probe: hard failure", alerts: []Alert{downAlert}, steal: 0, ctl: &stale, hard: true, level: LevelCritical},
		{name: "alerts and a stale heartbeat, libvirt failed once: hard failure", alerts: []Alert{downAlert}, steal: 0,
			ctl: with(stale, Liveness{Probed: true, Answered: true, Failures: 1}), hard: true, level: LevelCritical},
		{name: "alerts and a stale heartbeat, libvirt answers: agent down, warn", alerts: []Alert{downAlert}, steal: 0,
			ctl: with(stale, Liveness{Probed: true, Answered: true}), level: LevelWarn},
		{name: "alerts and libvirt dead, heartbeat fresh: never (alerts do not stand in for Nova)", alerts: []Alert{downAlert}, steal: 0,
			ctl: with(fresh, Liveness{Probed: true, Answered: true, Failures: 9}), level: LevelWarn, warned: true},
		{name: "alerts and a stale heartbeat, BMC powering on: no hard failure", alerts: []Alert{downAlert}, steal: 0,
			ctl: func() *Control { c := stale; c.BMCPower = "PoweringOn"; return &c }(), level: LevelWarn, warned: true},
		{name: "weak alerts do not corroborate", alerts: []Alert{{Name: "A", Weight: 0.5}}, steal: 0, ctl: &stale, level: LevelWarn, warned: true},
		{name: "a stale heartbeat, no probe, no alerts: as before", steal: 0, ctl: &stale, level: LevelNormal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEval(t, testConfig())
			if tc.steal >= 0 {
				observe(t, e, "h", t0, CPUSteal, tc.steal)
			}
			for _, a := range tc.alerts {
				if err := e.Observe(alertSample("h", t0, a)); err != nil {
					t.Fatal(err)
				}
			}
			if tc.ctl != nil {
				e.ObserveControl("h", *tc.ctl)
			}
			v := e.Evaluate("h", t0)
			if v.Blind != tc.blind {
				t.Fatalf("blind = %v, want %v", v.Blind, tc.blind)
			}
			if len(v.Alerts) != len(tc.alerts) {
				t.Errorf("verdict shows %d alerts, want %d", len(v.Alerts), len(tc.alerts))
			}
			if tc.blind {
				return
			}
			if v.Level != tc.level {
				t.Errorf("level = %s, want %s (%s)", v.Level, tc.level, v.Explain())
			}
			if (v.HardFailure != "") != tc.hard {
				t.Errorf("hard failure = %q, want %v", v.HardFailure, tc.hard)
			}
			if (v.AlertWarn != "") != tc.warned {
				t.Errorf("alert warn = %q, want %v", v.AlertWarn, tc.warned)
			}
			if tc.ctl == nil && len(v.Triggers) > 0 {
				t.Errorf("alerts made triggers: %v", v.Triggers)
			}
			if tc.warned && !strings.Contains(v.Explain(), "never go past warn") {
				t.Errorf("explain = %q", v.Explain())
			}
			if tc.hard && !strings.Contains(v.HardFailure, "alerts corroborate") {
				t.Errorf("hard failure %q does not name the alerts", v.HardFailure)
			}
		})
	}
}

// TestAlertsNeverEnterD: d with and without alerts is the same, and the
// contributions name no alert.
func TestAlertsNeverEnterD(t *testing.T) {
	plain, alerted := newEval(t, testConfig()), newEval(t, testConfig())
	for _, e := range []*Evaluator{plain, alerted} {
		observe(t, e, "h", t0, CPUSteal, 12)
		observe(t, e, "h", t0, RunqueuePerCore, 3)
	}
	for _, a := range []Alert{stealAlert, downAlert} {
		if err := alerted.Observe(alertSample("h", t0, a)); err != nil {
			t.Fatal(err)
		}
	}
	p, a := plain.Evaluate("h", t0), alerted.Evaluate("h", t0)
	if math.Abs(p.D-a.D) > 1e-12 || len(p.Contributions) != len(a.Contributions) {
		t.Fatalf("alerts changed d: %v → %v", p.D, a.D)
	}
}

// TestAlertSetSpeaksForItsTick: the newest set replaces the older one, an
// older one is ignored, and a set speaks only for the time it was observed
// at (a host whose alerts were withdrawn has none at the next tick).
func TestAlertSetSpeaksForItsTick(t *testing.T) {
	e := newEval(t, testConfig())
	t1 := t0.Add(time.Second)
	observe(t, e, "h", t0, CPUSteal, 0)
	_ = e.Observe(alertSample("h", t0, stealAlert))
	_ = e.Observe(alertSample("h", t0, downAlert))
	if v := e.Evaluate("h", t0); len(v.Alerts) != 2 || v.Level != LevelWarn {
		t.Fatalf("at t0: %d alerts, level %s", len(v.Alerts), v.Level)
	}
	if v := e.Evaluate("h", t1); len(v.Alerts) != 0 || v.Level != LevelNormal {
		t.Fatalf("at t1 with no new set: %d alerts, level %s", len(v.Alerts), v.Level)
	}
	_ = e.Observe(alertSample("h", t1, mildAlert))
	_ = e.Observe(alertSample("h", t0, stealAlert)) // late, older: ignored
	v := e.Evaluate("h", t1)
	if len(v.Alerts) != 1 || v.Alerts[0].Name != mildAlert.Name || math.Abs(v.Alerts[0].Score-0.2) > 1e-9 {
		t.Fatalf("at t1: %+v", v.Alerts)
	}
}

func TestBadAlertSamples(t *testing.T) {
	e := newEval(t, testConfig())
	for _, s := range []Sample{
		{Host: "h", Signal: AlertSignal, At: t0},
		alertSample("h", t0, Alert{Signal: CPUSteal, Value: 1}),
		alertSample("h", t0, Alert{Name: "W", Weight: 0}),
		alertSample("h", t0, Alert{Name: "W", Weight: 1.5}),
		alertSample("h", t0, Alert{Name: "S", Signal: "bogus", Value: 1}),
		alertSample("h", t0, Alert{Name: "S", Signal: CPUSteal, Value: -1}),
		alertSample("h", t0, Alert{Name: "S", Signal: CPUSteal, Value: math.Inf(1)}),
		alertSample("h", t0, Alert{Name: "S", Signal: CPUSteal, Value: math.NaN()}),
	} {
		if err := e.Observe(s); err == nil {
			t.Errorf("%+v accepted", s.Alert)
		}
	}
}
