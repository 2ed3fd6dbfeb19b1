package main

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/fencedhq/fenced/pkg/api"
	"github.com/fencedhq/fenced/pkg/audit"
	"github.com/fencedhq/fenced/pkg/clock"
	"github.com/fencedhq/fenced/pkg/daemon"
	"github.com/fencedhq/fenced/pkg/fleet"
	"github.com/fencedhq/fenced/pkg/playbook"
)

// simulateChanges runs fenced simulate and decodes stdout, which must be
// exactly one state change per line with the public fields.
func simulateChanges(t *testing.T, args ...string) []playbook.Change {
	t.Helper()
	out, _, err := run(t, append([]string{"simulate"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	var cs []playbook.Change
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var c playbook.Change
		dec := json.NewDecoder(strings.NewReader(l))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil || c.Host == "" || c.Reason == "" {
			t.Fatalf("stdout line %q is not a state change: %v", l, err)
		}
		cs = append(cs, c)
	}
	return cs
}

// TestSimulateApprovalProceedsAtTheDeadline replays the incident under
// policies/approve-proceed.yaml: nobody approves, and at the deadline the
// starving host is fenced (the storm guard consents: one host of ten) and
// recovered; in the saturated cluster the guard refuses, and both starving
// hosts go to needs_human saying so.
func TestSimulateApprovalProceedsAtTheDeadline(t *testing.T) {
	const pol = "../../policies/approve-proceed.yaml"
	cs := simulateChanges(t, "--trace", "../../testdata/traces/incident.jsonl.gz", "--policy", pol, "--mode", "approve")
	var path []string
	var asked, proceeded playbook.Change
	for _, c := range cs {
		if c.Host != "cmp-017" {
			t.Errorf("healthy host changed state: %+v", c)
			continue
		}
		path = append(path, string(c.To))
		switch c.To {
		case playbook.AwaitingApproval:
			asked = c
		case playbook.Fenced:
			proceeded = c
		}
	}
	if got := strings.Join(path, ","); got != "warn,critical,awaiting_approval,fenced,rebooting,restored,normal" {
		t.Fatalf("cmp-017 went %s", got)
	}
	if proceeded.From != playbook.AwaitingApproval {
		t.Fatalf("fenced from %s, want from awaiting_approval", proceeded.From)
	}
	if d := proceeded.At.Sub(asked.At); d <= 15*time.Minute || d > 15*time.Minute+10*time.Second {
		t.Errorf("proceeded %s after the request, want the first tick after the 15 min deadline", d)
	}
	if !strings.Contains(proceeded.Reason, "passed with no decision; on_timeout proceed: still critical and the storm guard consents") {
		t.Errorf("the reason does not say why it proceeded: %q", proceeded.Reason)
	}

	cs = simulateChanges(t, "--trace", "../../testdata/traces/saturation.jsonl.gz", "--policy", pol, "--mode", "approve")
	gaveUp := 0
	for _, c := range cs {
		if c.To == playbook.Fenced || c.To == playbook.Rebooting {
			t.Fatalf("fenced %s in a saturated cluster: %+v", c.Host, c)
		}
		if c.From == playbook.AwaitingApproval && c.To == playbook.NeedsHuman &&
			strings.Contains(c.Reason, "on_timeout proceed refused: the storm guard does not consent: cluster-wide saturation") {
			gaveUp++
		}
	}
	if gaveUp != 2 {
		t.Fatalf("want both starving hosts in needs_human because the guard refused, got %d:\n%+v", gaveUp, cs)
	}
}

// TestHostsShowWhatHappensAtTheDeadline: fenced hosts shows the deadline
// and what happens at it; --json carries approval_on_timeout.
func TestHostsShowWhatHappensAtTheDeadline(t *testing.T) {
	now := time.Now()
	deadline := now.Add(12 * time.Minute)
	b := &auditingBackend{log: audit.New(audit.NewMemStore(), clock.Real{}), snap: daemon.Snapshot{At: now, Mode: "approve", Hosts: []fleet.View{
		{Host: playbook.Host{Name: "cmp-001", State: playbook.Normal, Since: now}},
		{Host: playbook.Host{Name: "cmp-017", State: playbook.AwaitingApproval, Since: now, ApprovalDeadline: deadline, ApprovalOnTimeout: playbook.OnTimeoutAbort}},
	}}}
	srv := httptest.NewServer(api.New(b, api.Reads{}, nil))
	defer srv.Close()
	out, _, err := run(t, "hosts", "--server", srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	var row string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "cmp-017") {
			row = l
		}
		if strings.HasPrefix(l, "cmp-001") && strings.Contains(l, " then ") {
			t.Errorf("a normal host shows an approval deadline: %q", l)
		}
	}
	if want := deadline.Local().Format("15:04:05") + " then abort"; !strings.HasSuffix(row, want) {
		t.Fatalf("cmp-017's row %q does not end %q:\n%s", row, want, out)
	}
	js, _, err := run(t, "hosts", "--json", "--server", srv.URL)
	if err != nil || !strings.Contains(js, `"approval_on_timeout": "abort"`) {
		t.Fatalf("hosts --json: %v\n%s", err, js)
	}
}
