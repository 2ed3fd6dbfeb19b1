package playbook

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/fencedhq/fenced/pkg/clock"
	"github.com/fencedhq/fenced/pkg/fencing"
	"github.com/fencedhq/fenced/pkg/signals"
)

// chainWorld is the fake world with a journal that takes notes, a power
// cycle that can fail on its own, and live migrations that take time on
// the fake clock.
type chainWorld struct {
	*fakeWorld
	clk         *clock.Fake
	cycleErr    error
	migrateTook time.Duration
	notes       []Note
}

func (c *chainWorld) Note(_ context.Context, n Note) error {
	c.notes = append(c.notes, n)
	c.log("note %s %s %s", n.Action, n.Target, n.Outcome)
	return nil
}

func (c *chainWorld) PowerCycle(ctx context.Context, h string) error {
	if c.cycleErr != nil {
		c.log("power_cycle %s", h)
		return c.cycleErr
	}
	return c.fakeWorld.PowerCycle(ctx, h)
}

func (c *chainWorld) LiveMigrate(ctx context.Context, id, dest string) error {
	c.clk.Advance(c.migrateTook)
	return c.fakeWorld.LiveMigrate(ctx, id, dest)
}

func newChainWorld(w *fakeWorld) *chainWorld {
	return &chainWorld{fakeWorld: w, clk: clock.NewFake(t0)}
}

