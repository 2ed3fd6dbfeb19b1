package main

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fencedhq/fenced/pkg/api"
	"github.com/fencedhq/fenced/pkg/audit"
	"github.com/fencedhq/fenced/pkg/clock"
	"github.com/fencedhq/fenced/pkg/daemon"
	"github.com/fencedhq/fenced/pkg/fleet"
	"github.com/fencedhq/fenced/pkg/lease"
	"github.com/fencedhq/fenced/pkg/playbook"
)

// groupsBackend has two groups: rack1 (paused, below min_healthy) and the
// default group.
type groupsBackend struct {
	auditingBackend
	paused []string
}

func (b *groupsBackend) SetGroupPaused(_ context.Context, group string, p bool, op, reason string) error {
	b.paused = append(b.paused, group+" "+map[bool]string{true: "pause", false: "resume"}[p]+" "+op+" "+reason)
	return nil
}

func newGroupsBackend() *groupsBackend {
	now := time.Now()
	return &groupsBackend{auditingBackend: auditingBackend{log: audit.New(audit.NewMemStore(), clock.Real{}), snap: daemon.Snapshot{At: now, Mode: "auto",
		Hosts: []fleet.View{
			{Host: playbook.Host{Name: "cmp-001", State: playbook.Normal, Since: now}, Group: "rack1"},
			{Host: playbook.Host{Name: "cmp-002", State: playbook.Critical, Since: now}, Group: "rack1"},
			{Host: playbook.Host{Name: "cn9", State: playbook.Normal, Since: now}, Group: playbook.DefaultGroup},
		},
		Groups: []fleet.GroupView{
			{Group: playbook.Group{Name: "rack1", Total: 2, Healthy: 1, AtWarnOrWorse: 1, Paused: true}, Source: "aggregate agg-rack1", MinHealthy: "2 (2 of 2)",
				MaxConcurrent: 1, Hold: "group rack1 guard: a fence would leave 1 of 2 hosts healthy; min_healthy 2 needs 2"},
			{Group: playbook.Group{Name: playbook.DefaultGroup, Total: 1, Healthy: 1}},
		},
		PausedGroups: map[string]lease.GroupPause{"rack1": {Operator: "alice", Reason: "rack work"}},
	}}}
}

