package lab

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/fencedhq/fenced/pkg/clock"
	"github.com/fencedhq/fenced/pkg/policy"
	"github.com/fencedhq/fenced/pkg/signals"
)

// A test can start a new incident on a served lab: the host starves from
// then on, the others do not.
func TestServerStarvesAHostOnRequest(t *testing.T) {
	t0 := time.Date(2026, 1, 15, 1, 0, 0, 0, time.UTC)
	clk := clock.NewFake(t0)
	w := NewWorld(clk.Now, time.Minute, policy.Default().SignalsConfig())
	gen := NewGenerator(4, t0, 24*time.Hour, w) // the built-in victim never starves
	srv := httptest.NewServer((&Server{World: w, Gen: gen}).Handler())
	defer srv.Close()
	r := &Remote{URL: srv.URL, Replica: "test"}
	ctx := context.Background()
	if err := r.Starve(ctx, "lab-404"); err == nil {
		t.Fatal("starving an unknown host succeeded")
	}
	clk.Advance(time.Minute)
	if err := r.Starve(ctx, "lab-002"); err != nil {
		t.Fatal(err)
	}
	clk.Advance(gen.Ramp)
	steal := map[string]float64{}
	for _, s := range gen.Samples(clk.Now()) {
		if s.Signal == signals.CPUSteal {
			steal[s.Host] = s.Value
		}
	}
	warn := policy.Default().SignalsConfig().Signals[signals.CPUSteal].Warn
	for h, v := range steal {
		if starving := h == "lab-002"; starving != (v >= warn) {
			t.Errorf("%s: cpu steal %.1f (warn %.1f) one ramp after lab-002 was starved", h, v, warn)
		}
	}
	if a, _, err := r.Actions(ctx); err != nil || len(a) != 0 {
		t.Fatalf("starving is not a replica's action: %+v %v", a, err)
	}
}
