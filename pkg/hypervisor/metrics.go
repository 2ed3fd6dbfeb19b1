package hypervisor

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fencedhq/fenced/internal/metrics"
)

// ProbeBuckets are the upper bounds (seconds) of the libvirt probe
// histogram: a healthy daemon answers in milliseconds.
var ProbeBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}

// probeMetrics are shared by every probe on one registerer (no host
// label: the per-host figures are signals).
type probeMetrics struct {
	calls    *prometheus.HistogramVec // outcome: ok, error
	timeouts prometheus.Counter
	connects *prometheus.CounterVec // outcome: ok, error, timeout
}

func newProbeMetrics(reg prometheus.Registerer) (probeMetrics, error) {
	var m probeMetrics
	var err error
	if m.calls, err = metrics.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "fenced_libvirt_probe_duration_seconds",
		Help: "libvirt probe calls that returned, by outcome (ok, error).", Buckets: ProbeBuckets}, []string{"outcome"})); err != nil {
		return m, err
	}
	if m.timeouts, err = metrics.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{Name: "fenced_libvirt_probe_timeouts_total",
		Help: "libvirt probe calls still unanswered after the call timeout."})); err != nil {
		return m, err
	}
	m.connects, err = metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fenced_libvirt_connects_total",
		Help: "Connections to libvirt daemons by outcome (ok, error, timeout)."}, []string{"outcome"}))
	return m, err
}
