package playbook

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/fencedhq/fenced/pkg/clock"
	"github.com/fencedhq/fenced/pkg/signals"
)

// fakeWorld records every call in order.
type fakeWorld struct {
	calls      []string
	gateOpen   bool
	migrateErr error
	powerErr   error
	back       bool
	refuse     bool // journal refuses intents (leadership lost)
	servers    []Server
}

func (f *fakeWorld) log(s string, a ...any) { f.calls = append(f.calls, fmt.Sprintf(s, a...)) }
func (f *fakeWorld) Disable(_ context.Context, h, _ string) error {
	f.log("disable %s", h)
	return nil
}
func (f *fakeWorld) Enable(_ context.Context, h string) error { f.log("enable %s", h); return nil }
func (f *fakeWorld) ForceDown(_ context.Context, h string, d bool) error {
	f.log("force_down %s %v", h, d)
	return nil
}
func (f *fakeWorld) Servers(context.Context, string) ([]Server, error) { return f.servers, nil }
func (f *fakeWorld) LiveMigrate(_ context.Context, id, dest string) error {
	f.log("migrate %s %s", id, dest)
	return f.migrateErr
}
func (f *fakeWorld) Check(context.Context, string) GateAnswer {
	if f.gateOpen {
		return GateAnswer{Allowed: true, Destination: "cmp-002"}
	}
	return GateAnswer{Reasons: []string{"libvirt p95 900 ms over warn 200 ms"}}
}
func (f *fakeWorld) PowerCycle(_ context.Context, h string) error {
	f.log("power_cycle %s", h)
	return f.powerErr
}
func (f *fakeWorld) Back(context.Context, string) (bool, error) { return f.back, nil }
func (f *fakeWorld) Notify(_ context.Context, n Notification) {
	f.log("notify %s", n.State)
}
func (f *fakeWorld) Intent(_ context.Context, in Intent) (string, error) {
	if f.refuse {
		return "", errors.New("not the leader")
	}
	f.log("intent %s", in.Action)
	return in.Action, nil
}
func (f *fakeWorld) Outcome(_ context.Context, id string, err error) error {
	f.log("outcome %s %v", id, err == nil)
	return nil
}

