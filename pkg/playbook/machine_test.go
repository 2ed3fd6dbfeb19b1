package playbook

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/fencedhq/fenced/pkg/clock"
	"github.com/fencedhq/fenced/pkg/fencing"
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
	power      fencing.PowerState
	evacErr    map[string]error
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
func (f *fakeWorld) PowerOff(_ context.Context, h string) error {
	f.log("power_off %s", h)
	if f.powerErr == nil {
		f.power = fencing.Off
	}
	return f.powerErr
}
func (f *fakeWorld) PowerOn(_ context.Context, h string) error {
	f.log("power_on %s", h)
	if f.powerErr == nil {
		f.power = fencing.On
	}
	return f.powerErr
}
func (f *fakeWorld) PowerState(context.Context, string) (fencing.PowerState, error) {
	if f.power == "" {
		return fencing.On, nil
	}
	return f.power, nil
}
func (f *fakeWorld) Evacuate(_ context.Context, id, dest string) error {
	f.log("evacuate %s %s", id, dest)
	return f.evacErr[id]
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
	a := &Actor{Nova: w, Gate: w, Power: w, Checker: w, Notify: w, Journal: w,
		Clock: clock.NewFake(t0), Log: zerolog.Nop()}
	cfg := testCfg(mode)
	cfg.AfterFence = AfterFenceRebootInPlace
	m, err := NewMachine(cfg, Host{Name: "cmp-017", State: st}, a)
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
	if indexOf(w.calls, "force_down cmp-017 false") >= 0 || indexOf(w.calls, "enable cmp-017") >= 0 {
		t.Fatalf("restored must stay fenced until restore_hold is over: %v", w.calls)
	}
	// calm for restore_hold: normal, and only now unfenced
	hold := testCfg(ModeAuto).RestoreHold
	for _, at := range []time.Duration{3 * time.Minute, 3*time.Minute + hold} {
		if ch, err = m.Step(ctx, Input{Now: t0.Add(at), Verdict: &signals.Verdict{D: 0.1}, Fleet: calmFleet}); err != nil {
			t.Fatal(err)
		}
	}
	if m.Host().State != Normal || indexOf(w.calls, "force_down cmp-017 false") < 0 || indexOf(w.calls, "enable cmp-017") < 0 {
		t.Fatalf("after restore_hold the host must be normal and unfenced: %s %v", m.Host().State, w.calls)
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

func TestRelapseFromRestoredStaysFrozen(t *testing.T) {
	w := &fakeWorld{}
	m := newTestMachine(t, ModeApprove, w, Restored)
	warn := &signals.Verdict{D: 0.5, Level: signals.LevelWarn}
	for i := 0; i < 4; i++ { // d over d_warn for the 30 s dwell
		if _, err := m.Step(context.Background(), Input{Now: t0.Add(time.Duration(i) * 10 * time.Second), Verdict: warn, Fleet: calmFleet}); err != nil {
			t.Fatal(err)
		}
	}
	// restored keeps the host disabled until its hold is over: a relapse
	// finds it frozen and does not write to Nova again
	if m.Host().State != Warn || indexOf(w.calls, "disable cmp-017") >= 0 || indexOf(w.calls, "enable cmp-017") >= 0 {
		t.Fatalf("restored → warn: state %s, calls %v", m.Host().State, w.calls)
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

// fakePlacer places every server on cmp-002 except those named in refuse.
type fakePlacer struct{ refuse map[string]string }

func (p fakePlacer) Place(_ context.Context, _ string, servers []Server) ([]Placement, map[string]string) {
	var out []Placement
	un := map[string]string{}
	for _, s := range servers {
		if why, ok := p.refuse[s.ID]; ok {
			un[s.ID] = why
			continue
		}
		out = append(out, Placement{Server: s, Dest: "cmp-002"})
	}
	return out, un
}

func newEvacMachine(t *testing.T, w *fakeWorld, p Placer, h Host) *Machine {
	t.Helper()
	a := &Actor{Nova: w, Gate: w, Placer: p, Power: w, Checker: w, Notify: w, Journal: w,
		Clock: clock.NewFake(t0), Log: zerolog.Nop(), EvacuateParallel: 1}
	cfg := testCfg(ModeAuto)
	cfg.AfterFence = AfterFenceEvacuate
	m, err := NewMachine(cfg, h, a)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestCriticalForcesDownBeforeDisabling(t *testing.T) {
	w := &fakeWorld{}
	m := newTestMachine(t, ModeApprove, w, Normal)
	if _, err := m.Step(context.Background(), Input{Now: t0, Verdict: critical(), Fleet: calmFleet}); err != nil {
		t.Fatal(err)
	}
	fd, dis := indexOf(w.calls, "force_down cmp-017 true"), indexOf(w.calls, "disable cmp-017")
	if fd < 0 || dis < 0 || fd > dis {
		t.Fatalf("a frozen compute must be forced down before it is disabled (Nova then skips its RPC to the compute): %v", w.calls)
	}
}

func TestEvacuateRecoveryPowersOffEvacuatesPowersOn(t *testing.T) {
	w := &fakeWorld{servers: []Server{{ID: "a", Name: "a", Evacuable: true}, {ID: "b", Name: "b", Evacuable: true}, {ID: "pinned", Name: "pinned"}}}
	m := newEvacMachine(t, w, fakePlacer{}, Host{Name: "cmp-017", State: Critical, ControlFenced: true})
	ctx := context.Background()
	ch, err := m.Step(ctx, Input{Now: t0, Verdict: critical(), Fleet: calmFleet})
	if err != nil || states(ch) != "fenced,rebooting" {
		t.Fatalf("fence: %v %s", err, states(ch))
	}
	if indexOf(w.calls, "power_off cmp-017") >= 0 {
		t.Fatalf("entering rebooting must not act yet (the next tick does): %v", w.calls)
	}
	if _, err := m.Step(ctx, Input{Now: t0.Add(10 * time.Second), Verdict: &signals.Verdict{Blind: true}, Fleet: calmFleet}); err != nil {
		t.Fatal(err)
	}
	off, on := indexOf(w.calls, "power_off cmp-017"), indexOf(w.calls, "power_on cmp-017")
	ea, eb := indexOf(w.calls, "evacuate a cmp-002"), indexOf(w.calls, "evacuate b cmp-002")
	if off < 0 || ea < off || eb < off || on < ea || on < eb || indexOf(w.calls, "intent power_off") > off {
		t.Fatalf("want intent, power off, evacuate a and b, power on: %v", w.calls)
	}
	if indexOf(w.calls, "evacuate pinned cmp-002") >= 0 {
		t.Fatalf("a server that is not evacuable was evacuated: %v", w.calls)
	}
	if h := m.Host(); h.State != Rebooting || h.Step != StepOn {
		t.Fatalf("after power on: %s step %q", h.State, h.Step)
	}
	// the next ticks only wait for the host; nothing is repeated
	n := len(w.calls)
	if _, err := m.Step(ctx, Input{Now: t0.Add(20 * time.Second), Verdict: &signals.Verdict{Blind: true}, Fleet: calmFleet}); err != nil {
		t.Fatal(err)
	}
	if len(w.calls) != n {
		t.Fatalf("a waiting tick acted: %v", w.calls[n:])
	}
	w.back = true
	w.servers = []Server{{ID: "pinned", Name: "pinned", Status: "ACTIVE", Running: true}} // a and b left with the evacuation
	ch, err = m.Step(ctx, Input{Now: t0.Add(30 * time.Second), Verdict: &signals.Verdict{D: 0.1}, Fleet: calmFleet})
	if err != nil || states(ch) != "restored" {
		t.Fatalf("back: %v %s", err, states(ch))
	}
}

func TestEvacuateRecoveryResumesWithoutRepeatingThePowerOff(t *testing.T) {
	// a new leader resumes a record whose power off happened but was not
	// recorded as a step: the BMC says off, so it is not sent again
	w := &fakeWorld{power: fencing.Off, servers: []Server{{ID: "a", Name: "a", Evacuable: true}}}
	m := newEvacMachine(t, w, fakePlacer{}, Host{Name: "cmp-017", State: Rebooting, Since: t0, ControlFenced: true})
	if _, err := m.Step(context.Background(), Input{Now: t0.Add(5 * time.Second), Verdict: &signals.Verdict{Blind: true}, Fleet: calmFleet}); err != nil {
		t.Fatal(err)
	}
	if indexOf(w.calls, "power_off cmp-017") >= 0 || indexOf(w.calls, "intent power_off") >= 0 {
		t.Fatalf("power off sent twice: %v", w.calls)
	}
	if indexOf(w.calls, "evacuate a cmp-002") < 0 || indexOf(w.calls, "power_on cmp-017") < 0 {
		t.Fatalf("the recovery must go on: %v", w.calls)
	}
}

func TestUnplacedServersGoToAPersonAfterPowerOn(t *testing.T) {
	w := &fakeWorld{servers: []Server{{ID: "a", Name: "a", Evacuable: true}, {ID: "big", Name: "big", Evacuable: true}},
		evacErr: map[string]error{"a": errors.New("rebuild failed on cmp-002")}}
	m := newEvacMachine(t, w, fakePlacer{refuse: map[string]string{"big": "no normal host with 64 vCPUs free"}},
		Host{Name: "cmp-017", State: Rebooting, Since: t0, ControlFenced: true})
	ch, err := m.Step(context.Background(), Input{Now: t0.Add(5 * time.Second), Verdict: &signals.Verdict{Blind: true}, Fleet: calmFleet})
	if err != nil || states(ch) != "needs_human" {
		t.Fatalf("%v %s", err, states(ch))
	}
	if r := ch[0].Reason; !strings.Contains(r, "big: no normal host") || !strings.Contains(r, "a (a): ") {
		t.Fatalf("the reason must list every server left behind: %q", r)
	}
	if indexOf(w.calls, "power_on cmp-017") < 0 {
		t.Fatalf("the host is powered on before a person takes over: %v", w.calls)
	}
}

func TestFractionAllowsAtLeastOneHost(t *testing.T) {
	for _, c := range []struct {
		total, want int
	}{{1, 1}, {3, 1}, {6, 1}, {10, 1}, {19, 1}, {20, 2}, {100, 10}} {
		if got := FractionAllows(0.1, c.total); got != c.want {
			t.Errorf("max_fraction 0.1 of %d hosts: %d, want %d", c.total, got, c.want)
		}
	}
	// a 6-host cloud fences its one bad host, but not a second one
	cfg := testCfg(ModeAuto)
	if why := guard(cfg, Fleet{Total: 6, AtWarnOrWorse: 1}); why != "" {
		t.Fatalf("6 hosts, none fenced: %s", why)
	}
	if why := guard(cfg, Fleet{Total: 6, AtWarnOrWorse: 2, Fencing: 1}); !strings.Contains(why, "allows 1") {
		t.Fatalf("6 hosts, one fenced: %q", why)
	}
}

// parallelNova counts evacuations in flight; its journal is safe for
// concurrent use.
type parallelNova struct {
	*fakeWorld
	mu            sync.Mutex
	inFlight, max int
	ids           int
}

func (p *parallelNova) Evacuate(context.Context, string, string) error {
	p.mu.Lock()
	p.inFlight++
	p.max = max(p.max, p.inFlight)
	p.mu.Unlock()
	time.Sleep(20 * time.Millisecond) // overlap the calls that may run together; no timing is asserted
	p.mu.Lock()
	p.inFlight--
	p.mu.Unlock()
	return nil
}
func (p *parallelNova) Intent(_ context.Context, in Intent) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ids++
	return fmt.Sprintf("%s-%d", in.Action, p.ids), nil
}
func (p *parallelNova) Outcome(context.Context, string, error) error { return nil }

func TestEvacuateParallelBoundsEvacuationsInFlight(t *testing.T) {
	for _, par := range []int{1, 3} {
		w := &fakeWorld{}
		for i := range 9 {
			w.servers = append(w.servers, Server{ID: fmt.Sprint(i), Name: fmt.Sprint(i), Evacuable: true})
		}
		pn := &parallelNova{fakeWorld: w}
		a := &Actor{Nova: pn, Placer: fakePlacer{}, Journal: pn,
			Clock: clock.NewFake(t0), Log: zerolog.Nop(), EvacuateParallel: par}
		if failed := a.evacuate(context.Background(), &Host{Name: "cmp-017"}, w.servers); len(failed) != 0 {
			t.Fatal(failed)
		}
		if pn.max < 1 || pn.max > par || (par > 1 && pn.max == 1) {
			t.Errorf("evacuate_parallel %d: %d evacuations in flight at most", par, pn.max)
		}
	}
}

// stuckChecker never answers until its context ends.
type stuckChecker struct{ *fakeWorld }

func (stuckChecker) Back(ctx context.Context, _ string) (bool, error) {
	<-ctx.Done()
	return false, ctx.Err()
}

func TestAStuckHostCheckCostsOneBoundedWait(t *testing.T) {
	w := &fakeWorld{}
	a := &Actor{Nova: w, Gate: w, Power: w, Checker: stuckChecker{w}, Notify: w, Journal: w,
		Clock: clock.NewFake(t0), Log: zerolog.Nop(), ReadTimeout: 50 * time.Millisecond}
	cfg := testCfg(ModeAuto)
	cfg.AfterFence = AfterFenceRebootInPlace // power-cycled: only the wait for the host is left
	done := make(chan Event, 1)
	go func() {
		ev, _ := a.Poll(context.Background(), cfg, &Host{Name: "cmp-017", State: Rebooting, Since: t0, Step: StepOn}, t0)
		done <- ev
	}()
	select {
	case ev := <-done:
		if ev != "" {
			t.Fatalf("a check that did not answer moved the host: %s", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Poll waited on a host check that never answers: the tick loop would stall")
	}
}
