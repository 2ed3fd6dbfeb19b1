package alerts_test

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/fencedhq/fenced/pkg/alerts"
	"github.com/fencedhq/fenced/pkg/clock"
	"github.com/fencedhq/fenced/pkg/fleet"
	"github.com/fencedhq/fenced/pkg/lab"
	"github.com/fencedhq/fenced/pkg/playbook"
	"github.com/fencedhq/fenced/pkg/policy"
	"github.com/fencedhq/fenced/pkg/signals"
)

var t0 = time.Date(2026, 1, 15, 1, 0, 0, 0, time.UTC)

// healthy reports every signal of every host at 0 (execution is fine).
type healthy []string

func (h healthy) Collect(_ context.Context, now time.Time) ([]signals.Sample, error) {
	var out []signals.Sample
	for _, host := range h {
		for _, n := range signals.All {
			out = append(out, signals.Sample{Host: host, Signal: n, At: now})
		}
	}
	return out, nil
}

// TestAlertsAloneNeverFence: in auto mode, with the default policy, every
// mapped alert firing for an hour on hosts whose own signals are healthy
// takes them to warn and never further: no force-down, no migration, no
// power cycle. With Nova's heartbeat stale too (two sources), the
// corroborated hard-failure rule fences; with libvirt answering, it is an
// agent failure and never fenced.
func TestAlertsAloneNeverFence(t *testing.T) {
	for _, tc := range []struct {
		name    string
		setup   func(w *lab.World)
		fenced  bool
		maxRank int
	}{
		{name: "alerts alone", maxRank: playbook.Warn.Rank()},
		{name: "alerts and a live libvirt with a stale heartbeat: agent failure", setup: func(w *lab.World) {
			w.SetHeartbeat("cmp-001", 5*time.Minute, true, 10*time.Second)
			w.SetLibvirt("cmp-001", signals.Liveness{Probed: true, Answered: true})
		}, maxRank: playbook.Warn.Rank()},
		{name: "alerts and a stale heartbeat without a libvirt probe: corroborated", setup: func(w *lab.World) {
			w.SetHeartbeat("cmp-001", 5*time.Minute, true, 10*time.Second)
		}, fenced: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := policy.Default().WithMode("auto")
			if err != nil {
				t.Fatal(err)
			}
			sc, pc := p.SignalsConfig(), p.PlaybookConfig()
			pc.Storm.MaxFraction, pc.Storm.SaturationFraction = 1, 1
			pc.AfterFence = playbook.AfterFenceRebootInPlace
			clk := clock.NewFake(t0)
			w := lab.NewWorld(clk.Now, time.Minute, sc)
			a := &playbook.Actor{Nova: w, Gate: w, Power: w, Checker: w, Notify: w, Journal: w, Clock: clk, Log: zerolog.Nop()}
			f, err := fleet.New(sc, pc, a, fleet.Hooks{Control: w.Control})
			if err != nil {
				t.Fatal(err)
			}
			w.SetViews(f)
			hosts := []string{"cmp-001", "cmp-002"}
			for _, h := range hosts {
				f.Add(h)
				w.SetServers(h, 3)
			}
			if tc.setup != nil {
				tc.setup(w)
			}
			store, err := alerts.New(alerts.Config{Clock: clk, Rules: map[string]alerts.Rule{
				"HostStealHigh": {Signal: "cpu_steal_pct", ValueFrom: "annotation:v"},
				"HeartbeatLate": {Signal: "heartbeat_lag_s", ValueFrom: "annotation:v"},
				"NodeDown":      {Weight: 1},
			}})
			if err != nil {
				t.Fatal(err)
			}
			src := &alerts.Source{Next: healthy(hosts), Store: store, Hosts: hosts}
			ctx := context.Background()
			maxRank, sawAlerts := 0, false
			for now := t0; now.Before(t0.Add(time.Hour)); now = now.Add(10 * time.Second) {
				clk.Set(now)
				body := `{"version":"4","status":"firing","alerts":[
					{"status":"firing","labels":{"alertname":"HostStealHigh","host":"cmp-001"},"annotations":{"v":"95"}},
					{"status":"firing","labels":{"alertname":"HeartbeatLate","host":"cmp-001"},"annotations":{"v":"600"}},
					{"status":"firing","labels":{"alertname":"NodeDown","host":"cmp-001"}}]}`
				if _, err := store.Receive(ctx, []byte(body)); err != nil {
					t.Fatal(err)
				}
				smp, _ := src.Collect(ctx, now)
				for _, s := range smp {
					if err := f.Observe(s); err != nil {
						t.Fatal(err)
					}
				}
				if _, err := f.Tick(ctx, now); err != nil {
					t.Fatal(err)
				}
				v, _ := f.Get("cmp-001")
				maxRank = max(maxRank, v.Host.State.Rank())
				sawAlerts = sawAlerts || len(v.Verdict.Alerts) == 3
				if o, _ := f.Get("cmp-002"); o.Host.State != playbook.Normal {
					t.Fatalf("cmp-002 without alerts left normal: %s", o.Host.State)
				}
			}
			if !sawAlerts {
				t.Fatal("the verdict never showed the alerts")
			}
			if tc.fenced {
				if maxRank < playbook.Critical.Rank() {
					t.Fatalf("alerts with a stale heartbeat never reached critical (max rank %d)", maxRank)
				}
				return
			}
			if maxRank != tc.maxRank {
				t.Fatalf("max state rank %d, want %d (warn)", maxRank, tc.maxRank)
			}
			if c := w.Count(); c.PowerCycles+c.Migrations+c.Evacuations != 0 {
				t.Fatalf("acted on alert evidence alone: %+v", c)
			}
		})
	}
}
