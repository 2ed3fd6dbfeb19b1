package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func run(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	cmd := newRootCmd()
	var out, errb bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), errb.String(), err
}

func TestHelpTeaches(t *testing.T) {
	out, _, err := run(t, "--help")
	if err != nil || !strings.Contains(out, "normal → warn → critical → fenced → rebooting → restored") {
		t.Fatalf("root help: %v\n%s", err, out)
	}
	out, _, err = run(t, "simulate", "--help")
	if err != nil || !strings.Contains(out, "--trace") || !strings.Contains(out, "Exit status") {
		t.Fatalf("simulate help: %v\n%s", err, out)
	}
}

func TestPolicyCheck(t *testing.T) {
	out, _, err := run(t, "policy", "check", "../../policies/default.yaml")
	if err != nil || !strings.Contains(out, "ok (v1@") || !strings.Contains(out, "cpu_steal_pct") {
		t.Fatalf("%v\n%s", err, out)
	}
	_, stderr, err := run(t, "policy", "check", "../../pkg/policy/testdata/unknown-key.yaml")
	var ec exitCode
	if !errors.As(err, &ec) || ec != 1 || !strings.Contains(stderr, "unknown-key.yaml") || !strings.Contains(stderr, "hysterisis") {
		t.Fatalf("bad policy: err %v stderr %q", err, stderr)
	}
	// a policy that leaves out a signal, or gives a mean a 0s window
	for file, want := range map[string]string{
		"missing-signal.yaml": "missing-signal.yaml:60: signals: missing cpu_steal_pct",
		"zero-window.yaml":    "zero-window.yaml:63: signals.runqueue_per_core.window",
	} {
		_, stderr, err := run(t, "policy", "check", "../../pkg/policy/testdata/"+file)
		if !errors.As(err, &ec) || ec != 1 || !strings.Contains(stderr, want) {
			t.Errorf("%s: err %v stderr %q, want %q", file, err, stderr, want)
		}
	}
}

func TestSimulateIncidentFromTheCLI(t *testing.T) {
	out, stderr, err := run(t, "simulate", "--trace", "../../testdata/traces/incident.jsonl.gz", "--mode", "auto")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var tos []string
	for _, l := range lines {
		var c struct {
			T, Host, From, To, Reason string
			D                         float64
		}
		if err := json.Unmarshal([]byte(l), &c); err != nil || c.T == "" || c.Host == "" || c.Reason == "" {
			t.Fatalf("stdout line %q is not a state change: %v", l, err)
		}
		tos = append(tos, c.To)
	}
	if got := strings.Join(tos, ","); got != "warn,critical,fenced,rebooting,restored,normal" {
		t.Fatalf("transitions %s", got)
	}
	if !strings.Contains(stderr, "48 min to decision, 71 min to restoration") {
		t.Fatalf("summary does not compare with the paper:\n%s", stderr)
	}
}

func TestSimulateRejectsBadInput(t *testing.T) {
	_, _, err := run(t, "simulate", "--trace", "../../pkg/simulate/testdata/bad-value.jsonl")
	if err == nil || !strings.Contains(err.Error(), "bad-value.jsonl:3") {
		t.Fatalf("want an error naming line 3, got %v", err)
	}
	if _, _, err := run(t, "simulate", "--trace", "x", "--mode", "sometimes"); err == nil || !strings.Contains(err.Error(), "sometimes") {
		t.Fatalf("bad mode: %v", err)
	}
	if _, _, err := run(t, "simulate"); err == nil || !strings.Contains(err.Error(), "--trace is required") {
		t.Fatalf("missing trace: %v", err)
	}
}
