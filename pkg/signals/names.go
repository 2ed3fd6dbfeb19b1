package signals

import "time"

// Name is one of the nine execution-plane signals of Appendix B.1. The names
// are a public contract: traces, policies and metrics use them.
type Name string

// The B.1 signals.
const (
	CPUSteal        Name = "cpu_steal_pct"
	RunqueuePerCore Name = "runqueue_per_core"
	LibvirtLatency  Name = "libvirt_latency_p95_ms"
	LibvirtTimeout  Name = "libvirt_timeout_pct"
	HeartbeatLag    Name = "heartbeat_lag_s"
	KubeletDelay    Name = "kubelet_sched_delay_p95_ms"
	PodEvictions    Name = "pod_evictions_per_min"
	IOLatency       Name = "io_latency_p99_ms"
	MgmtCPUShare    Name = "mgmt_cpu_share_pct"
)

// All lists the signals in a fixed order.
var All = []Name{CPUSteal, RunqueuePerCore, LibvirtLatency, LibvirtTimeout,
	HeartbeatLag, KubeletDelay, PodEvictions, IOLatency, MgmtCPUShare}

// Valid reports whether n is one of the B.1 signals.
func (n Name) Valid() bool {
	for _, a := range All {
		if a == n {
			return true
		}
	}
	return false
}

// Sample is one observation of one signal on one host.
type Sample struct {
	Host   string
	Signal Name
	Value  float64
	At     time.Time
	// Alert is set (and Signal is AlertSignal) when the sample is an
	// alert's observation rather than a measurement (see Alert).
	Alert *Alert
}
