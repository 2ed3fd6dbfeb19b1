package daemon_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"

	"github.com/fencedhq/fenced/pkg/audit"
	"github.com/fencedhq/fenced/pkg/clock"
	"github.com/fencedhq/fenced/pkg/daemon"
	"github.com/fencedhq/fenced/pkg/lab"
	"github.com/fencedhq/fenced/pkg/playbook"
	"github.com/fencedhq/fenced/pkg/policy"
)

// newDev wires the daemon to a lab fleet on a fake clock, as `fenced run --dev` does.
func newDev(t *testing.T, mode string) (*daemon.Daemon, *lab.Generator) {
	t.Helper()
	p, err := policy.Default().WithMode(mode)
	if err != nil {
		t.Fatal(err)
	}
	clk := clock.Real{} // inside a synctest bubble: virtual time
	sc, pc := p.SignalsConfig(), p.PlaybookConfig()
	world := lab.NewWorld(clk.Now, 30*time.Second, sc)
	gen := lab.NewGenerator(10, clk.Now(), time.Minute, world)
	auditLog := audit.New(audit.NewMemStore(), clk)
	actor := &playbook.Actor{Mode: pc.Mode, Nova: world, Gate: world, Power: world, Checker: world,
		Notify: world, Journal: &audit.Journal{Log: auditLog, PolicyVersion: p.Version()}, Clock: clk, Log: zerolog.Nop()}
	d, err := daemon.New(daemon.Config{Policy: p, Tick: 5 * time.Second, Clock: clk, Log: zerolog.Nop(), Audit: auditLog,
		Source: lab.Source{Gen: gen, World: world}, Actor: actor, Control: world.Control, Hosts: gen.Hosts})
	if err != nil {
		t.Fatal(err)
	}
	world.SetViews(d.Fleet())
	return d, gen
}

func state(d *daemon.Daemon, host string) playbook.State {
	for _, v := range d.Snapshot().Hosts {
		if v.Host.Name == host {
			return v.Host.State
		}
	}
	return ""
}

// advance lets virtual time run tick by tick until cond holds or limit passes.
func advance(t *testing.T, d *daemon.Daemon, limit time.Duration, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(limit); time.Now().Before(end); {
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if cond() {
			return
		}
	}
	t.Fatalf("condition not reached within %s", limit)
}

func TestDevFleetApproveToRestored(t *testing.T) {
	synctest.Test(t, testDevFleet)
}

func testDevFleet(t *testing.T) {
	d, gen := newDev(t, "approve")
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
	advance(t, d, 10*time.Minute, func() bool { return state(d, victim) == playbook.AwaitingApproval })
	for _, v := range d.Snapshot().Hosts {
		if v.Host.Name != victim && v.Host.State != playbook.Normal {
			t.Fatalf("healthy lab host %s is %s", v.Host.Name, v.Host.State)
		}
	}
	if _, err := d.Operate(ctx, victim, playbook.EvApprove, "", "x"); err == nil {
		t.Fatal("approval without an operator name accepted")
	}
	ch, err := d.Operate(ctx, victim, playbook.EvApprove, "alice", "VMs unreachable")
	if err != nil || len(ch) < 2 || ch[len(ch)-1].To != playbook.Rebooting {
		t.Fatalf("approve: %v %+v", err, ch)
	}
	advance(t, d, 2*time.Minute, func() bool { return state(d, victim) == playbook.Restored })
	advance(t, d, 15*time.Minute, func() bool { return state(d, victim) == playbook.Normal })
	snap := d.Snapshot()
	if snap.Transitions["rebooting"] != 1 {
		t.Fatalf("power cycles: %d", snap.Transitions["rebooting"])
	}
	// the audit log holds the operator's approval, the power cycle's intent
	// before its outcome, and every transition; its chain verifies
	recs, err := d.AuditRecords(ctx, victim, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	intent, outcome, approval := -1, -1, -1
	for i, r := range recs {
		switch {
		case r.Action == "power_cycle" && r.Outcome == audit.OutcomeIntent:
			intent = i
		case r.Action == "power_cycle" && r.Outcome == audit.OutcomeOK:
			outcome = i
		case r.Action == "approve" && r.Operator == "alice":
			approval = i
		}
	}
	if approval < 0 || intent < 0 || outcome < intent {
		t.Fatalf("audit: approval %d intent %d outcome %d", approval, intent, outcome)
	}
	if n, err := d.VerifyAudit(ctx); err != nil || n < 8 {
		t.Fatalf("verify: %d %v", n, err)
	}
}
