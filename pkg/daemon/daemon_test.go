package daemon_test

import (
	"context"
	"testing"
	"time"

	"github.com/fencedhq/fenced/pkg/audit"
	"github.com/fencedhq/fenced/pkg/clock"
	"github.com/fencedhq/fenced/pkg/daemon"
	"github.com/fencedhq/fenced/pkg/lab"
	"github.com/fencedhq/fenced/pkg/playbook"
	"github.com/fencedhq/fenced/pkg/policy"
)

func state(d *daemon.Daemon, host string) playbook.State {
	for _, v := range d.Snapshot().Hosts {
		if v.Host.Name == host {
			return v.Host.State
		}
	}
	return ""
}

// advance polls until cond holds or limit of lab time passes (the lab clock
// runs 60× faster than real time).
func advance(t *testing.T, limit time.Duration, cond func() bool) {
	t.Helper()
	waitUntil(t, "condition", limit/60+20*time.Second, cond) // generous: -race on a loaded 2-core machine
}

func TestDevFleetApproveToRestored(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd")
	}
	endpoints := startEtcd(t)
	clk := clock.NewScaled(60)
	p, err := policy.Default().WithMode("approve")
	if err != nil {
		t.Fatal(err)
	}
	world := lab.NewWorld(clk.Now, 30*time.Second, p.SignalsConfig())
	gen := lab.NewGenerator(10, clk.Now(), time.Minute, world)
	d := replica(t, endpoints, "a", world, clk, "approve", gen)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	victim := gen.Victim
	advance(t, 10*time.Minute, func() bool { return state(d, victim) == playbook.AwaitingApproval })
	for _, v := range d.Snapshot().Hosts {
		if v.Host.Name != victim && v.Host.State != playbook.Normal {
			t.Fatalf("healthy lab host %s is %s", v.Host.Name, v.Host.State)
		}
	}
	if _, err := d.Operate(ctx, victim, playbook.EvApprove, "", "x"); err == nil {
		t.Fatal("approval without an operator name accepted")
	}
	// the approval answers at once with the change it made; the actions it
	// allows run off the loop and report through the host's state
	ch, err := d.Operate(ctx, victim, playbook.EvApprove, "alice", "VMs unreachable")
	if err != nil || len(ch) != 1 || ch[0].To != playbook.Fenced {
		t.Fatalf("approve: %v %+v", err, ch)
	}
	advance(t, 2*time.Minute, func() bool { return state(d, victim) == playbook.Restored })
	advance(t, 15*time.Minute, func() bool { return state(d, victim) == playbook.Normal })
	snap := d.Snapshot()
	if snap.Transitions["rebooting"] != 1 || world.Count().PowerCycles != 1 {
		t.Fatalf("rebooting %d times, %d power cycles", snap.Transitions["rebooting"], world.Count().PowerCycles)
	}
	// the audit log holds the operator's approval before the power off's
	// intent, the intent before its outcome, and every transition; its
	// chain verifies
	recs, err := records(t, d, victim)
	if err != nil {
		t.Fatal(err)
	}
	intent, outcome, approval := -1, -1, -1
	for i, r := range recs {
		switch {
		case r.Action == "power_off" && r.Outcome == audit.OutcomeIntent:
			intent = i
		case r.Action == "power_off" && r.Outcome == audit.OutcomeOK:
			outcome = i
		case r.Action == "approve" && r.Operator == "alice" && approval < 0:
			approval = i
		}
	}
	if approval < 0 || intent < approval || outcome < intent {
		t.Fatalf("audit: approval %d intent %d outcome %d", approval, intent, outcome)
	}
	if rep, err := d.Audit().Verify(ctx); err != nil || rep.Records < 8 {
		t.Fatalf("verify: %+v %v", rep, err)
	}
}

// records reads a host's audit records ("": all) from the replica's chain.
func records(t *testing.T, d *daemon.Daemon, host string) ([]audit.Record, error) {
	t.Helper()
	return d.Audit().Records(context.Background(), func(r audit.Record) bool { return host == "" || r.HostID == host })
}

// slowPower is a BMC that takes its time with every power action.
type slowPower struct {
	playbook.PowerFencer
	delay time.Duration
}

func (s slowPower) PowerOff(ctx context.Context, host string) error {
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		return ctx.Err()
	}
	return s.PowerFencer.PowerOff(ctx, host)
}

// TestSlowActionsDoNotHoldTheLoop: while a BMC takes 3 s (real time, three
// lab minutes) over a power-off, the engine goes on ticking, a pause and a
// resume are applied at once, and the power-off's outcome still lands.
func TestSlowActionsDoNotHoldTheLoop(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd")
	}
	endpoints := startEtcd(t)
	clk := clock.NewScaled(60)
	world := lab.NewWorld(clk.Now, 30*time.Second, policy.Default().SignalsConfig())
	gen := lab.NewGenerator(10, clk.Now(), time.Minute, world)
	be := world.Backends(gen)
	be.Power = slowPower{be.Power, 3 * time.Second}
	d := replicaOn(t, endpoints, "a", be, clk, "approve")
	world.SetViews(d)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	victim := gen.Victim
	advance(t, 10*time.Minute, func() bool { return state(d, victim) == playbook.AwaitingApproval })
	if _, err := d.Operate(ctx, victim, playbook.EvApprove, "alice", "VMs unreachable"); err != nil {
		t.Fatal(err)
	}
	// the recovery's power-off is in flight: wait for it to start
	waitUntil(t, "the power-off in flight", 30*time.Second, func() bool {
		return state(d, victim) == playbook.Rebooting && d.ActionsInFlight() > 0
	})
	ticks := d.Snapshot().Ticks
	start := time.Now()
	if err := d.SetPaused(ctx, true, "bob", "maintenance window"); err != nil {
		t.Fatal(err)
	}
	if err := d.SetPaused(ctx, false, "bob", "window over"); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("pause and resume took %s while a power-off was in flight", took)
	}
	waitUntil(t, "ticks while the BMC is slow", 2*time.Second, func() bool { return d.Snapshot().Ticks >= ticks+3 })
	if d.ActionsInFlight() == 0 {
		t.Fatal("the power-off finished before the checks: the test proves nothing")
	}
	advance(t, 10*time.Minute, func() bool { return state(d, victim) == playbook.Restored })
	if n := world.Count().PowerCycles; n != 1 {
		t.Fatalf("%d power-ons after the slow power-off, want 1", n)
	}
}
