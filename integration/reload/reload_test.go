// Package reload sends SIGHUP to a real `fenced run --config` process (an
// embedded etcd, observe mode, one libvirt test host) and reads the outcome
// through its API and `fenced audit`: a new policy and webhook are taken at
// once, a changed section that needs a restart is named and kept, and a bad
// policy or config file keeps the running config.
package reload

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fencedhq/fenced/integration/internal/harness"
	"github.com/fencedhq/fenced/pkg/audit"
	"github.com/fencedhq/fenced/pkg/policy"
	"github.com/fencedhq/fenced/policies"
)

func write(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

func policyVersion(t *testing.T, server string) string {
	t.Helper()
	resp, err := http.Get(server + "/api/v1/hosts")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var hosts struct {
		PolicyVersion string `json:"policy_version"`
		Mode          string `json:"mode"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&hosts); err != nil {
		t.Fatal(err)
	}
	return hosts.PolicyVersion
}

// reloadRecords are the replica's audited reloads, through `fenced audit`.
func reloadRecords(t *testing.T, bin, server string) []audit.Record {
	t.Helper()
	out, err := exec.Command(bin, "audit", "--server", server, "--json").Output()
	if err != nil {
		t.Fatalf("fenced audit: %v", err)
	}
	var all, recs []audit.Record
	if err := json.Unmarshal(out, &all); err != nil {
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") { // JSON lines
			var r audit.Record
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatalf("fenced audit --json: %v\n%s", err, out)
			}
			all = append(all, r)
		}
	}
	for _, r := range all {
		if r.Component == "config" && r.Action == "reload" {
			recs = append(recs, r)
		}
	}
	return recs
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 30s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestSIGHUPReloadsPolicyAndWebhooks(t *testing.T) {
	bin := harness.Fenced(t)
	dir := t.TempDir()
	port := harness.FreePort(t)
	server := fmt.Sprintf("http://127.0.0.1:%d", port)
	polPath, cfgPath := filepath.Join(dir, "policy.yaml"), filepath.Join(dir, "fenced.yaml")
	write(t, polPath, string(policies.Default))
	cfg := func(tick, extra string) string {
		return fmt.Sprintf("policy: %s\ntick: %s\napi: {listen: \"127.0.0.1:%d\"}\netcd: {embedded: {data_dir: %s}}\nlibvirt: {hosts: {cn1: \"test:///default\"}}\n%s",
			polPath, tick, port, filepath.Join(dir, "etcd"), extra)
	}
	write(t, cfgPath, cfg("1s", ""))
	p := harness.Start(t, bin, "run", "--config", cfgPath, "--mode", "observe", "--id", "r1")
	harness.WaitHTTP(t, server+"/healthz", 60*time.Second)
	v0 := policy.Default().Version()
	waitFor(t, "the replica leads with the default policy", func() bool { return policyVersion(t, server) == v0 })
	hup := func() {
		if err := p.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}

	// a new policy and a webhook; tick changed too, which needs a restart
	newPolicy := strings.Replace(string(policies.Default), "recover_after: 5m", "recover_after: 6m", 1)
	write(t, polPath, newPolicy)
	np, err := policy.Parse(polPath, []byte(newPolicy))
	if err != nil {
		t.Fatal(err)
	}
	v1 := np.Version()
	write(t, cfgPath, cfg("2s", "webhooks:\n  - {name: oncall, url: \"http://127.0.0.1:9/hook\"}\n"))
	hup()
	waitFor(t, "the new policy version in the API", func() bool { return policyVersion(t, server) == v1 })
	recs := reloadRecords(t, bin, server)
	if len(recs) != 1 || recs[0].Outcome != "ok" || recs[0].PolicyVersion != v1 || !strings.Contains(recs[0].Detail, v0+" → "+v1) ||
		!strings.Contains(recs[0].Detail, "webhooks [oncall]") || !strings.Contains(recs[0].Detail, "need a restart, running ones kept: tick") ||
		!strings.Contains(recs[0].Detail, "mode observe → observe") {
		t.Fatalf("reload records: %+v", recs)
	}
	if !strings.Contains(p.Output(), "need a restart") {
		t.Errorf("the log does not say tick needs a restart:\n%s", p.Output())
	}

	// a policy with an unknown key: refused, named by file and line, kept
	write(t, polPath, strings.Replace(newPolicy, "recover_after: 6m", "recover_after: 6m\nrecover_afterr: 7m", 1))
	hup()
	waitFor(t, "the refused policy in the audit", func() bool { return len(reloadRecords(t, bin, server)) == 2 })
	recs = reloadRecords(t, bin, server)
	if r := recs[1]; r.Outcome != "refused" || r.PolicyVersion != v1 || !strings.Contains(r.Detail, "policy.yaml:") || !strings.Contains(r.Detail, "recover_afterr") {
		t.Fatalf("refused reload: %+v", r)
	}
	if v := policyVersion(t, server); v != v1 {
		t.Fatalf("after a bad policy the replica runs %s, want %s", v, v1)
	}
	if out := p.Output(); !strings.Contains(out, "config reload refused; the running config is kept") || !strings.Contains(out, "recover_afterr") {
		t.Errorf("the log does not say why:\n%s", out)
	}

	// a config that does not parse: refused, kept
	write(t, polPath, newPolicy)
	write(t, cfgPath, cfg("2s", "webhooks: {oops\n"))
	hup()
	waitFor(t, "the refused config in the audit", func() bool { return len(reloadRecords(t, bin, server)) == 3 })
	if r := reloadRecords(t, bin, server)[2]; r.Outcome != "refused" || !strings.Contains(r.Detail, "fenced.yaml") {
		t.Fatalf("refused config: %+v", r)
	}
	if v := policyVersion(t, server); v != v1 || p.Cmd.ProcessState != nil {
		t.Fatalf("after a bad config: version %s, exited %v", v, p.Cmd.ProcessState)
	}
}
