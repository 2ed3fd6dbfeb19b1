package playbook

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fencedhq/fenced/internal/metrics"
)

// ActionBuckets are the upper bounds (seconds) of the action latency
// histogram: a Nova call takes a fraction of a second, a verified power
// change tens of seconds, an evacuation minutes.
var ActionBuckets = []float64{0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300}

// ActionMetrics is the actor's latency histogram,
// fenced_action_duration_seconds{action,outcome}. Its Observe is the
// Actor's Observe hook.
type ActionMetrics struct {
	latency *prometheus.HistogramVec
}

// NewActionMetrics registers the actor's collectors on reg (nil: none).
func NewActionMetrics(reg prometheus.Registerer) (*ActionMetrics, error) {
	h, err := metrics.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "fenced_action_duration_seconds",
		Help: "Latency of the playbook's actions (Nova, the live-migration gate, Redfish) by action and outcome.", Buckets: ActionBuckets},
		[]string{"action", "outcome"}))
	if err != nil {
		return nil, err
	}
	return &ActionMetrics{latency: h}, nil
}

// Observe records one action's latency and result.
func (m *ActionMetrics) Observe(action string, took time.Duration, err error) {
	m.latency.WithLabelValues(action, metrics.Outcome(err)).Observe(took.Seconds())
}
