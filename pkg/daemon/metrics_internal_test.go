package daemon

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fencedhq/fenced/internal/metrics"
	"github.com/fencedhq/fenced/pkg/fleet"
	"github.com/fencedhq/fenced/pkg/playbook"
	"github.com/fencedhq/fenced/pkg/signals"
)

// TestSnapshotMetrics: the engine's collectors show the snapshot at scrape
// time: leadership, counters, every host's state and verdict, unfenceable
// hosts only, and the approval deadline of a host awaiting approval.
func TestSnapshotMetrics(t *testing.T) {
	at := time.Date(2026, 1, 15, 1, 20, 0, 0, time.UTC)
	d := &Daemon{cfg: Config{Tick: 5 * time.Second}, snap: Snapshot{At: at, Transitions: map[string]int64{"critical": 1}, Leader: true, Token: 42,
		TickDrift: 3.5, Ticks: 7, EtcdWrites: 3, Paused: true, Unfenceable: map[string]string{"cmp-017": "BMC refused the credentials"},
		Hosts: []fleet.View{
			{Host: playbook.Host{Name: "cmp-001", State: playbook.Normal}, Verdict: signals.Verdict{D: 0.1, AgentDown: "Nova heartbeat 45s old", Blind: true}},
			{Host: playbook.Host{Name: "cmp-017", State: playbook.AwaitingApproval, ApprovalDeadline: at.Add(15 * time.Minute)},
				Verdict: signals.Verdict{D: 0.82, Incoherent: true, HardFailure: "libvirt failed 3 probes in a row"}},
		}}}
	reg := prometheus.NewRegistry()
	if err := d.registerMetrics(reg); err != nil {
		t.Fatal(err)
	}
	d.metrics.tick.Observe(0.02)
	m, err := metrics.Text(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`fenced_host_state{host="cmp-017",state="awaiting_approval"} 1`,
		`fenced_host_state{host="cmp-017",state="normal"} 0`,
		`fenced_host_divergence{host="cmp-017"} 0.82`,
		`fenced_host_incoherent{host="cmp-017"} 1`, `fenced_host_incoherent{host="cmp-001"} 0`,
		`fenced_host_blind{host="cmp-001"} 1`, `fenced_host_blind{host="cmp-017"} 0`,
		`fenced_host_hard_failure{host="cmp-017"} 1`, `fenced_host_hard_failure{host="cmp-001"} 0`,
		`fenced_host_agent_down{host="cmp-001"} 1`, `fenced_host_agent_down{host="cmp-017"} 0`,
		`fenced_host_unfenceable{host="cmp-017"} 1`,
		`fenced_host_approval_deadline_timestamp_seconds{host="cmp-017"} 1.7684409e+09`,
		`fenced_hosts{state="awaiting_approval"} 1`, `fenced_hosts{state="normal"} 1`, `fenced_hosts{state="fenced"} 0`,
		`fenced_transitions_total{to="critical"} 1`, `fenced_transitions_total{to="rebooting"} 0`,
		"\nfenced_leader 1\n", "\nfenced_fence_token 42\n", "\nfenced_tick_drift_seconds 3.5\n", "\nfenced_tick_interval_seconds 5\n",
		"\nfenced_ticks_total 7\n", "\nfenced_etcd_writes_total 3\n", "\nfenced_paused 1\n", "\nfenced_sample_errors_total 0\n",
		"# TYPE fenced_tick_duration_seconds histogram\n", "\nfenced_tick_duration_seconds_count 1\n",
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	for _, not := range []string{`fenced_host_unfenceable{host="cmp-001"}`, `fenced_host_approval_deadline_timestamp_seconds{host="cmp-001"}`} {
		if strings.Contains(m, not) {
			t.Errorf("metrics show %s", not)
		}
	}

	// a follower knows the leader's records, not its verdicts
	d.snap.Leader = false
	m, _ = metrics.Text(reg)
	if !strings.Contains(m, `fenced_host_state{host="cmp-017",state="awaiting_approval"} 1`) || strings.Contains(m, "fenced_host_incoherent") ||
		strings.Contains(m, "fenced_host_blind") || !strings.Contains(m, "\nfenced_leader 0\n") {
		t.Errorf("a follower's metrics:\n%s", m)
	}
}
