package main

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/fencedhq/fenced/pkg/api"
	"github.com/fencedhq/fenced/pkg/clock"
	"github.com/fencedhq/fenced/pkg/daemon"
	"github.com/fencedhq/fenced/pkg/lab"
	"github.com/fencedhq/fenced/pkg/lease"
	"github.com/fencedhq/fenced/pkg/policy"
)

// TestCLIAgainstAnInProcessDaemon runs the CLI against the HTTPS API of an
// in-process daemon on an embedded etcd, with viewer and operator tokens.
func TestCLIAgainstAnInProcessDaemon(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	etcd, err := lease.StartEmbedded(ctx, t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer etcd.Close()
	cli, err := lease.Connect(lease.ClientConfig{Endpoints: etcd.Endpoints})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	p := policy.Default() // approve mode
	clk := clock.NewScaled(60)
	world := lab.NewWorld(clk.Now, 30*time.Second, p.SignalsConfig())
	gen := lab.NewGenerator(12, clk.Now(), 0, world)
	be := world.Backends(gen)
	d, err := daemon.NewReplica(ctx, daemon.ReplicaConfig{Policy: p, Clock: clk, Log: zerolog.Nop(), Tick: 5 * time.Second,
		Etcd: cli, ID: "cli-test", TTL: 3 * time.Second, Backends: be})
	if err != nil {
		t.Fatal(err)
	}
	world.SetViews(d)
	go d.Run(ctx)

	viewer, operator := "viewer-token-0123456789", "operator-token-0123456789"
	srv := httptest.NewTLSServer(api.New(d, api.Reads{Audit: d.Audit(), Capacity: be.Capacity}, map[string]api.Identity{viewer: {Name: "vic", Role: api.Viewer}, operator: {Name: "alice", Role: api.Operator}}))
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	flags := func(tok string) []string { return []string{"--server", srv.URL, "--token", tok, "--ca", ca} }

	deadline := time.Now().Add(60 * time.Second)
	for {
		out, _, err := run(t, append([]string{"hosts", "--json"}, flags(viewer)...)...)
		if err != nil {
			t.Fatal(err)
		}
		var rep api.HostsReply
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("hosts --json: %v\n%s", err, out)
		}
		waiting := false
		for _, h := range rep.Hosts {
			waiting = waiting || (h.Host == "lab-007" && h.State == "awaiting_approval" && !h.ApprovalDeadline.IsZero())
		}
		if waiting {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lab-007 never waited for approval:\n%s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	out, _, err := run(t, append([]string{"hosts"}, flags(viewer)...)...)
	if err != nil || !strings.Contains(out, "APPROVAL DEADLINE") || !strings.Contains(out, "awaiting_approval") {
		t.Fatalf("hosts table: %v\n%s", err, out)
	}
	if _, _, err := run(t, append([]string{"hosts"}, "--server", srv.URL, "--token", viewer)...); err == nil {
		t.Fatal("an unknown certificate was accepted without --ca")
	}
	// the postmortem's capacity is the host's before its servers are evacuated
	out, _, err = run(t, append([]string{"report", "lab-007"}, flags(viewer)...)...)
	if err != nil || !strings.Contains(out, "r1 = V/C = 1.75") || !strings.Contains(out, "recommendation:") {
		t.Fatalf("report: %v\n%s", err, out)
	}
	if _, _, err := run(t, append([]string{"approve", "lab-007", "--reason", "x"}, flags(viewer)...)...); err == nil || !strings.Contains(err.Error(), "may read but not act") {
		t.Fatalf("viewer approving: %v", err)
	}
	out, _, err = run(t, append([]string{"approve", "lab-007", "--operator", "alice", "--reason", "VMs unreachable"}, flags(operator)...)...)
	if err != nil || !strings.Contains(out, "awaiting_approval → fenced") {
		t.Fatalf("approve: %v\n%s", err, out)
	}
	out, _, err = run(t, append([]string{"audit", "verify"}, flags(viewer)...)...)
	if err != nil || !strings.Contains(out, "audit chain intact") {
		t.Fatalf("audit verify: %v\n%s", err, out)
	}
	// the recovery (power off, evacuate, power on) runs from the next ticks
	for deadline := time.Now().Add(20 * time.Second); ; {
		out, _, err = run(t, append([]string{"audit", "--host", "lab-007"}, flags(viewer)...)...)
		if err == nil && strings.Contains(out, "alice") && strings.Contains(out, "power_off") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("audit: %v\n%s", err, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// the postmortem shows the recovery chain as it runs: live_migrate
	// (the gate closed) and the evacuate that powered the host off
	out, _, err = run(t, append([]string{"report", "lab-007"}, flags(viewer)...)...)
	if _, chain, ok := strings.Cut(out, "recovery chain (as it ran"); err != nil || !ok ||
		!regexp.MustCompile(`\n  live_migrate +\S+ → \S+ +skipped +when gate_open: live migration gate closed`).MatchString(chain) ||
		!regexp.MustCompile(`\n  evacuate +\S+ → \S+ +(running|ok) `).MatchString(chain) {
		t.Fatalf("report's chain: %v\n%s", err, out)
	}
	out, _, err = run(t, append([]string{"host", "lab-007"}, flags(viewer)...)...)
	if err != nil || !strings.Contains(out, "timeline:") || !strings.Contains(out, "CONTRIBUTION") {
		t.Fatalf("host: %v\n%s", err, out)
	}
	if _, _, err := run(t, append([]string{"pause", "--operator", "alice", "--reason", "maintenance"}, flags(operator)...)...); err != nil {
		t.Fatal(err)
	}
	if out, _, _ := run(t, append([]string{"hosts"}, flags(viewer)...)...); !strings.Contains(out, "FENCING PAUSED") {
		t.Fatalf("pause not shown:\n%s", out)
	}
}
