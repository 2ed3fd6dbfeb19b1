package fleet_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/fencedhq/fenced/pkg/playbook"
	"github.com/fencedhq/fenced/pkg/policy"
)

// TestSetPolicy: an invalid policy changes nothing; a valid one reaches the
// playbooks of hosts already in the fleet.
func TestSetPolicy(t *testing.T) {
	f, _, _ := newFleet(t, "approve", 2)
	for _, h := range []string{"h1", "h2"} {
		if err := f.Resume(playbook.Host{Name: h, State: playbook.AwaitingApproval, ApprovalDeadline: t0.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	p, _ := policy.Default().WithMode("observe")
	sc, pc := p.SignalsConfig(), p.PlaybookConfig()
	bad := pc
	bad.Hysteresis = 1
	if err := f.SetPolicy(sc, bad); err == nil {
		t.Fatal("an invalid playbook config was taken")
	}
	badSC := sc
	badSC.DWarn = 0
	if err := f.SetPolicy(badSC, pc); err == nil {
		t.Fatal("an invalid signals config was taken")
	}
	ctx := context.Background()
	if ch, err := f.Operate(ctx, t0, "h1", playbook.EvApprove, "on-call: go"); err != nil || len(ch) == 0 || ch[0].To != playbook.Fenced {
		t.Fatalf("approve after refused policies: %v %+v", err, ch)
	}
	pc.Storm.MaxConcurrent, pc.Storm.MaxFraction, pc.Storm.SaturationFraction = 2, 1, 1
	if err := f.SetPolicy(sc, pc); err != nil {
		t.Fatal(err)
	}
	ch, err := f.Operate(ctx, t0, "h2", playbook.EvApprove, "on-call: go")
	if v, _ := f.Get("h2"); err != nil || len(ch) != 0 || v.Host.State != playbook.AwaitingApproval || !strings.Contains(v.Host.Reason, "observe mode") {
		t.Fatalf("approve in observe mode: %v %+v, host %s %q", err, ch, v.Host.State, v.Host.Reason)
	}
}
