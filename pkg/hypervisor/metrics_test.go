package hypervisor

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fencedhq/fenced/internal/metrics"
)

// TestProbesShareTheirMetrics: one probe per host, one set of collectors.
func TestProbesShareTheirMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	a, err := NewProbe(ProbeConfig{Host: "cmp-001", URI: "test:///default", Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewProbe(ProbeConfig{Host: "cmp-002", URI: "test:///default", Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	if a.m.calls != b.m.calls || a.m.timeouts != b.m.timeouts {
		t.Fatal("two probes on one registerer have collectors of their own")
	}
	a.m.timeouts.Inc()
	m, err := metrics.Text(reg)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(m, "\nfenced_libvirt_probe_timeouts_total 1\n") {
		t.Errorf("metrics:\n%s", m)
	}
}
