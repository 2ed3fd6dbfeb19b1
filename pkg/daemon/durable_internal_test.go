package daemon

import (
	"testing"
	"time"

	"github.com/fencedhq/fenced/pkg/playbook"
)

// TestDurableKeepsTheApprovalDeadline: the record a follower serves says
// when a pending approval expires and what happens then.
func TestDurableKeepsTheApprovalDeadline(t *testing.T) {
	at := time.Date(2026, 1, 15, 1, 35, 0, 0, time.UTC)
	h := durable(playbook.Host{Name: "cmp-017", State: playbook.AwaitingApproval, ApprovalDeadline: at,
		ApprovalOnTimeout: playbook.OnTimeoutProceed, LastD: 0.9})
	if !h.ApprovalDeadline.Equal(at) || h.ApprovalOnTimeout != playbook.OnTimeoutProceed {
		t.Fatalf("durable record: %+v", h)
	}
}