// TestHostsGroup: fenced hosts shows each host's group; --group filters the
// table and its JSON, and says the group's guard and pause; an unknown
// group is an error.
func TestHostsGroup(t *testing.T) {
	srv := httptest.NewServer(api.New(newGroupsBackend(), api.Reads{}, nil))
	defer srv.Close()
	out, _, err := run(t, "hosts", "--server", srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(out, "\n")
	if !strings.HasPrefix(lines[0], "HOST ") || !strings.Contains(lines[0], " GROUP ") {
		t.Fatalf("header %q", lines[0])
	}
	for _, want := range []string{"cmp-001  rack1", "cn9      default", "FENCING PAUSED in group rack1", "group rack1 (aggregate agg-rack1): 2 hosts, 1 healthy"} {
		if !strings.Contains(out, want) {
			t.Errorf("fenced hosts lacks %q:\n%s", want, out)
		}
	}
	out, _, err = run(t, "hosts", "--group", "rack1", "--server", srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "cn9") || !strings.Contains(out, "cmp-002") || !strings.Contains(out, "2 hosts, mode auto") {
		t.Fatalf("hosts --group rack1:\n%s", out)
	}
	for _, want := range []string{"min_healthy 2 (2 of 2); max_concurrent 1; PAUSED by alice: rack work; HOLDS automatic fencing: group rack1 guard"} {
		if !strings.Contains(out, want) {
			t.Errorf("hosts --group rack1 lacks %q:\n%s", want, out)
		}
	}
	js, _, err := run(t, "hosts", "--group", "default", "--json", "--server", srv.URL)
	if err != nil || !strings.Contains(js, `"host": "cn9"`) || strings.Contains(js, "cmp-001") || !strings.Contains(js, `"group": "default"`) {
		t.Fatalf("hosts --group default --json: %v\n%s", err, js)
	}
	if out, _, err := run(t, "host", "cmp-002", "--server", srv.URL); err != nil || !strings.Contains(out, "\ngroup: rack1\n") {
		t.Fatalf("host cmp-002: %v\n%s", err, out)
	}
	if _, _, err := run(t, "hosts", "--group", "rack9", "--server", srv.URL); err == nil || !strings.Contains(err.Error(), `unknown group "rack9"`) {
		t.Fatalf("unknown group: %v", err)
	}
}

func TestPauseGroupCmd(t *testing.T) {
	b := newGroupsBackend()
	srv := httptest.NewServer(api.New(b, api.Reads{}, nil))
	defer srv.Close()
	out, _, err := run(t, "pause", "--group", "rack1", "--reason", "rack work", "--operator", "alice", "--server", srv.URL)
	if err != nil || strings.TrimSpace(out) != "fencing paused in group rack1" {
		t.Fatalf("%v %q", err, out)
	}
	out, _, err = run(t, "resume", "--group", "rack1", "--reason", "done", "--operator", "alice", "--server", srv.URL)
	if err != nil || strings.TrimSpace(out) != "fencing resumed in group rack1" {
		t.Fatalf("%v %q", err, out)
	}
	if got := strings.Join(b.paused, "|"); got != "rack1 pause alice rack work|rack1 resume alice done" {
		t.Fatalf("%q", got)
	}
}

// TestRunConfigGroups: config check summarises the groups; run --config
// refuses two explicit lists that both match a known host (the config
// check alone cannot see two globs overlap without the hosts).
func TestRunConfigGroups(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "f.yaml")
	body := "etcd: {embedded: {data_dir: " + filepath.Join(dir, "etcd") + "}}\nhosts: [cmp-01, cmp-02]\nlibvirt: {hosts: {cmp-01: \"test:///default\"}}\n" +
		"groups:\n  - {name: a, hosts: [\"cmp-*\"], min_healthy: \"60%\", max_concurrent: 1}\n  - {name: b, hosts: [\"cn*\"]}\n"
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, err := run(t, "config", "check", cfg)
	if err != nil || !strings.Contains(out, "; groups a (hosts cmp-*, min_healthy 60%, max_concurrent 1), b (hosts cn*)") {
		t.Fatalf("config check: %v %q", err, out)
	}
	bad := strings.Replace(body, `"cn*"`, `"*-01"`, 1)
	if err := os.WriteFile(cfg, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err = run(t, "config", "check", cfg)
	if err == nil {
		t.Fatal("config check accepted overlapping groups")
	}
	_, _, err = run(t, "run", "--config", cfg, "--mode", "observe")
	if err == nil || !strings.Contains(err.Error(), "f.yaml") || !strings.Contains(err.Error(), "groups: cmp-01 matches the hosts of groups a and b") {
		t.Fatalf("run with overlapping groups: %v", err)
	}
}

// TestHostsReservedMarker: fenced hosts and fenced host H say which hosts
// are reserved, and whether each is still a spare or in service.
func TestHostsReservedMarker(t *testing.T) {
	b := newGroupsBackend()
	now := time.Now()
	b.snap.Hosts = append(b.snap.Hosts,
		fleet.View{Host: playbook.Host{Name: "cmp-009", State: playbook.Normal, Since: now}, Group: "rack1", Reserved: playbook.ReservedSpare},
		fleet.View{Host: playbook.Host{Name: "cmp-010", State: playbook.Normal, Since: now}, Group: "rack1", Reserved: playbook.ReservedInService})
	srv := httptest.NewServer(api.New(b, api.Reads{}, nil))
	defer srv.Close()
	out, _, err := run(t, "hosts", "--server", srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"cmp-009  rack1 (RESERVED spare)", "cmp-010  rack1 (RESERVED in service)"} {
		if !strings.Contains(out, want) {
			t.Errorf("fenced hosts lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "cmp-001  rack1 (RESERVED") {
		t.Errorf("a plain member marked reserved:\n%s", out)
	}
	js, _, err := run(t, "hosts", "--json", "--server", srv.URL)
	if err != nil || !strings.Contains(js, `"reserved": "spare"`) {
		t.Fatalf("hosts --json: %v\n%s", err, js)
	}
	if out, _, err := run(t, "host", "cmp-009", "--server", srv.URL); err != nil || !strings.Contains(out, "RESERVED host of its group: spare") {
		t.Fatalf("host cmp-009: %v\n%s", err, out)
	}
}