func newTestMachine(t *testing.T, mode Mode, w *fakeWorld, st State) *Machine {
	t.Helper()
	a := &Actor{Mode: mode, Nova: w, Gate: w, Power: w, Checker: w, Notify: w, Journal: w,
		Clock: clock.NewFake(t0), Log: zerolog.Nop()}
	m, err := NewMachine(testCfg(mode), Host{Name: "cmp-017", State: st}, a)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func critical() *signals.Verdict {
	return &signals.Verdict{D: 0.9, Level: signals.LevelCritical, Triggers: []signals.Name{signals.HeartbeatLag}}
}

func states(ch []Change) string {
	var s []string
	for _, c := range ch {
		s = append(s, string(c.To))
	}
	return strings.Join(s, ",")
}

func indexOf(calls []string, s string) int {
	for i, c := range calls {
		if c == s {
			return i
		}
	}
	return -1
}

func TestGateClosedPowerCyclesOnceAfterIntent(t *testing.T) {
	w := &fakeWorld{}
	m := newTestMachine(t, ModeAuto, w, Normal)
	ctx := context.Background()
	ch, err := m.Step(ctx, Input{Now: t0, Verdict: critical(), Fleet: calmFleet})
	if err != nil || states(ch) != "critical" {
		t.Fatalf("step 1: %v %s", err, states(ch))
	}
	if indexOf(w.calls, "force_down cmp-017 true") < 0 || indexOf(w.calls, "intent force_down") > indexOf(w.calls, "force_down cmp-017 true") {
		t.Fatalf("critical must journal then force down: %v", w.calls)
	}
	ch, err = m.Step(ctx, Input{Now: t0.Add(10 * time.Second), Verdict: critical(), Fleet: calmFleet})
	if err != nil || states(ch) != "fenced,rebooting" {
		t.Fatalf("step 2: %v %s", err, states(ch))
	}
	if !strings.Contains(ch[1].Reason, "gate closed") {
		t.Fatalf("reason %q", ch[1].Reason)
	}
	pi, pc := indexOf(w.calls, "intent power_cycle"), indexOf(w.calls, "power_cycle cmp-017")
	if pi < 0 || pc < pi {
		t.Fatalf("power cycle must follow its intent: %v", w.calls)
	}
	// not back yet: ticks change nothing and do not power-cycle again
	for i := 0; i < 5; i++ {
		if ch, _ := m.Step(ctx, Input{Now: t0.Add(time.Duration(20+10*i) * time.Second), Verdict: &signals.Verdict{Blind: true}, Fleet: calmFleet}); len(ch) != 0 {
			t.Fatalf("unexpected change %s", states(ch))
		}
	}
	w.back = true
	w.servers = []Server{{ID: "vm1", Name: "vm1", Status: "ACTIVE", Running: true}}
	ch, err = m.Step(ctx, Input{Now: t0.Add(2 * time.Minute), Verdict: &signals.Verdict{D: 0.1}, Fleet: calmFleet})
	if err != nil || states(ch) != "restored" {
		t.Fatalf("step back: %v %s", err, states(ch))
	}
	n := 0
	for _, c := range w.calls {
		if c == "power_cycle cmp-017" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("power cycled %d times", n)
	}
	if indexOf(w.calls, "force_down cmp-017 false") < 0 || indexOf(w.calls, "enable cmp-017") < 0 {
		t.Fatalf("restored must unfence: %v", w.calls)
	}
}

func TestGateOpenMigratesInsteadOfRebooting(t *testing.T) {
	w := &fakeWorld{gateOpen: true, servers: []Server{{ID: "a"}, {ID: "b"}}}
	m := newTestMachine(t, ModeAuto, w, Critical)
	ch, err := m.Step(context.Background(), Input{Now: t0, Verdict: critical(), Fleet: calmFleet})
	if err != nil || states(ch)[:14] != "fenced,restore" {
		t.Fatalf("%v %s", err, states(ch))
	}
	if indexOf(w.calls, "migrate a cmp-002") < 0 || indexOf(w.calls, "migrate b cmp-002") < 0 {
		t.Fatalf("servers not migrated: %v", w.calls)
	}
	if indexOf(w.calls, "power_cycle cmp-017") >= 0 {
		t.Fatal("power-cycled although migration worked")
	}
}

func TestMigrationFailureFallsBackToPowerCycle(t *testing.T) {
	w := &fakeWorld{gateOpen: true, servers: []Server{{ID: "a"}}, migrateErr: errors.New("migration timed out")}
	m := newTestMachine(t, ModeAuto, w, Critical)
	ch, _ := m.Step(context.Background(), Input{Now: t0, Verdict: critical(), Fleet: calmFleet})
	if states(ch) != "fenced,rebooting" || !strings.Contains(ch[1].Reason, "migration failed") {
		t.Fatalf("%s %v", states(ch), ch)
	}
}

func TestPowerFailureNeedsHuman(t *testing.T) {
	w := &fakeWorld{powerErr: errors.New("bmc unreachable")}
	m := newTestMachine(t, ModeAuto, w, Critical)
	ch, _ := m.Step(context.Background(), Input{Now: t0, Verdict: critical(), Fleet: calmFleet})
	if states(ch) != "fenced,rebooting,needs_human" {
		t.Fatalf("%s", states(ch))
	}
}

func TestLostLeadershipTakesNoAction(t *testing.T) {
	w := &fakeWorld{refuse: true}
	m := newTestMachine(t, ModeAuto, w, Critical)
	ch, _ := m.Step(context.Background(), Input{Now: t0, Verdict: critical(), Fleet: calmFleet})
	if indexOf(w.calls, "power_cycle cmp-017") >= 0 {
		t.Fatalf("acted without a journalled intent: %v", w.calls)
	}
	if got := states(ch); got != "fenced,rebooting,needs_human" {
		t.Fatalf("%s", got)
	}
}

func TestObserveModeChangesNothing(t *testing.T) {
	w := &fakeWorld{}
	m := newTestMachine(t, ModeObserve, w, Normal)
	for i := 0; i < 10; i++ {
		if _, err := m.Step(context.Background(), Input{Now: t0.Add(time.Duration(i) * 10 * time.Second), Verdict: critical(), Fleet: calmFleet}); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range w.calls {
		if !strings.HasPrefix(c, "notify") {
			t.Fatalf("observe mode acted: %v", w.calls)
		}
	}
	if m.Host().State != Critical {
		t.Fatalf("state %s", m.Host().State)
	}
}

func TestOperatorEventInWrongStateIsAnError(t *testing.T) {
	m := newTestMachine(t, ModeApprove, &fakeWorld{}, Normal)
	if _, err := m.Step(context.Background(), Input{Now: t0, Event: EvApprove, Reason: "x"}); err == nil {
		t.Fatal("approve of a normal host accepted")
	}
}

func TestRelapseFromRestoredFreezesSchedulingAgain(t *testing.T) {
	w := &fakeWorld{}
	m := newTestMachine(t, ModeApprove, w, Restored)
	warn := &signals.Verdict{D: 0.5, Level: signals.LevelWarn}
	for i := 0; i < 4; i++ { // d over d_warn for the 30 s dwell
		if _, err := m.Step(context.Background(), Input{Now: t0.Add(time.Duration(i) * 10 * time.Second), Verdict: warn, Fleet: calmFleet}); err != nil {
			t.Fatal(err)
		}
	}
	if m.Host().State != Warn || indexOf(w.calls, "disable cmp-017") < 0 {
		t.Fatalf("restored → warn must disable scheduling again: state %s, calls %v", m.Host().State, w.calls)
	}
	// critical from warn does not disable twice
	w.calls = nil
	if _, err := m.Step(context.Background(), Input{Now: t0.Add(time.Minute), Verdict: critical(), Fleet: calmFleet}); err != nil {
		t.Fatal(err)
	}
	if indexOf(w.calls, "disable cmp-017") >= 0 || indexOf(w.calls, "force_down cmp-017 true") < 0 {
		t.Fatalf("warn → critical: %v", w.calls)
	}
}
