package nova

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fencedhq/fenced/internal/metrics"
)

// TestCallMetrics: every attempt of a Nova call is observed by action and
// outcome.
func TestCallMetrics(t *testing.T) {
	_, c, _ := newFakeNova(t, func() time.Time { return time.Date(2026, 11, 25, 1, 0, 0, 0, time.UTC) })
	reg := prometheus.NewRegistry()
	calls, err := newCallMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	c.calls = calls
	if _, err := c.Services(context.Background()); err != nil {
		t.Fatal(err)
	}
	m, err := metrics.Text(reg)
	if err != nil {
		t.Fatal(err)
	}
	if want := `fenced_nova_request_duration_seconds_count{action="list_services",outcome="ok"} 1`; !strings.Contains(m, want) {
		t.Errorf("metrics lack %s:\n%s", want, m)
	}
}
