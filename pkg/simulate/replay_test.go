package simulate

import (
	"bytes"
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
	"github.com/fencedhq/fenced/pkg/record"
	"github.com/fencedhq/fenced/pkg/signals"
	"github.com/fencedhq/fenced/pkg/trace"
)

// liveLab runs the dev lab the way the daemon's loop does (collect, then
// evaluate; the control plane's answers captured for the recorder) at ticks
// that drift off their schedule, records every tick, and returns the
// transitions it made and the recorded trace.
func liveLab(t *testing.T, p *policy.Policy, tick, dur, reboot time.Duration) ([]playbook.Change, []byte) {
	t.Helper()
	start := time.Date(2026, 3, 1, 10, 0, 0, 123_000_000, time.UTC)
	clk := clock.NewFake(start)
	sc, pc := p.SignalsConfig(), p.PlaybookConfig()
	w := lab.NewWorld(clk.Now, reboot, sc)
	gen := lab.NewGenerator(8, start, time.Minute, w)
	src := lab.Source{Gen: gen, World: w}
	var seen map[string]signals.Control
	control := func(h string) (signals.Control, bool) {
		c, ok := w.Control(h)
		if ok {
			seen[h] = c
		}
		return c, ok
	}
	var changes []playbook.Change
	actor := &playbook.Actor{Nova: w, Gate: w, Placer: w, Power: w, Checker: w,
		EvacuateParallel: 1, Notify: w, Journal: w, Clock: clk, Log: zerolog.Nop()}
	f, err := fleet.New(sc, pc, actor, fleet.Hooks{Control: control, Change: func(c playbook.Change, _ *signals.Verdict) { changes = append(changes, c) }})
	if err != nil {
		t.Fatal(err)
	}
	w.SetViews(f)
	for _, h := range gen.Hosts {
		f.Add(h)
	}
	var buf bytes.Buffer
	enc := record.NewEncoder(&buf)
	ctx := context.Background()
	for i := 0; time.Duration(i)*tick < dur; i++ {
		// a tick runs a little late, by a different amount each time
		now := start.Add(time.Duration(i)*tick + time.Duration(i*7919%1000)*time.Millisecond)
		clk.Set(now)
		samples, err := src.Collect(ctx, now)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range samples {
			if err := f.Observe(s); err != nil {
				t.Fatal(err)
			}
		}
		seen = map[string]signals.Control{}
		if _, err := f.Tick(ctx, now); err != nil {
			t.Fatal(err)
		}
		enc.Encode(record.Observation{At: now, Samples: samples, Control: seen})
	}
	if err := enc.Flush(); err != nil {
		t.Fatal(err)
	}
	return changes, buf.Bytes()
}

// TestReplayOfARecordedLabRun: a lab run recorded tick by tick replays
// through simulate, with the same policy, to the very same transitions at
// the very same times; and --compare between the run and its replay finds
// nothing.
func TestReplayOfARecordedLabRun(t *testing.T) {
	for _, mode := range []string{"auto", "approve"} {
		t.Run(mode, func(t *testing.T) {
			p, err := policy.Default().WithMode(mode)
			if err != nil {
				t.Fatal(err)
			}
			const tick, reboot = 5 * time.Second, 30 * time.Second
			live, tr := liveLab(t, p, tick, 25*time.Minute, reboot)
			if len(live) < 3 {
				t.Fatalf("the live lab made %d transitions: %+v", len(live), live)
			}
			res, err := Run(context.Background(), trace.NewReader(bytes.NewReader(tr), "recorded"), Options{Policy: p, Tick: time.Hour, RebootTime: reboot})
			if err != nil {
				t.Fatal(err)
			}
			if !res.TraceTicks {
				t.Fatal("the recorded trace's ticks were not used")
			}
			cmp := Compare(live, res.Changes, 0)
			if len(cmp.Diffs) > 0 || cmp.Same != len(live) {
				var out strings.Builder
				WriteComparison(&out, cmp, "live", "replay")
				t.Fatalf("replay differs from the live run:\n%s", out.String())
			}
			t.Logf("%s: %d transitions replayed exactly, e.g. %s→%s at %s", mode, len(live), live[0].From, live[0].To, live[0].At.Format(time.RFC3339Nano))
		})
	}
}
