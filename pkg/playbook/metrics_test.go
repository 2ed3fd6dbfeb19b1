package playbook

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fencedhq/fenced/internal/metrics"
)

func TestActionMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewActionMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.Observe("power_off", 4*time.Second, nil)
	m.Observe("power_off", 400*time.Second, errors.New("BMC gone"))
	text, err := metrics.Text(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`fenced_action_duration_seconds_bucket{action="power_off",outcome="ok",le="5"} 1`,
		`fenced_action_duration_seconds_bucket{action="power_off",outcome="ok",le="2"} 0`,
		`fenced_action_duration_seconds_count{action="power_off",outcome="error"} 1`,
		`fenced_action_duration_seconds_bucket{action="power_off",outcome="error",le="300"} 0`} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s:\n%s", want, text)
		}
	}
	// a second actor on the same registerer shares the histogram
	if m2, err := NewActionMetrics(reg); err != nil || m2.latency != m.latency {
		t.Fatalf("second actor: %v", err)
	}
}
