package main

import (
	"image/png"
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
	"github.com/fencedhq/fenced/pkg/playbook"
)

// TestReportHTMLAndPNG: fenced report HOST --html FILE --png FILE writes
// the incident page (self-contained) and the d(t) chart.
func TestReportHTMLAndPNG(t *testing.T) {
	now := time.Date(2026, 1, 15, 1, 20, 0, 0, time.UTC)
	b := &auditingBackend{log: audit.New(audit.NewMemStore(), clock.Real{}), snap: daemon.Snapshot{At: now, Hosts: []fleet.View{{Host: playbook.Host{Name: "cmp-017", State: playbook.Restored}}}}}
	srv := httptest.NewServer(api.New(b, api.Reads{Audit: b.log}, nil))
	defer srv.Close()
	dir := t.TempDir()
	h, p := filepath.Join(dir, "r.html"), filepath.Join(dir, "d.png")
	out, _, err := run(t, "report", "cmp-017", "--html", h, "--png", p, "--server", srv.URL)
	if err != nil || !strings.Contains(out, "wrote "+h) {
		t.Fatalf("%v %s", err, out)
	}
	page, err := os.ReadFile(h)
	if err != nil || !strings.HasPrefix(string(page), "<!doctype html>") || !strings.Contains(string(page), "cmp-017") || strings.Contains(string(page), "<script") {
		t.Errorf("html: %v %.200s", err, page)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := png.Decode(f); err != nil {
		t.Errorf("png: %v", err)
	}
}
