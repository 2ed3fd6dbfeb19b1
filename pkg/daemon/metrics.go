package daemon

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fencedhq/fenced/internal/metrics"
	"github.com/fencedhq/fenced/pkg/playbook"
	"github.com/fencedhq/fenced/pkg/signals"
)

// selfMonitor is what a Source may tell about itself.
type selfMonitor interface {
	Status() []signals.CollectorStatus
	SignalAges() map[signals.Name]time.Duration
}

// The engine's metrics. Most are read from the snapshot at scrape time (a
// follower shows the leader's host records); the tick's duration is a
// histogram the loop observes.
var (
	descLeader       = prometheus.NewDesc("fenced_leader", "1 when this replica leads.", nil, nil)
	descToken        = prometheus.NewDesc("fenced_fence_token", "The leader's fencing token as this replica knows it.", nil, nil)
	descPaused       = prometheus.NewDesc("fenced_paused", "1 while an operator has paused automatic fencing fleet-wide.", nil, nil)
	descTicks        = prometheus.NewDesc("fenced_ticks_total", "Evaluation ticks this replica ran as leader.", nil, nil)
	descDrift        = prometheus.NewDesc("fenced_tick_drift_seconds", "How late the last tick ran against its schedule: a starved controller shows it.", nil, nil)
	descInterval     = prometheus.NewDesc("fenced_tick_interval_seconds", "The configured evaluation interval.", nil, nil)
	descSampleErrors = prometheus.NewDesc("fenced_sample_errors_total", "Samples the evaluator rejected.", nil, nil)
	descEtcdWrites   = prometheus.NewDesc("fenced_etcd_writes_total", "Host records this replica wrote to etcd.", nil, nil)
	descTransitions  = prometheus.NewDesc("fenced_transitions_total", "State changes by target state.", []string{"to"}, nil)
	descInFlight     = prometheus.NewDesc("fenced_actions_in_flight", "Hosts whose entry actions are running now.", nil, nil)
	descHosts        = prometheus.NewDesc("fenced_hosts", "Hosts in each state.", []string{"state"}, nil)

	descHostState    = prometheus.NewDesc("fenced_host_state", "1 for the state each host is in.", []string{"host", "state"}, nil)
	descHostD        = prometheus.NewDesc("fenced_host_divergence", "Divergence d(t) per host (0 to 1).", []string{"host"}, nil)
	descHostBlind    = prometheus.NewDesc("fenced_host_blind", "1 when a host has no fresh signals (leader only: followers do not evaluate).", []string{"host"}, nil)
	descHostIncoh    = prometheus.NewDesc("fenced_host_incoherent", "1 when the control plane says up/ACTIVE while the host is critical (leader only).", []string{"host"}, nil)
	descHostHard     = prometheus.NewDesc("fenced_host_hard_failure", "1 when the corroborated hard-failure rule holds: libvirt and the Nova heartbeat both gone, the BMC not contradicting (leader only).", []string{"host"}, nil)
	descHostAgent    = prometheus.NewDesc("fenced_host_agent_down", "1 when the compute agent is down while execution is healthy: scheduling frozen, never fenced (leader only).", []string{"host"}, nil)
	descHostUnfence  = prometheus.NewDesc("fenced_host_unfenceable", "1 for each host whose BMC failed its last fence-path check (absent: passed or not checked).", []string{"host"}, nil)
	descGroupPaused  = prometheus.NewDesc("fenced_group_paused", "1 while an operator has paused automatic fencing in the group (fenced pause --group).", []string{"group"}, nil)
	descGroupHeld    = prometheus.NewDesc("fenced_group_guard_holds", "1 while the group's guard (min_healthy, max_concurrent, saturation within the group) would hold an automatic fence in it (leader only).", []string{"group"}, nil)
	descHostDeadline = prometheus.NewDesc("fenced_host_approval_deadline_timestamp_seconds", "When the pending approval of a host awaiting approval expires (Unix time; absent for other hosts).", []string{"host"}, nil)
)

// TickBuckets are the upper bounds (seconds) of the tick duration histogram.
var TickBuckets = []float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// engineMetrics are the engine's collectors.
type engineMetrics struct {
	tick prometheus.Histogram
}

// register puts the engine's collectors on reg (nil: none).
func (d *Daemon) registerMetrics(reg prometheus.Registerer) error {
	tick, err := metrics.Register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{Name: "fenced_tick_duration_seconds",
		Help: "Duration of the evaluation ticks: collect, evaluate, decide, persist.", Buckets: TickBuckets}))
	if err != nil {
		return err
	}
	d.metrics.tick = tick
	if reg == nil {
		return nil
	}
	return reg.Register(snapshotCollector{d})
}

// snapshotCollector reads the engine's snapshot at scrape time.
type snapshotCollector struct{ d *Daemon }

func (snapshotCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLeader, descToken, descPaused, descTicks, descDrift, descInterval, descSampleErrors,
		descEtcdWrites, descTransitions, descInFlight, descHosts, descHostState, descHostD, descHostBlind, descHostIncoh,
		descHostHard, descHostAgent, descHostUnfence, descHostDeadline, descGroupPaused, descGroupHeld} {
		ch <- d
	}
}

func (c snapshotCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.d.Snapshot()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge(descLeader, b2f(s.Leader))
	gauge(descToken, float64(s.Token))
	gauge(descPaused, b2f(s.Paused))
	counter(descTicks, float64(s.Ticks))
	gauge(descDrift, s.TickDrift)
	gauge(descInterval, c.d.cfg.Tick.Seconds())
	counter(descSampleErrors, float64(s.SampleErrors))
	counter(descEtcdWrites, float64(s.EtcdWrites))
	gauge(descInFlight, float64(c.d.ActionsInFlight()))
	known := map[string]bool{}
	for _, st := range playbook.States {
		known[string(st)] = true
		counter(descTransitions, float64(s.Transitions[string(st)]), string(st))
	}
	for to, n := range s.Transitions {
		if !known[to] {
			counter(descTransitions, float64(n), to)
		}
	}
	count := map[playbook.State]int{}
	for _, v := range s.Hosts {
		h := v.Host
		count[h.State]++
		for _, st := range playbook.States {
			gauge(descHostState, b2f(h.State == st), h.Name, string(st))
		}
		gauge(descHostD, v.Verdict.D, h.Name)
		if s.Leader { // a follower knows the records, not the verdicts
			gauge(descHostBlind, b2f(v.Verdict.Blind), h.Name)
			gauge(descHostIncoh, b2f(v.Verdict.Incoherent), h.Name)
			gauge(descHostHard, b2f(v.Verdict.HardFailure != ""), h.Name)
			gauge(descHostAgent, b2f(v.Verdict.AgentDown != ""), h.Name)
		}
		if h.State == playbook.AwaitingApproval && !h.ApprovalDeadline.IsZero() {
			gauge(descHostDeadline, float64(h.ApprovalDeadline.UnixMilli())/1e3, h.Name)
		}
	}
	for _, st := range playbook.States {
		gauge(descHosts, float64(count[st]), string(st))
	}
	for h := range s.Unfenceable {
		gauge(descHostUnfence, 1, h)
	}
	listed := map[string]bool{}
	for _, g := range s.Groups {
		listed[g.Name] = true
		_, paused := s.PausedGroups[g.Name]
		gauge(descGroupPaused, b2f(paused), g.Name)
		if s.Leader {
			gauge(descGroupHeld, b2f(g.Hold != ""), g.Name)
		}
	}
	for g := range s.PausedGroups {
		if !listed[g] { // paused, and no longer configured
			gauge(descGroupPaused, 1, g)
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
