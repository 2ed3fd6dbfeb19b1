package fleet_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/fencedhq/fenced/pkg/clock"
	"github.com/fencedhq/fenced/pkg/fleet"
	"github.com/fencedhq/fenced/pkg/lab"
	"github.com/fencedhq/fenced/pkg/playbook"
	"github.com/fencedhq/fenced/pkg/policy"
	"github.com/fencedhq/fenced/pkg/signals"
)

var t0 = time.Date(2026, 1, 15, 1, 0, 0, 0, time.UTC)

func newFleet(t *testing.T, mode string, maxConcurrent int) (*fleet.Fleet, *lab.World, *clock.Fake) {
	t.Helper()
	p, err := policy.Default().WithMode(mode)
	if err != nil {
		t.Fatal(err)
	}
	sc, pc := p.SignalsConfig(), p.PlaybookConfig()
	pc.Storm.MaxConcurrent, pc.Storm.MaxFraction, pc.Storm.SaturationFraction = maxConcurrent, 1, 1
	pc.AfterFence = playbook.AfterFenceRebootInPlace
	clk := clock.NewFake(t0)
	w := lab.NewWorld(clk.Now, time.Hour, sc)
	a := &playbook.Actor{Nova: w, Gate: w, Power: w, Checker: w, Notify: w, Journal: w, Clock: clk, Log: zerolog.Nop()}
	f, err := fleet.New(sc, pc, a, fleet.Hooks{Control: w.Control})
	if err != nil {
		t.Fatal(err)
	}
	w.SetViews(f)
	return f, w, clk
}

func starve(t *testing.T, f *fleet.Fleet, host string, at time.Time) {
	t.Helper()
	for _, n := range signals.All {
		if err := f.Observe(signals.Sample{Host: host, Signal: n, Value: 1e4, At: at}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestStormGuardCountsAcrossHosts(t *testing.T) {
	f, w, clk := newFleet(t, "auto", 2)
	for _, h := range []string{"a", "b", "c", "d"} {
		starve(t, f, h, t0)
		w.SetServers(h, 0)
	}
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		now := t0.Add(time.Duration(i) * 10 * time.Second)
		clk.Set(now)
		for _, h := range []string{"a", "b", "c", "d"} {
			starve(t, f, h, now)
		}
		if _, err := f.Tick(ctx, now); err != nil {
			t.Fatal(err)
		}
	}
	c := f.Counts()
	if c.Fencing != 2 || c.Total != 4 || c.AtWarnOrWorse != 4 {
		t.Fatalf("counts %+v, want 2 of 4 fencing (storm guard max 2), 4 at warn or worse", c)
	}
	v, _ := f.Get("c")
	if v.Host.State != playbook.Critical || !strings.Contains(v.Host.Reason, "storm guard") {
		t.Fatalf("third host: %s %q", v.Host.State, v.Host.Reason)
	}
	if w.PowerCycles != 2 {
		t.Fatalf("%d power cycles, want 2", w.PowerCycles)
	}
}

func TestOperateAndResume(t *testing.T) {
	f, _, _ := newFleet(t, "approve", 2)
	if _, err := f.Operate(context.Background(), t0, "nope", playbook.EvApprove, "x"); err == nil {
		t.Fatal("operate on an unknown host accepted")
	}
	if err := f.Resume(playbook.Host{Name: "h", State: playbook.AwaitingApproval, ApprovalDeadline: t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := f.Resume(playbook.Host{Name: "h"}); err == nil {
		t.Fatal("resumed the same host twice")
	}
	if c := f.Counts(); c.AtWarnOrWorse != 1 {
		t.Fatalf("a resumed host must count: %+v", c)
	}
	ch, err := f.Operate(context.Background(), t0, "h", playbook.EvApprove, "on-call: go")
	if err != nil || len(ch) == 0 || ch[0].To != playbook.Fenced {
		t.Fatalf("approve: %v %+v", err, ch)
	}
}
