package lab

import (
	"context"
	"testing"
	"time"

	"github.com/fencedhq/fenced/pkg/clock"
	"github.com/fencedhq/fenced/pkg/policy"
	"github.com/fencedhq/fenced/pkg/signals"
	"github.com/fencedhq/fenced/pkg/trace"
)

func TestWorldObeysFaultsAndReboots(t *testing.T) {
	t0 := time.Date(2026, 1, 15, 1, 0, 0, 0, time.UTC)
	clk := clock.NewFake(t0)
	w := NewWorld(clk.Now, time.Minute, policy.Default().SignalsConfig())
	ctx := context.Background()
	w.SetServers("a", 2)
	w.SetServers("b", 0)

	w.Fault("a", trace.FaultBMCUnreachable)
	if err := w.PowerCycle(ctx, "a"); err == nil {
		t.Fatal("power cycle through an unreachable BMC succeeded")
	}
	w.Fault("a", trace.FaultCleared)

	// steal at 40 % (over warn) before the reboot passes through
	if v, keep := w.Sample(signals.Sample{Host: "a", Signal: signals.CPUSteal, Value: 40, At: t0}); !keep || v != 40 {
		t.Fatalf("before reboot: %v %v", v, keep)
	}
	if err := w.PowerCycle(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if back, _ := w.Back(ctx, "a"); back {
		t.Fatal("back at once")
	}
	if _, keep := w.Sample(signals.Sample{Host: "a", Signal: signals.CPUSteal, Value: 40, At: t0}); keep {
		t.Fatal("a host that is off sent a sample")
	}
	clk.Advance(time.Minute)
	if back, _ := w.Back(ctx, "a"); !back {
		t.Fatal("not back after the reboot time")
	}
	// the starvation is gone: over-warn samples are replaced until the source calms
	if v, _ := w.Sample(signals.Sample{Host: "a", Signal: signals.CPUSteal, Value: 40, At: clk.Now()}); v >= 10 {
		t.Fatalf("rebooted host still starving: %v", v)
	}
	if v, _ := w.Sample(signals.Sample{Host: "a", Signal: signals.CPUSteal, Value: 3, At: clk.Now()}); v != 3 {
		t.Fatalf("calm sample altered: %v", v)
	}

	w.Fault("a", trace.FaultRebootNeverReturns)
	_ = w.PowerCycle(ctx, "a")
	clk.Advance(time.Hour)
	if back, _ := w.Back(ctx, "a"); back {
		t.Fatal("reboot_never_returns came back")
	}

	// forced down hosts are reported down to the evaluator
	_ = w.ForceDown(ctx, "b", true)
	if c, _ := w.Control("b"); c.ServiceUp {
		t.Fatal("forced-down host reported up")
	}
	if n := w.PowerCycles; n != 2 {
		t.Fatalf("%d power cycles counted", n)
	}
}
