package main

import (
	"context"
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

// TestSinceFromTheDaemonsClock: a daemon whose clock runs apart from this
// machine's (a lab at --speed 10 is minutes ahead within minutes; here it
// is years behind) — fenced hosts and fenced host measure "since" against
// the daemon's time the API reports, never the wall clock.
func TestSinceFromTheDaemonsClock(t *testing.T) {
	now := time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)
	b := &auditingBackend{snap: daemon.Snapshot{At: now, Mode: "approve", Hosts: []fleet.View{
		{Host: playbook.Host{Name: "cmp-001", State: playbook.Warn, Since: now.Add(-3*time.Minute - 5*time.Second)}},
		// ahead of the daemon's now (a clock step): never a negative duration
		{Host: playbook.Host{Name: "cmp-002", State: playbook.Normal, Since: now.Add(time.Minute)}},
	}}}
	srv := httptest.NewServer(api.New(b, api.Reads{}, nil))
	defer srv.Close()
	out, _, err := run(t, "hosts", "--server", srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "3m5s ago") || strings.Contains(out, "-3m") {
		t.Errorf("fenced hosts does not say 3m5s ago by the daemon's clock:\n%s", out)
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "cmp-002") && !strings.Contains(l, "0s ago") {
			t.Errorf("a since ahead of the daemon's clock: %q", l)
		}
	}
	out, _, err = run(t, "host", "cmp-001", "--server", srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "warn since 3m5s ago") {
		t.Errorf("fenced host does not say 3m5s ago by the daemon's clock:\n%s", out)
	}
}

// TestAuditSinceFromTheDaemonsClock: fenced audit --since 2m means two
// minutes before the daemon's now, not this machine's.
func TestAuditSinceFromTheDaemonsClock(t *testing.T) {
	now := time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)
	log := audit.New(audit.NewMemStore(), clock.Real{})
	for _, r := range []audit.Record{
		{Timestamp: now.Add(-5 * time.Minute), HostID: "cmp-001", Action: "old-one", Outcome: "ok"},
		{Timestamp: now.Add(-1 * time.Minute), HostID: "cmp-001", Action: "recent-one", Outcome: "ok"},
	} {
		if _, err := log.Append(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	b := &auditingBackend{log: log, snap: daemon.Snapshot{At: now, Hosts: []fleet.View{{Host: playbook.Host{Name: "cmp-001", State: playbook.Normal}}}}}
	srv := httptest.NewServer(api.New(b, api.Reads{Audit: log}, nil))
	defer srv.Close()
	out, _, err := run(t, "audit", "--since", "2m", "--server", srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "recent-one") || strings.Contains(out, "old-one") {
		t.Errorf("audit --since 2m by the daemon's clock:\n%s", out)
	}
}
