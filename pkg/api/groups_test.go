package api

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/fencedhq/fenced/pkg/audit"
	"github.com/fencedhq/fenced/pkg/daemon"
	"github.com/fencedhq/fenced/pkg/fleet"
	"github.com/fencedhq/fenced/pkg/lease"
	"github.com/fencedhq/fenced/pkg/playbook"
)

// groupBackend is the fake backend with groups: cmp-001 in rack1,
// cmp-017 in the default group, rack1 paused.
type groupBackend struct{ *fakeBackend }

func (g groupBackend) SetGroupPaused(_ context.Context, group string, p bool, op, reason string) error {
	if group == "nope" {
		return fmt.Errorf("daemon: %w %q", daemon.ErrUnknownGroup, group)
	}
	g.ops = append(g.ops, fmt.Sprintf("group %s pause=%v %s %s", group, p, op, reason))
	return nil
}

func groupedBackend() groupBackend {
	b := backend()
	b.snap.Hosts[0].Group, b.snap.Hosts[1].Group = "rack1", playbook.DefaultGroup
	b.snap.Groups = []fleet.GroupView{
		{Group: playbook.Group{Name: "rack1", Total: 1, Healthy: 1, Paused: true}, Source: "hosts cmp-00*", MinHealthy: "1 (1 of 1)"},
		{Group: playbook.Group{Name: playbook.DefaultGroup, Total: 1, AtWarnOrWorse: 1}},
	}
	b.snap.PausedGroups = map[string]lease.GroupPause{"rack1": {Operator: "alice", Reason: "rack work"}}
	return groupBackend{b}
}

func TestHostsOfOneGroup(t *testing.T) {
	s := New(groupedBackend(), reads(t), nil)
	code, body := do(t, s, "GET", "/api/v1/hosts", "", "")
	var all HostsReply
	if err := json.Unmarshal([]byte(body), &all); code != 200 || err != nil {
		t.Fatalf("%d %v %s", code, err, body)
	}
	if len(all.Hosts) != 2 || all.Hosts[0].Group != "rack1" || all.Hosts[1].Group != "default" || len(all.Groups) != 2 || all.PausedGroups["rack1"].Operator != "alice" {
		t.Fatalf("%+v", all)
	}
	code, body = do(t, s, "GET", "/api/v1/hosts?group=rack1", "", "")
	var one HostsReply
	if err := json.Unmarshal([]byte(body), &one); code != 200 || err != nil {
		t.Fatalf("%d %v %s", code, err, body)
	}
	if len(one.Hosts) != 1 || one.Hosts[0].Host != "cmp-001" || len(one.Groups) != 1 || !one.Groups[0].Paused || one.Groups[0].MinHealthy != "1 (1 of 1)" {
		t.Fatalf("%+v", one)
	}
	if code, body := do(t, s, "GET", "/api/v1/hosts/cmp-001", "", ""); code != 200 || !strings.Contains(body, `"group": "rack1"`) {
		t.Fatalf("one host: %d %s", code, body)
	}
	if code, body := do(t, s, "GET", "/api/v1/hosts?group=rack9", "", ""); code != 404 || !strings.Contains(body, `unknown group \"rack9\"`) {
		t.Fatalf("unknown group: %d %s", code, body)
	}
}

func TestPauseGroup(t *testing.T) {
	b := groupedBackend()
	rd := reads(t)
	s := New(b, rd, map[string]Identity{"o": {Name: "olga", Role: Operator}, "v": {Name: "vic", Role: Viewer}})
	if code, _ := do(t, s, "POST", "/api/v1/groups/rack1/pause", "v", `{"reason":"x"}`); code != 403 {
		t.Fatalf("a viewer paused a group: %d", code)
	}
	if code, body := do(t, s, "POST", "/api/v1/groups/rack1/pause", "o", `{"reason":"rack work"}`); code != 200 || !strings.Contains(body, `"paused": true`) {
		t.Fatalf("pause: %d %s", code, body)
	}
	if code, _ := do(t, s, "POST", "/api/v1/groups/rack1/resume", "o", `{"reason":"done"}`); code != 200 {
		t.Fatalf("resume: %d", code)
	}
	if code, body := do(t, s, "POST", "/api/v1/groups/nope/pause", "o", `{"reason":"x"}`); code != 404 || !strings.Contains(body, "unknown group") {
		t.Fatalf("unknown group: %d %s", code, body)
	}
	if code, _ := do(t, s, "POST", "/api/v1/groups/rack1/pause", "o", `{}`); code != 400 {
		t.Fatalf("pause without a reason: %d", code)
	}
	if got := strings.Join(b.ops, "|"); got != "group rack1 pause=true olga rack work|group rack1 pause=false olga done" {
		t.Fatalf("ops %q", got)
	}
	// a refused group pause is audited under its action's name
	recs, err := rd.Audit.Records(context.Background(), func(r audit.Record) bool { return r.Outcome == "rejected" })
	if err != nil || len(recs) != 1 || recs[0].Action != "pause_group" || recs[0].Operator != "olga" {
		t.Fatalf("%v %+v", err, recs)
	}
}
