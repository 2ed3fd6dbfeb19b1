package main

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/fencedhq/fenced/internal/buildinfo"
)

// newRegistry is the registry a replica's components put their collectors
// on and /metrics serves: with the Go runtime's and the process's
// collectors, and fenced_build_info.
func newRegistry() (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	bi := buildinfo.Get()
	info := prometheus.NewGauge(prometheus.GaugeOpts{Name: "fenced_build_info",
		Help:        "Always 1: the version, commit and Go version of this fenced.",
		ConstLabels: prometheus.Labels{"version": bi.Version, "commit": bi.Commit, "goversion": bi.GoVersion}})
	info.Set(1)
	for _, c := range []prometheus.Collector{collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), info} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
	}
	return reg, nil
}
