// Package metrics holds what fenced's components share to register their
// Prometheus collectors on the registerer they are given.
package metrics

import (
	"errors"
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// Register registers c on reg and returns the collector to use: c, or the
// one already registered with the same descriptors, so that components with
// several instances (one libvirt probe per host) share their metrics. A nil
// reg registers nothing: c still counts, nobody reads it.
func Register[T prometheus.Collector](reg prometheus.Registerer, c T) (T, error) {
	if reg == nil {
		return c, nil
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(T); ok {
				return existing, nil
			}
		}
		return c, fmt.Errorf("metrics: %w", err)
	}
	return c, nil
}

// Outcome is the outcome label of a call: ok or error.
func Outcome(err error) string {
	if err != nil {
		return "error"
	}
	return "ok"
}

// Text gathers g in the Prometheus text format (tests read it).
func Text(g prometheus.Gatherer) (string, error) {
	mfs, err := g.Gather()
	if err != nil {
		return "", fmt.Errorf("metrics: gather: %w", err)
	}
	var b strings.Builder
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			return "", fmt.Errorf("metrics: %w", err)
		}
	}
	return b.String(), nil
}
