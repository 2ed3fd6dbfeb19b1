package signals

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fencedhq/fenced/internal/metrics"
)

type fakeCollector struct {
	name  string
	block chan struct{} // when set, Collect waits for it (or its ctx)
	err   error
	calls atomic.Int32 // Collect runs on the registry's goroutines
}

func (f *fakeCollector) Name() string { return f.name }
func (f *fakeCollector) Collect(ctx context.Context, now time.Time) ([]Sample, error) {
	f.calls.Add(1)
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			<-f.block // a call that ignores its deadline: keeps running
		}
	}
	if f.err != nil {
		return nil, f.err
	}
	return []Sample{{Host: "h", Signal: CPUSteal, Value: 1, At: now}}, nil
}

func TestRegistryBoundsAndIsolatesCollectors(t *testing.T) {
	ok := &fakeCollector{name: "ok"}
	bad := &fakeCollector{name: "bad", err: errors.New("prometheus down")}
	hang := &fakeCollector{name: "hang", block: make(chan struct{})}
	r := &Registry{Timeout: 50 * time.Millisecond}
	for _, c := range []Collector{ok, bad, hang} {
		if err := r.Register(c); err != nil {
			t.Fatal(err)
		}
	}
	reg := prometheus.NewRegistry()
	if err := r.RegisterMetrics(reg); err != nil {
		t.Fatal(err)
	}
	if err := r.Register(&fakeCollector{name: "ok"}); err == nil {
		t.Fatal("duplicate collector name accepted")
	}
	start := time.Now()
	smp, err := r.Collect(context.Background(), t0)
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Fatalf("a hanging collector held the tick for %s", elapsed)
	}
	if len(smp) != 1 || err == nil || !strings.Contains(err.Error(), "prometheus down") || !strings.Contains(err.Error(), "hang: no answer") {
		t.Fatalf("samples %d err %v", len(smp), err)
	}
	// the hanging call is still in flight: the next tick skips it instead of piling up
	if _, err := r.Collect(context.Background(), t0.Add(10*time.Second)); err == nil {
		t.Fatal("expected the failing collector's error again")
	}
	if n := hang.calls.Load(); n != 1 {
		t.Fatalf("hanging collector called %d times while in flight", n)
	}
	st := r.Status()
	if st[2].Skipped != 1 || st[1].Failures != 2 || st[0].LastSuccess != t0.Add(10*time.Second) {
		t.Fatalf("status %+v", st)
	}
	close(hang.block)
	if ages := r.SignalAges(); ages[CPUSteal] != 0 {
		t.Fatalf("scrape age %v", ages)
	}
	m, err := metrics.Text(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`fenced_collector_failures_total{collector="bad"} 2`, `fenced_collector_failures_total{collector="ok"} 0`,
		`fenced_collector_skipped_total{collector="hang"} 1`, `fenced_collector_duration_seconds_count{collector="ok"} 2`,
		`fenced_collector_last_success_timestamp_seconds{collector="bad"} 0`, `fenced_collector_samples{collector="ok"} 1`,
		`fenced_signal_age_seconds{signal="cpu_steal_pct"} 0`,
		fmt.Sprintf(`fenced_collector_last_success_timestamp_seconds{collector="ok"} %g`, float64(t0.Add(10*time.Second).Unix()))} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s:\n%s", want, m)
		}
	}
}
