// Package dev tests `fenced run --dev` end to end as a user would: the real
// binary, the CLI, the API on loopback.
package dev

import (
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/fencedhq/fenced/integration/internal/harness"
)

func TestDevRunApproveThroughCLI(t *testing.T) {
	bin := harness.Fenced(t)
	port := harness.FreePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	p := harness.Start(t, bin, harness.DevArgs(port)...)
	harness.WaitHTTP(t, base+"/healthz", 20*time.Second)

	// lab-007 starves 30 s (lab time) after start; at ×30 that is a second
	h := harness.WaitState(t, base, "lab-007", 60*time.Second, "critical", "awaiting_approval")
	if !h.Incoherent {
		t.Errorf("the starved host should be flagged execution-incoherent: %+v", h)
	}
	harness.WaitState(t, base, "lab-007", 30*time.Second, "awaiting_approval")

	out, err := exec.Command(bin, "hosts", "--server", base).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "lab-007") || !strings.Contains(string(out), "awaiting_approval") {
		t.Fatalf("fenced hosts: %v\n%s", err, out)
	}
	out, err = exec.Command(bin, "approve", "lab-007", "--server", base, "--operator", "ci", "--reason", "integration test").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "awaiting_approval → fenced") {
		t.Fatalf("fenced approve: %v\n%s", err, out)
	}
	harness.WaitState(t, base, "lab-007", 60*time.Second, "restored", "normal")

	// a refused command exits non-zero with the API's reason
	out, err = exec.Command(bin, "approve", "lab-001", "--server", base, "--reason", "x").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "not allowed") {
		t.Fatalf("approving a normal host: %v\n%s", err, out)
	}
	out, err = exec.Command(bin, "audit", "verify", "--server", base).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "audit chain intact") {
		t.Fatalf("audit verify: %v\n%s", err, out)
	}
	out, err = exec.Command(bin, "audit", "--host", "lab-007", "--server", base).CombinedOutput()
	// after_fence evacuate: power off (verified), evacuate, power on
	if err != nil || !strings.Contains(string(out), "power_off") || !strings.Contains(string(out), "evacuate") ||
		!strings.Contains(string(out), "power_on") || !strings.Contains(string(out), "ci") {
		t.Fatalf("audit: %v\n%s", err, out)
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`fenced_host_state{host="lab-007"`, `fenced_leader 1`, `fenced_action_duration_seconds_count{action="power_off",outcome="ok"} 1`,
		`fenced_action_duration_seconds_count{action="power_on",outcome="ok"} 1`,
		`fenced_transitions_total{to="rebooting"} 1`, `fenced_tick_drift_seconds`} {
		if !strings.Contains(string(m), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if !strings.Contains(p.Output(), "status page: http://127.0.0.1") {
		t.Fatalf("run --dev does not say where the status page is:\n%s", p.Output())
	}
}
