package api

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/fencedhq/fenced/pkg/playbook"
)

// TestHostsSayWhatHappensAtTheDeadline: a host awaiting approval carries
// its deadline and approval.on_timeout in GET /api/v1/hosts (fenced hosts
// and its --json read it), other hosts carry neither, and the status page
// shows it beside the deadline.
func TestHostsSayWhatHappensAtTheDeadline(t *testing.T) {
	b := backend()
	for i := range b.snap.Hosts {
		b.snap.Hosts[i].Host.ApprovalOnTimeout = playbook.OnTimeoutProceed // cmp-001 is normal: not shown
	}
	s := New(b, reads(t), nil)
	_, body := do(t, s, "GET", "/api/v1/hosts", "", "")
	var rep HostsReply
	if err := json.Unmarshal([]byte(body), &rep); err != nil {
		t.Fatal(err)
	}
	for _, h := range rep.Hosts {
		want := map[string]string{"cmp-017": "proceed"}[h.Host]
		if h.ApprovalOnTimeout != want {
			t.Errorf("%s (%s): approval_on_timeout %q, want %q", h.Host, h.State, h.ApprovalOnTimeout, want)
		}
	}
	if !strings.Contains(body, `"approval_on_timeout": "proceed"`) || strings.Count(body, `"approval_on_timeout"`) != 1 {
		t.Errorf("hosts: %s", body)
	}
	_, page := do(t, s, "GET", "/", "", "")
	for _, want := range []string{"h.approval_on_timeout", "AT_DEADLINE", `proceed: "proceed (fenced if still critical and the storm guard consents, else needs_human)"`} {
		if !strings.Contains(page, want) {
			t.Errorf("the status page does not show what happens at the deadline: no %s", want)
		}
	}
}
