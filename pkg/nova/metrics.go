package nova

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fencedhq/fenced/internal/metrics"
)

// CallBuckets are the upper bounds (seconds) of the Nova call histogram.
var CallBuckets = []float64{0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// newCallMetrics is fenced_nova_request_duration_seconds{action,outcome}:
// one observation per HTTP attempt (its _count counts the requests).
func newCallMetrics(reg prometheus.Registerer) (*prometheus.HistogramVec, error) {
	return metrics.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "fenced_nova_request_duration_seconds",
		Help:    "Nova and placement API calls, each attempt, by action (list_services, force_down, evacuate, …) and outcome.",
		Buckets: CallBuckets}, []string{"action", "outcome"}))
}

func (c *Client) observeCall(action string, took time.Duration, err error) {
	c.calls.WithLabelValues(action, metrics.Outcome(err)).Observe(took.Seconds())
}
