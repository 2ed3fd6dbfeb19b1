package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/fencedhq/fenced/policies"
)

// TestPolicyCheckPrintsTheChain: policy check prints the escalation chain
// in force and the instance filter, the file's and a group's that differs;
// a bad chain is refused with the file, the line and the field.
func TestPolicyCheckPrintsTheChain(t *testing.T) {
	dir := t.TempDir()
	pol := filepath.Join(dir, "p.yaml")
	body := strings.Replace(strings.Replace(string(policies.Default), "skip_error: false", "skip_error: true", 1), "after_fence: evacuate\n",
		"recovery:\n  - {step: live_migrate}\n  - {step: power_cycle, timeout: 10m}\n  - {step: evacuate}\n", 1) +
		"\ngroups:\n  local-disk:\n    recovery: [{step: power_cycle}]\n"
	if err := os.WriteFile(pol, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, err := run(t, "policy", "check", pol)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"  recovery (recovery:): live_migrate (when gate_open, timeout 20m0s) → power_cycle (timeout 10m0s) → evacuate (timeout 15m0s) → needs_human; instances: skip_error true\n",
		"  group local-disk recovery (recovery:): power_cycle (timeout 15m0s) → needs_human; instances: skip_error true\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("policy check lacks %q:\n%s", want, out)
		}
	}
	out, _, err = run(t, "policy", "check", "../../policies/default.yaml")
	if err != nil || !strings.Contains(out, "recovery (after_fence evacuate): live_migrate (when gate_open, timeout 20m0s) → evacuate (timeout 15m0s) → needs_human; instances: skip_error false") {
		t.Errorf("default policy: %v\n%s", err, out)
	}
	bad := strings.Replace(body, "{step: evacuate}", "{step: evacuate, when: later}", 1)
	if err := os.WriteFile(pol, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	line := 1 + strings.Count(strings.Split(bad, "when: later")[0], "\n")
	_, stderr, err := run(t, "policy", "check", pol)
	if err == nil || !strings.Contains(stderr, pol+":"+strconv.Itoa(line)+": recovery[2].when: unknown condition \"later\"") {
		t.Errorf("bad chain: %v\n%s", err, stderr)
	}
}
