package signals

import (
	"sort"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fencedhq/fenced/internal/metrics"
)

// CollectionBuckets are the upper bounds (seconds) of the collection
// duration histogram.
var CollectionBuckets = []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

var (
	descCollectorFailures = prometheus.NewDesc("fenced_collector_failures_total", "Failed collections per collector.", []string{"collector"}, nil)
	descCollectorSkipped  = prometheus.NewDesc("fenced_collector_skipped_total", "Ticks a collector was skipped because its last call was still running.", []string{"collector"}, nil)
	descCollectorSuccess  = prometheus.NewDesc("fenced_collector_last_success_timestamp_seconds", "When a collector last collected without error (Unix time; 0: never).", []string{"collector"}, nil)
	descCollectorSamples  = prometheus.NewDesc("fenced_collector_samples", "Samples a collector returned at its last successful collection.", []string{"collector"}, nil)
	descSignalAge         = prometheus.NewDesc("fenced_signal_age_seconds", "Age of the newest sample of each signal at the last collection (scrape age).", []string{"signal"}, nil)
)

// RegisterMetrics puts the registry's collectors on reg: each collector's
// failures, skips, last success and collection time, and each signal's
// scrape age. Call it once, before the first Collect.
func (r *Registry) RegisterMetrics(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	h, err := metrics.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "fenced_collector_duration_seconds",
		Help: "Duration of each collection, per collector.", Buckets: CollectionBuckets}, []string{"collector"}))
	if err != nil {
		return err
	}
	for _, s := range r.slots {
		h.WithLabelValues(s.c.Name())
	}
	r.mu.Lock()
	r.duration = h
	r.mu.Unlock()
	return reg.Register(registryCollector{r})
}

// observe records one collection's duration.
func (r *Registry) observe(name string, seconds float64) {
	r.mu.Lock()
	h := r.duration
	r.mu.Unlock()
	if h != nil {
		h.WithLabelValues(name).Observe(seconds)
	}
}

// registryCollector reads the registry's self-monitoring at scrape time.
type registryCollector struct{ r *Registry }

func (registryCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descCollectorFailures, descCollectorSkipped, descCollectorSuccess, descCollectorSamples, descSignalAge} {
		ch <- d
	}
}

func (c registryCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.r.Status() {
		ch <- prometheus.MustNewConstMetric(descCollectorFailures, prometheus.CounterValue, float64(s.Failures), s.Name)
		ch <- prometheus.MustNewConstMetric(descCollectorSkipped, prometheus.CounterValue, float64(s.Skipped), s.Name)
		ok := 0.0
		if !s.LastSuccess.IsZero() {
			ok = float64(s.LastSuccess.UnixMilli()) / 1e3
		}
		ch <- prometheus.MustNewConstMetric(descCollectorSuccess, prometheus.GaugeValue, ok, s.Name)
		ch <- prometheus.MustNewConstMetric(descCollectorSamples, prometheus.GaugeValue, float64(s.Samples), s.Name)
	}
	ages := c.r.SignalAges()
	names := make([]string, 0, len(ages))
	for n := range ages {
		names = append(names, string(n))
	}
	sort.Strings(names)
	for _, n := range names {
		ch <- prometheus.MustNewConstMetric(descSignalAge, prometheus.GaugeValue, ages[Name(n)].Seconds(), n)
	}
}
