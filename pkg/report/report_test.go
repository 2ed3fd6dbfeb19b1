package report

import (
	"strings"
	"testing"

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
