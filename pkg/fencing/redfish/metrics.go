package redfish

import (
	"context"
	"net/http"
	"strconv"

	"go.opentelemetry.io/otel/trace"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fencedhq/fenced/internal/metrics"
	"github.com/fencedhq/fenced/internal/obs"
)

// OperationBuckets are the upper bounds (seconds) of the operation
// histogram: a power state read takes a fraction of a second, a verified
// power change tens of seconds to minutes.
var OperationBuckets = []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}

type fencerMetrics struct {
	operations *prometheus.HistogramVec // operation, outcome
	requests   *prometheus.CounterVec   // method, code
	retries    *prometheus.CounterVec   // operation
}

func newFencerMetrics(reg prometheus.Registerer) (fencerMetrics, error) {
	var m fencerMetrics
	var err error
	if m.operations, err = metrics.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "fenced_redfish_operation_duration_seconds",
		Help:    "Redfish operations (power_state, power_off, power_on, power_cycle; a power change includes its verification) by outcome.",
		Buckets: OperationBuckets}, []string{"operation", "outcome"})); err != nil {
		return m, err
	}
	if m.requests, err = metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fenced_redfish_requests_total",
		Help: "HTTP requests to BMCs by method and status code (code \"error\": no answer)."}, []string{"method", "code"})); err != nil {
		return m, err
	}
	m.retries, err = metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fenced_redfish_retries_total",
		Help: "Redfish requests retried (a 5xx, a 429, no answer) or sent again after a new login."}, []string{"operation"}))
	return m, err
}

// op runs one operation as a call (a span and its B.6 log line: a power
// change at info, a read at debug) and records it.
func (f *Fencer) op(ctx context.Context, op, host string, fn func(context.Context) error) error {
	start := f.cfg.Clock.Now()
	ctx, call := obs.Start(ctx, f.tr, f.cfg.Clock, "redfish."+op, obs.Fields{Component: "redfish", HostID: host, Action: op}, trace.SpanKindClient)
	err := fn(ctx)
	f.m.operations.WithLabelValues(op, metrics.Outcome(err)).Observe(f.cfg.Clock.Now().Sub(start).Seconds())
	ev := f.cfg.Log.Info()
	switch {
	case err != nil:
		ev = f.cfg.Log.Warn()
	case op == "power_state":
		ev = f.cfg.Log.Debug()
	}
	call.End(ev, metrics.Outcome(err), err).Msg("BMC operation")
	return err
}

// countingTransport counts the HTTP requests sent to BMCs.
type countingTransport struct {
	next     http.RoundTripper
	requests *prometheus.CounterVec
}

func (t countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(r)
	code := "error"
	if err == nil {
		code = strconv.Itoa(resp.StatusCode)
	}
	t.requests.WithLabelValues(r.Method, code).Inc()
	return resp, err
}
