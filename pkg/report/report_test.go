package report

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fencedhq/fenced/pkg/audit"
	"github.com/fencedhq/fenced/pkg/fleet"
	"github.com/fencedhq/fenced/pkg/playbook"
)

func TestBuild(t *testing.T) {
	v := fleet.View{Host: playbook.Host{Name: "cmp-017", State: playbook.Restored}}
	recs := []audit.Record{
		{Action: "transition warn→critical", Component: "playbook", Verdict: "heartbeat"},
		{Action: "approve", Operator: "alice", Component: "api"},
		{Action: "power_cycle", Outcome: audit.OutcomeIntent, Component: "playbook"},
		{Action: "power_cycle", Outcome: audit.OutcomeOK, Component: "playbook"},
		{Action: "webhook critical", Component: "notify"},
	}
	r := Build(v, recs, Capacity{Cores: 32, VCPUs: 56, R2: 1.5, Known: true})
	if len(r.Timeline) != 2 || len(r.Actions) != 2 {
		t.Fatalf("timeline %d actions %d", len(r.Timeline), len(r.Actions))
	}
	if r.R1 != 1.75 || r.REff != 2.625 {
		t.Fatalf("r1 %v r_eff %v", r.R1, r.REff)
	}
	if !strings.Contains(r.Recommendation, "r1 ≤ 1.33") {
		t.Fatalf("recommendation %q", r.Recommendation)
	}
	if r := Build(v, nil, Capacity{Cores: 32, VCPUs: 32, Known: true}); !strings.Contains(r.Recommendation, "transient") {
		t.Fatalf("low r_eff: %q", r.Recommendation)
	}
	if r := Build(v, nil, Capacity{}); !strings.Contains(r.Recommendation, "capacity unknown") {
		t.Fatalf("unknown capacity: %q", r.Recommendation)
	}
}

// TestBuildChain: the recovery chain as it ran, from the steps' audit
// records: each start paired with its end by request id, a step still
// running, a step the host left unfinished; skipped servers stay actions.
func TestBuildChain(t *testing.T) {
	at := func(m int) time.Time { return time.Date(2026, 1, 15, 1, m, 0, 0, time.UTC) }
	recs := []audit.Record{
		{Timestamp: at(0), Component: "playbook", Action: "recovery live_migrate", RequestID: "r1", Outcome: "started", Detail: "step 1 of 3, timeout 20m0s, when gate_open"},
		{Timestamp: at(0), Component: "playbook", Action: "recovery live_migrate", RequestID: "r1", Outcome: "skipped", Detail: "when gate_open: live migration gate closed: libvirt does not answer"},
		{Timestamp: at(0), Component: "playbook", Action: "transition fenced→rebooting"},
		{Timestamp: at(0), Component: "playbook", Action: "recovery power_cycle", RequestID: "r2", Outcome: "started", Detail: "step 2 of 3, timeout 15m0s, when always"},
		{Timestamp: at(0), Component: "playbook", Action: "power_cycle", RequestID: "p1", Outcome: "intent"},
		{Timestamp: at(0), Component: "playbook", Action: "power_cycle", RequestID: "p1", Outcome: "ok"},
		{Timestamp: at(16), Component: "playbook", Action: "recovery power_cycle", RequestID: "r2", Outcome: "timeout", Detail: "host did not come back within 15m0s"},
		{Timestamp: at(16), Component: "playbook", Action: "recovery evacuate", RequestID: "r3", Outcome: "started", Detail: "step 3 of 3, timeout 15m0s, when always"},
		{Timestamp: at(17), Component: "playbook", Action: "evacuate", VMID: "vm-9", Outcome: "skipped", Detail: "server vm-9 is in ERROR: not evacuated (instances.skip_error)"},
	}
	v := fleet.View{Host: playbook.Host{Name: "cmp-017", State: playbook.Rebooting}}
	r := Build(v, recs, Capacity{})
	var got []string
	for _, s := range r.Chain {
		got = append(got, fmt.Sprintf("%s %s %s-%s", s.Step, s.Outcome, s.Start.Format("04"), s.End.Format("04")))
	}
	if want := "live_migrate skipped 00-00, power_cycle timeout 00-16, evacuate running 16-00"; strings.Join(got, ", ") != want {
		t.Fatalf("chain %q, want %q", strings.Join(got, ", "), want)
	}
	if r.Chain[0].Plan != "step 1 of 3, timeout 20m0s, when gate_open" || !strings.Contains(r.Chain[1].Detail, "did not come back") {
		t.Fatalf("plan and detail: %+v", r.Chain[:2])
	}
	if len(r.Actions) != 3 || r.Actions[2].Outcome != "skipped" || len(r.Timeline) != 1 {
		t.Fatalf("actions %d (the skipped server one of them), timeline %d", len(r.Actions), len(r.Timeline))
	}
	// the host left the recovery (an operator unfenced it): the open step is unfinished
	v.Host.State = playbook.Normal
	if r := Build(v, recs, Capacity{}); r.Chain[2].Outcome != "unfinished" {
		t.Fatalf("after unfence: %+v", r.Chain[2])
	}
}
