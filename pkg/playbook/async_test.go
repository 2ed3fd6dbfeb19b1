package playbook

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestAsyncEntryActions: with an Async runner the machine changes state at
// once and hands the entry actions over as a job; until the job's outcome
// comes back through Complete the host is busy: verdicts only move its
// trackers, an operator event allowed in its state is refused as in flight,
// one not allowed is refused as before; the outcome's event is followed.
func TestAsyncEntryActions(t *testing.T) {
	w := &fakeWorld{} // gate closed: fenced → rebooting (power cycle)
	m := newTestMachine(t, ModeApprove, w, AwaitingApproval)
	var jobs []Job
	var hosts []string
	m.actor.Async = func(host string, j Job) { hosts, jobs = append(hosts, host), append(jobs, j) }
	m.cfg.AfterFence = AfterFenceRebootInPlace
	ctx := context.Background()

	ch, err := m.Step(ctx, Input{Now: t0, Event: EvApprove, Reason: "carol: go"})
	if err != nil || states(ch) != "fenced" || len(jobs) != 1 || hosts[0] != "cmp-017" {
		t.Fatalf("approve: %v %q, %d jobs: want fenced at once and one job", err, states(ch), len(jobs))
	}
	if len(w.calls) != 0 {
		t.Fatalf("actions ran on the caller's goroutine: %v", w.calls)
	}
	if what, _ := m.Busy(); !strings.Contains(what, "fenced") {
		t.Fatalf("busy %q, want the fenced entry actions", what)
	}
	// busy: a verdict decides nothing, an unfence (allowed in fenced) is refused as in flight
	if ch, err := m.Step(ctx, Input{Now: t0.Add(time.Second), Verdict: critical()}); err != nil || len(ch) != 0 {
		t.Fatalf("tick while busy: %v %v", ch, err)
	}
	if _, err := m.Step(ctx, Input{Now: t0.Add(time.Second), Event: EvUnfence, Reason: "x"}); err == nil || !strings.Contains(err.Error(), "in flight") {
		t.Fatalf("unfence while busy: %v, want refused as in flight", err)
	}
	if _, err := m.Step(ctx, Input{Now: t0.Add(time.Second), Event: EvAbort, Reason: "x"}); err == nil || !strings.Contains(err.Error(), "not allowed") {
		t.Fatalf("abort while busy: %v, want not allowed in fenced", err)
	}
	// the job runs elsewhere (here: now) and its outcome comes back
	res := jobs[0](ctx)
	if res.Event != EvPowerCycle {
		t.Fatalf("fenced job: %+v, want power_cycle (gate closed)", res)
	}
	ch, err = m.Complete(ctx, Input{Now: t0.Add(2 * time.Second)}, res)
	if err != nil || states(ch) != "rebooting" || len(jobs) != 2 {
		t.Fatalf("complete: %v %q, %d jobs", err, states(ch), len(jobs))
	}
	res = jobs[1](ctx)
	if _, err := m.Complete(ctx, Input{Now: t0.Add(3 * time.Second)}, res); err != nil {
		t.Fatal(err)
	}
	if indexOf(w.calls, "power_cycle cmp-017") < 0 {
		t.Fatalf("calls %v: no power cycle", w.calls)
	}
	if what, _ := m.Busy(); what != "" {
		t.Fatalf("still busy after the outcome: %q", what)
	}
	// an outcome with nothing in flight is an error, never applied
	if _, err := m.Complete(ctx, Input{Now: t0.Add(4 * time.Second)}, JobResult{Event: EvRestore}); err == nil {
		t.Fatal("a stray outcome was applied")
	}
	// rebooting: each tick polls in a job (the host checker), the deadline first
	w.back = true
	if _, err := m.Step(ctx, Input{Now: t0.Add(5 * time.Second), Verdict: critical()}); err != nil || len(jobs) != 3 {
		t.Fatalf("rebooting tick: %v, %d jobs", err, len(jobs))
	}
	ch, err = m.Complete(ctx, Input{Now: t0.Add(6 * time.Second)}, jobs[2](ctx))
	if err != nil || states(ch) != "restored" {
		t.Fatalf("poll outcome: %v %q, want restored", err, states(ch))
	}
}

// TestAsyncNotifyOnlyStatesRunInline: awaiting_approval only notifies, so
// the host is not busy while it waits for a person.
func TestAsyncNotifyOnlyStatesRunInline(t *testing.T) {
	w := &fakeWorld{}
	m := newTestMachine(t, ModeApprove, w, Critical)
	m.actor.Async = func(string, Job) { t.Fatal("a job for a notify-only state") }
	ch, err := m.Step(context.Background(), Input{Now: t0, Verdict: critical()})
	if err != nil || states(ch) != "awaiting_approval" {
		t.Fatalf("%v %q", err, states(ch))
	}
	if what, _ := m.Busy(); what != "" {
		t.Fatalf("busy %q while awaiting approval", what)
	}
}