// chainMachine is a machine in auto mode under chain (nil: after_fence
// evacuate's) whose actor journals into c.
func chainMachine(t *testing.T, c *chainWorld, chain []RecoveryStep, h Host) *Machine {
	t.Helper()
	a := &Actor{Nova: c, Gate: c, Placer: fakePlacer{}, Power: c, Checker: c, Notify: c, Journal: c,
		Clock: c.clk, Log: zerolog.Nop(), EvacuateParallel: 1}
	cfg := testCfg(ModeAuto)
	cfg.AfterFence, cfg.Recovery = AfterFenceEvacuate, chain
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if h.Name == "" {
		h.Name = "cmp-017"
	}
	m, err := NewMachine(cfg, h, a)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func blind() *signals.Verdict { return &signals.Verdict{Blind: true} }

// count is how many calls equal s.
func count(calls []string, s string) int {
	n := 0
	for _, c := range calls {
		if c == s {
			n++
		}
	}
	return n
}

// tick steps m at t0+at on the fake clock.
func tick(t *testing.T, m *Machine, c *chainWorld, at time.Duration, v *signals.Verdict) []Change {
	t.Helper()
	c.clk.Set(t0.Add(at))
	ch, err := m.Step(context.Background(), Input{Now: t0.Add(at), Verdict: v, Fleet: calmFleet})
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// chainNotes is the notes about recovery steps, "step outcome" each.
func chainNotes(c *chainWorld) string {
	var s []string
	for _, n := range c.notes {
		if step, ok := strings.CutPrefix(n.Action, "recovery "); ok {
			s = append(s, step+" "+n.Outcome)
		}
	}
	return strings.Join(s, ", ")
}

var (
	lm = func(d time.Duration) RecoveryStep { return RecoveryStep{Action: RecoverLiveMigrate, Timeout: d} }
	pc = func(d time.Duration) RecoveryStep { return RecoveryStep{Action: RecoverPowerCycle, Timeout: d} }
	ev = func(d time.Duration) RecoveryStep { return RecoveryStep{Action: RecoverEvacuate, Timeout: d} }
)

// TestEachStepTimesOutIntoTheNext: live_migrate → power_cycle → evacuate →
// needs_human, every step timing out (measured from its own start on the
// injected clock), each start and timeout a note, the give-up's reason the
// chain as it ran.
func TestEachStepTimesOutIntoTheNext(t *testing.T) {
	servers := []Server{{ID: "a", Name: "a", Evacuable: true}, {ID: "b", Name: "b", Evacuable: true}, {ID: "c", Name: "c", Evacuable: true}}
	c := newChainWorld(&fakeWorld{gateOpen: true, servers: servers})
	c.migrateTook = 6 * time.Minute // the third migration would start 12 min into a 10 min step
	m := chainMachine(t, c, []RecoveryStep{lm(10 * time.Minute), pc(5 * time.Minute), ev(7 * time.Minute)}, Host{State: Critical, ControlFenced: true})

	type step struct {
		at        time.Duration
		want      string // states changed to, comma-separated
		wantStep  RecoveryAction
		wantNotes string // the chain's notes so far
		calls     []string
	}
	for i, s := range []step{
		{at: 0, want: "fenced,rebooting", wantStep: RecoverPowerCycle,
			wantNotes: "live_migrate started, live_migrate timeout, power_cycle started",
			calls:     []string{"migrate a cmp-002", "migrate b cmp-002", "power_cycle cmp-017"}},
		// the power_cycle step started when the host entered rebooting (t0)
		{at: 5 * time.Minute, wantStep: RecoverPowerCycle},
		{at: 5*time.Minute + 10*time.Second, wantStep: RecoverEvacuate,
			wantNotes: "live_migrate started, live_migrate timeout, power_cycle started, power_cycle timeout, evacuate started"},
		// the next tick runs the evacuate: power off (verified) first
		{at: 5*time.Minute + 20*time.Second, wantStep: RecoverEvacuate,
			calls: []string{"power_off cmp-017", "evacuate a cmp-002", "evacuate b cmp-002", "evacuate c cmp-002", "power_on cmp-017"}},
		{at: 12*time.Minute + 10*time.Second, wantStep: RecoverEvacuate},
		{at: 12*time.Minute + 20*time.Second, want: "needs_human",
			wantNotes: "live_migrate started, live_migrate timeout, power_cycle started, power_cycle timeout, evacuate started, evacuate timeout"},
	} {
		before := len(c.calls)
		ch := tick(t, m, c, s.at, critical())
		if got := states(ch); got != s.want {
			t.Fatalf("step %d at %s: changes %q, want %q (%v)", i, s.at, got, s.want, ch)
		}
		if h := m.Host(); h.State != NeedsHuman && h.Recovery.Step != s.wantStep {
			t.Fatalf("step %d: recovery step %q, want %q (%+v)", i, h.Recovery.Step, s.wantStep, h.Recovery)
		}
		if s.wantNotes != "" && chainNotes(c) != s.wantNotes {
			t.Fatalf("step %d: notes %q, want %q", i, chainNotes(c), s.wantNotes)
		}
		var acted []string
		for _, call := range c.calls[before:] {
			if !strings.HasPrefix(call, "note") && !strings.HasPrefix(call, "intent") && !strings.HasPrefix(call, "outcome") && !strings.HasPrefix(call, "notify") {
				acted = append(acted, call)
			}
		}
		if strings.Join(acted, "; ") != strings.Join(s.calls, "; ") {
			t.Fatalf("step %d: actions %v, want %v", i, acted, s.calls)
		}
	}
	if r, want := m.Host().Reason, "host did not come back within 7m0s; recovery chain exhausted: live_migrate timeout → power_cycle timeout → evacuate timeout → needs_human"; r != want {
		t.Fatalf("reason %q, want %q", r, want)
	}
	var whys []string
	for _, n := range c.notes {
		if n.Outcome != StepStarted {
			whys = append(whys, n.Detail)
		}
	}
	if got, want := strings.Join(whys, "; "), "live migration timed out: 2 of 3 servers moved within 10m0s; host did not come back within 5m0s; host did not come back within 7m0s"; got != want {
		t.Fatalf("the steps' ends say %q, want %q", got, want)
	}
	if h := m.Host(); h.Recovery != (Recovery{}) {
		t.Fatalf("needs_human keeps a recovery in progress: %+v", h.Recovery)
	}
	// every start and end of a step shares its request id
	ids := map[string]int{}
	for _, n := range c.notes {
		ids[n.ID]++
	}
	for id, n := range ids {
		if n != 2 {
			t.Fatalf("request id %s on %d notes, want a start and an end", id, n)
		}
	}
}

// TestChainTable: failing, skipped and single-step chains.
func TestChainTable(t *testing.T) {
	srv := []Server{{ID: "a", Name: "a", Evacuable: true}}
	for _, tc := range []struct {
		name      string
		world     fakeWorld
		cycleErr  error
		chain     []RecoveryStep
		ticks     []time.Duration
		want      State
		wantNotes string
		wantWhy   string
		never     string // a call that must not happen
		once      string // a call that must happen exactly once
	}{
		{name: "a failing power cycle moves to evacuate, which powers off (verified) first",
			world: fakeWorld{servers: srv}, cycleErr: errors.New("bmc says no"),
			chain: []RecoveryStep{pc(5 * time.Minute), ev(5 * time.Minute)}, ticks: []time.Duration{0, 10 * time.Second},
			want: Rebooting, wantNotes: "power_cycle started, power_cycle failed, evacuate started", once: "power_off cmp-017"},
		{name: "the last step failing goes to needs_human with the chain",
			world: fakeWorld{servers: srv}, cycleErr: errors.New("bmc says no"),
			chain: []RecoveryStep{lm(0), pc(0)}, ticks: []time.Duration{0},
			want: NeedsHuman, wantNotes: "live_migrate started, live_migrate skipped, power_cycle started, power_cycle failed",
			wantWhy: "power cycle failed: playbook: power_cycle cmp-017: bmc says no; recovery chain exhausted: live_migrate skipped → power_cycle failed → needs_human"},
		{name: "power_cycle only: no live migration although the gate is open",
			world: fakeWorld{gateOpen: true, servers: srv}, chain: []RecoveryStep{pc(5 * time.Minute)},
			ticks: []time.Duration{0, 5*time.Minute + time.Second}, want: NeedsHuman,
			wantNotes: "power_cycle started, power_cycle timeout", never: "migrate a cmp-002", once: "power_cycle cmp-017",
			wantWhy: "host did not come back within 5m0s; recovery chain exhausted: power_cycle timeout → needs_human"},
		{name: "power_cycle only, host back: restored",
			world: fakeWorld{gateOpen: true, back: true, servers: []Server{{ID: "a", Name: "a", Status: "ACTIVE", Running: true}}},
			chain: []RecoveryStep{pc(5 * time.Minute)}, ticks: []time.Duration{0, 10 * time.Second}, want: Restored,
			wantNotes: "power_cycle started, power_cycle ok", once: "power_cycle cmp-017"},
		{name: "live_migrate skipped when the gate is closed; evacuate runs",
			world: fakeWorld{servers: srv}, chain: nil, ticks: []time.Duration{0, 10 * time.Second},
			want: Rebooting, wantNotes: "live_migrate started, live_migrate skipped, evacuate started",
			never: "migrate a cmp-002", once: "evacuate a cmp-002"},
		{name: "live migration failing moves to power_cycle",
			world: fakeWorld{gateOpen: true, servers: srv, migrateErr: errors.New("migration timed out")},
			chain: []RecoveryStep{lm(0), pc(0), ev(0)}, ticks: []time.Duration{0},
			want: Rebooting, wantNotes: "live_migrate started, live_migrate failed, power_cycle started", once: "power_cycle cmp-017"},
		{name: "when gate_closed: an evacuate whose condition fails is skipped",
			world: fakeWorld{gateOpen: true, servers: srv, migrateErr: errors.New("migration timed out")},
			chain: []RecoveryStep{lm(0), {Action: RecoverEvacuate, When: WhenGateClosed}, pc(0)}, ticks: []time.Duration{0},
			want: Rebooting, wantNotes: "live_migrate started, live_migrate failed, evacuate started, evacuate skipped, power_cycle started",
			never: "power_off cmp-017", once: "power_cycle cmp-017"},
		{name: "after a power cycle the evacuate powers off again, verified",
			world: fakeWorld{servers: srv}, chain: []RecoveryStep{pc(time.Minute), ev(time.Minute)},
			ticks: []time.Duration{0, time.Minute + time.Second, time.Minute + 10*time.Second},
			want:  Rebooting, wantNotes: "power_cycle started, power_cycle timeout, evacuate started", once: "power_off cmp-017"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := tc.world
			c := newChainWorld(&w)
			c.cycleErr = tc.cycleErr
			m := chainMachine(t, c, tc.chain, Host{State: Critical, ControlFenced: true})
			for _, at := range tc.ticks {
				tick(t, m, c, at, critical())
			}
			h := m.Host()
			if h.State != tc.want || chainNotes(c) != tc.wantNotes {
				t.Fatalf("state %s, notes %q; want %s, %q (reason %q)", h.State, chainNotes(c), tc.want, tc.wantNotes, h.Reason)
			}
			if tc.wantWhy != "" && h.Reason != tc.wantWhy {
				t.Fatalf("reason %q, want %q", h.Reason, tc.wantWhy)
			}
			if tc.never != "" && indexOf(c.calls, tc.never) >= 0 {
				t.Fatalf("%s happened: %v", tc.never, c.calls)
			}
			if tc.once != "" && count(c.calls, tc.once) != 1 {
				t.Fatalf("%s happened %d times, want once: %v", tc.once, count(c.calls, tc.once), c.calls)
			}
			if strings.Contains(tc.name, "powers off") {
				if off, ev := indexOf(c.calls, "power_off cmp-017"), indexOf(c.calls, "evacuate a cmp-002"); off < 0 || ev < off {
					t.Fatalf("evacuate before the power off: %v", c.calls)
				}
			}
		})
	}
}

// TestChainResumesAtThePersistedStep: a new leader builds a machine from
// the record (as stored in etcd, through JSON) and goes on at the same step,
// from the same start, repeating nothing.
func TestChainResumesAtThePersistedStep(t *testing.T) {
	srv := []Server{{ID: "a", Name: "a", Evacuable: true}}
	chain := []RecoveryStep{pc(5 * time.Minute), ev(5 * time.Minute)}
	c := newChainWorld(&fakeWorld{servers: srv})
	m := chainMachine(t, c, chain, Host{State: Critical, ControlFenced: true})
	tick(t, m, c, 0, critical())
	tick(t, m, c, time.Minute, blind())
	if h := m.Host(); h.Recovery.Step != RecoverPowerCycle || h.Step != StepOn || count(c.calls, "power_cycle cmp-017") != 1 {
		t.Fatalf("power cycled, waiting: %+v, calls %v", h, c.calls)
	}
	// the leader dies; its successor reads the record
	resume := func(h Host) (*Machine, *chainWorld) {
		t.Helper()
		b, err := json.Marshal(h)
		if err != nil {
			t.Fatal(err)
		}
		var rec Host
		if err := json.Unmarshal(b, &rec); err != nil {
			t.Fatal(err)
		}
		if rec != h {
			t.Fatalf("the record does not survive etcd: %+v != %+v", rec, h)
		}
		c2 := newChainWorld(&fakeWorld{servers: srv, power: c.power})
		return chainMachine(t, c2, chain, rec), c2
	}
	m2, c2 := resume(m.Host())
	tick(t, m2, c2, 2*time.Minute, blind())
	if len(c2.calls) != 0 {
		t.Fatalf("the new leader acted within the power_cycle step: %v", c2.calls)
	}
	// the step's timeout counts from its start under the old leader
	tick(t, m2, c2, 5*time.Minute+time.Second, blind())
	if h := m2.Host(); h.Recovery.Step != RecoverEvacuate || chainNotes(c2) != "power_cycle timeout, evacuate started" {
		t.Fatalf("after the power_cycle's timeout: %+v, notes %q", h.Recovery, chainNotes(c2))
	}
	if count(c2.calls, "power_cycle cmp-017") != 0 {
		t.Fatalf("power cycled again: %v", c2.calls)
	}
	// the evacuate powered off; the leader died before the record said more
	h := m2.Host()
	h.Step = StepOff
	m3, c3 := resume(h)
	c3.power = fencing.Off // the BMC says off
	tick(t, m3, c3, 5*time.Minute+20*time.Second, blind())
	if count(c3.calls, "power_off cmp-017") != 0 || count(c3.calls, "evacuate a cmp-002") != 1 || count(c3.calls, "power_on cmp-017") != 1 {
		t.Fatalf("resumed at off: %v", c3.calls)
	}
	if h := m3.Host(); h.Recovery.Step != RecoverEvacuate || !h.Recovery.Since.Equal(t0.Add(5*time.Minute+time.Second)) || h.Step != StepOn {
		t.Fatalf("resumed evacuate: %+v step %q", h.Recovery, h.Step)
	}
}

// TestChainAsync: off the engine's goroutine each job returns the record
// with the chain's progress; the machine takes it back, so what a new leader
// reads says the step and its progress.
func TestChainAsync(t *testing.T) {
	c := newChainWorld(&fakeWorld{servers: []Server{{ID: "a", Name: "a", Evacuable: true}}})
	c.cycleErr = errors.New("bmc says no")
	m := chainMachine(t, c, []RecoveryStep{pc(5 * time.Minute), ev(5 * time.Minute)}, Host{State: Critical, ControlFenced: true})
	var jobs []Job
	m.actor.Async = func(_ string, j Job) { jobs = append(jobs, j) }
	ctx := context.Background()
	run := func(at time.Duration) {
		t.Helper()
		if _, err := m.Complete(ctx, Input{Now: t0.Add(at)}, jobs[len(jobs)-1](ctx)); err != nil {
			t.Fatal(err)
		}
	}
	tick(t, m, c, 0, critical()) // fenced: its entry is a job
	run(0)                       // → rebooting: its entry is a job
	run(0)
	if h := m.Host(); h.State != Rebooting || h.Recovery.Step != RecoverEvacuate || h.Recovery.Ran == "" {
		t.Fatalf("after a failed power cycle: %s %+v", h.State, h.Recovery)
	}
	tick(t, m, c, 10*time.Second, blind())
	run(10 * time.Second)
	if h := m.Host(); h.Step != StepOff || count(c.calls, "evacuate a cmp-002") != 0 {
		t.Fatalf("one job per evacuate stage: step %q, calls %v", h.Step, c.calls)
	}
}

// TestSkipError: under instances.skip_error a server in ERROR is neither
// live-migrated nor evacuated nor counted in the restored check, and each
// is noted with why; without it, as before.
func TestSkipError(t *testing.T) {
	servers := []Server{{ID: "ok", Name: "ok", Status: "ACTIVE", Running: true, Evacuable: true}, {ID: "bad", Name: "bad", Status: "ERROR", Evacuable: true}}
	for _, skip := range []bool{false, true} {
		for _, gate := range []bool{true, false} {
			c := newChainWorld(&fakeWorld{gateOpen: gate, servers: servers, back: true})
			m := chainMachine(t, c, nil, Host{State: Critical, ControlFenced: true})
			m.cfg.SkipError = skip
			tick(t, m, c, 0, critical())
			if !gate {
				tick(t, m, c, 10*time.Second, critical())
			}
			moved := "migrate bad cmp-002"
			if !gate {
				moved = "evacuate bad cmp-002"
			}
			h := m.Host()
			var skipped []string
			for _, n := range c.notes {
				if n.Outcome == StepSkipped && n.Target != "" {
					skipped = append(skipped, n.Action+" "+n.Target+": "+n.Detail)
				}
			}
			if !skip {
				if indexOf(c.calls, moved) < 0 || h.State != NeedsHuman || !strings.Contains(h.Reason, "bad=ERROR") || len(skipped) != 0 {
					t.Fatalf("gate %v, no filter: want bad moved and the restored check failing: %s %q %v", gate, h.State, h.Reason, c.calls)
				}
				continue
			}
			if indexOf(c.calls, moved) >= 0 || h.State != Restored {
				t.Fatalf("gate %v, skip_error: %s moved or not restored: %s %q %v", gate, moved, h.State, h.Reason, c.calls)
			}
			act := "live_migrate"
			if !gate {
				act = "evacuate"
			}
			if len(skipped) != 2 || !strings.HasPrefix(skipped[0], act+" bad: server bad is in ERROR") ||
				!strings.HasPrefix(skipped[1], "verify_servers bad: ") || !strings.Contains(skipped[0], "instances.skip_error") {
				t.Fatalf("gate %v: skipped notes %q", gate, skipped)
			}
		}
	}
}

// TestPreChainRebootRecordIsNotCycledAgain: a rebooting record written
// before chains existed (no Recovery) under after_fence reboot_in_place
// means the rebooting entry already power-cycled the host; the new leader
// takes up the power_cycle step from the host's entry and waits for it,
// never cycling it a second time.
func TestPreChainRebootRecordIsNotCycledAgain(t *testing.T) {
	c := newChainWorld(&fakeWorld{})
	m := chainMachine(t, c, nil, Host{State: Rebooting, Since: t0, ControlFenced: true, LastPowerCycle: t0})
	m.cfg.AfterFence = AfterFenceRebootInPlace
	tick(t, m, c, time.Minute, blind())
	if n := count(c.calls, "power_cycle cmp-017"); n != 0 {
		t.Fatalf("power cycled again: %v", c.calls)
	}
	if h := m.Host(); h.State != Rebooting || h.Recovery.Step != RecoverPowerCycle || !h.Recovery.Since.Equal(t0) || h.Step != StepOn {
		t.Fatalf("not waiting in the power_cycle step: %s %+v step %q", h.State, h.Recovery, h.Step)
	}
	c.back = true
	if ch := tick(t, m, c, 2*time.Minute, blind()); states(ch) == "" || m.Host().State != Restored {
		t.Fatalf("host back: %v, state %s", ch, m.Host().State)
	}
	if n := count(c.calls, "power_cycle cmp-017"); n != 0 {
		t.Fatalf("power cycled again: %v", c.calls)
	}
}
