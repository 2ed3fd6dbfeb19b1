package policy

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fencedhq/fenced/pkg/playbook"
	"github.com/fencedhq/fenced/pkg/signals"
	"github.com/fencedhq/fenced/policies"
)

func TestDefaultIsThePapers(t *testing.T) {
	p := Default()
	sc := p.SignalsConfig()
	if sc.DWarn != 0.4 || sc.DCrit != 0.7 {
		t.Fatalf("d thresholds %v %v", sc.DWarn, sc.DCrit)
	}
	want := map[signals.Name][3]float64{ // warn, crit, weight (B.2, B.3)
		signals.CPUSteal: {10, 25, 0.25}, signals.LibvirtLatency: {200, 500, 0.2},
		signals.HeartbeatLag: {15, 30, 0.2}, signals.RunqueuePerCore: {2, 4, 0.15},
		signals.KubeletDelay: {500, 1000, 0.1}, signals.IOLatency: {100, 300, 0.1},
	}
	for n, w := range want {
		s := sc.Signals[n]
		if s.Warn != w[0] || s.Crit != w[1] || s.Weight != w[2] {
			t.Errorf("%s: %+v, want warn/crit/weight %v", n, s, w)
		}
	}
	if len(sc.Signals) != 9 {
		t.Errorf("default policy has %d signals, want all 9", len(sc.Signals))
	}
	if !sc.Signals[signals.HeartbeatLag].Trigger {
		t.Error("heartbeat lag must trigger critical on its own (B.5)")
	}
	if s := sc.Signals[signals.CPUSteal]; s.Window != time.Minute || s.Agg != signals.AggMin {
		t.Errorf("steal must be sustained for 1 min: %+v", s)
	}
	pc := p.PlaybookConfig()
	if pc.Mode != "approve" {
		t.Errorf("default mode %s, want approve", pc.Mode)
	}
	if !strings.HasPrefix(p.Version(), "v1@") {
		t.Errorf("version %q", p.Version())
	}
}

func TestBadFilesNameFileLineAndField(t *testing.T) {
	cases := []struct {
		file string
		want []string
	}{
		{"testdata/unknown-key.yaml", []string{"testdata/unknown-key.yaml:6", "field hysterisis not found"}},
		{"testdata/warn-over-crit.yaml", []string{"testdata/warn-over-crit.yaml:3", "thresholds", "d_warn < d_crit"}},
		{"testdata/missing-signal.yaml", []string{"testdata/missing-signal.yaml:60: signals: missing cpu_steal_pct:", "weight: 0"}},
		{"testdata/zero-window.yaml", []string{"testdata/zero-window.yaml:63: signals.runqueue_per_core.window", "at least 1s, have 0s"}},
	}
	for _, c := range cases {
		_, err := Load(c.file)
		if err == nil {
			t.Fatalf("%s accepted", c.file)
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", c.file, err, w)
			}
		}
	}
}

// mutate returns the default policy with one line replaced.
func mutate(t *testing.T, old, new string) []byte {
	t.Helper()
	s := string(policies.Default)
	if !strings.Contains(s, old) {
		t.Fatalf("default policy has no %q", old)
	}
	return []byte(strings.Replace(s, old, new, 1))
}

func TestValidationErrors(t *testing.T) {
	cases := []struct {
		old, new, field string
	}{
		{"mode: approve", "mode: yolo", "mode"},
		{"version: 1", "version: 2", "version"},
		{"hysteresis: 0.1", "hysteresis: 0.5", "thresholds.hysteresis"},
		{"max_concurrent: 2", "max_concurrent: 0", "storm_guard.max_concurrent"},
		{"saturation_fraction: 0.3", "saturation_fraction: 3", "storm_guard.saturation_fraction"},
		{"timeout: 15m", "timeout: soon", `"soon" is not a duration`},
		{"cpu_steal_pct:              {warn: 10,  crit: 25,", "cpu_steal_pct:              {warn: 30,  crit: 25,", "signals.cpu_steal_pct"},
		{"agg: p99}", "agg: p42}", "signals.io_latency_p99_ms.agg"},
		{"  mgmt_cpu_share_pct:", "  mgmt_cpu_shares_pct:", "signals.mgmt_cpu_shares_pct"},
		{"window: 5m, agg: p99}", "window: 0s, agg: p99}", "signals.io_latency_p99_ms.window: agg p99 needs a window of at least 1s"},
		{"window: 5m, agg: p99}", "agg: p99}", "signals.io_latency_p99_ms.window"},
		{"window: 5m, agg: p99}", "window: 500ms, agg: p99}", "signals.io_latency_p99_ms.window"},
		{"window: 5m, agg: p99}", "window: -5m, agg: p99}", "duration -5m is negative"},
		{"restore_hold: 5m", "restore_hold: -1s", "is negative"},
		{"  io_latency_p99_ms:", "  # io_latency_p99_ms:", "signals: missing io_latency_p99_ms"},
		{"on_timeout: needs_human", "on_timeout: fence", `approval.on_timeout: "fence": want needs_human, proceed or abort`},
		{"on_timeout: needs_human", "on_timeout: [proceed]", "!!seq"},
	}
	for _, c := range cases {
		_, err := Parse("p.yaml", mutate(t, c.old, c.new))
		var pe *Error
		if err == nil || !errors.As(err, &pe) {
			t.Errorf("%s: want a policy error, got %v", c.new, err)
			continue
		}
		if !strings.Contains(err.Error(), c.field) || !strings.Contains(err.Error(), "p.yaml:") {
			t.Errorf("%s: error %q should name p.yaml:LINE and %q", c.new, err, c.field)
		}
	}
}

// TestMissingSignalOrZeroWeight: a signal left out entirely is an error
// that names it; the same signal with weight 0 is fine (and still there).
func TestMissingSignalOrZeroWeight(t *testing.T) {
	_, err := Parse("p.yaml", mutate(t, "  cpu_steal_pct:", "  # cpu_steal_pct:"))
	if err == nil || !strings.Contains(err.Error(), "missing cpu_steal_pct") {
		t.Fatalf("a policy without cpu_steal_pct: %v", err)
	}
	p, err := Parse("p.yaml", mutate(t, "weight: 0.25, window: 1m, agg: min}", "weight: 0, window: 1m, agg: min}"))
	if err != nil {
		t.Fatalf("cpu_steal_pct with weight 0: %v", err)
	}
	if s, ok := p.SignalsConfig().Signals[signals.CPUSteal]; !ok || s.Weight != 0 {
		t.Fatalf("cpu_steal_pct: %+v %v", s, ok)
	}
	// heartbeat lag (agg last) needs no window
	if _, ok := Default().SignalsConfig().Signals[signals.HeartbeatLag]; !ok {
		t.Fatal("default lacks heartbeat_lag_s")
	}
}

// TestHugeValuesMakeShortErrors: a 50 MB scalar (or file) is refused with
// an error that quotes at most about 200 bytes of it.
func TestHugeValuesMakeShortErrors(t *testing.T) {
	huge := strings.Repeat("A", 50<<20)
	for name, data := range map[string][]byte{
		"50 MB mode":          mutate(t, "mode: approve", "mode: "+huge),
		"100 KB mode":         mutate(t, "mode: approve", "mode: "+huge[:100<<10]),
		"100 KB duration":     mutate(t, "restore_hold: 5m", "restore_hold: "+huge[:100<<10]),
		"100 KB agg":          mutate(t, "agg: p99}", "agg: "+huge[:100<<10]+"}"),
		"100 KB unknown key":  mutate(t, "mode: approve", "mode: approve\n"+huge[:100<<10]+": 1"),
		"100 KB signal name":  mutate(t, "  mgmt_cpu_share_pct:", "  ? "+huge[:100<<10]+"\n  :"),
		"100 KB in a comment": mutate(t, "version: 1", "version: 2 # "+huge[:100<<10]),
	} {
		_, err := Parse("p.yaml", data)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if n := len(err.Error()); n > 800 || strings.Count(err.Error(), "A") > 260 {
			t.Errorf("%s: an error of %d bytes: %.300s…", name, n, err)
		}
	}
	big := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(big, mutate(t, "mode: approve", "mode: "+huge), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(big); err == nil || len(err.Error()) > 300 || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("a 50 MB file: %.400v", err)
	}
}

// TestApprovalOnTimeout: approval.on_timeout reaches the playbook; a file
// without it (every policy written before it existed) behaves as before;
// a bad value names the file, its line and the field.
func TestApprovalOnTimeout(t *testing.T) {
	if got := Default().PlaybookConfig().ApprovalOnTimeout; got != playbook.OnTimeoutNeedsHuman {
		t.Fatalf("default on_timeout %q, want needs_human", got)
	}
	for _, v := range []playbook.OnTimeout{playbook.OnTimeoutNeedsHuman, playbook.OnTimeoutProceed, playbook.OnTimeoutAbort} {
		p, err := Parse("p.yaml", mutate(t, "on_timeout: needs_human", "on_timeout: "+string(v)))
		if err != nil {
			t.Fatalf("%s: %v", v, err)
		}
		if got := p.PlaybookConfig().ApprovalOnTimeout; got != v {
			t.Errorf("on_timeout: %s gives %q", v, got)
		}
	}
	p, err := Parse("p.yaml", mutate(t, "  on_timeout: needs_human\n", ""))
	if err != nil {
		t.Fatal(err)
	}
	if got := p.PlaybookConfig().ApprovalOnTimeout; got != playbook.OnTimeoutNeedsHuman {
		t.Fatalf("a policy without on_timeout gives %q, want needs_human", got)
	}
	line := 1 + strings.Count(strings.Split(string(policies.Default), "on_timeout: needs_human")[0], "\n")
	for _, bad := range []string{"Proceed", "fence", "yes", "needs-human"} {
		_, err := Parse("p.yaml", mutate(t, "on_timeout: needs_human", "on_timeout: "+bad))
		var pe *Error
		if err == nil || !errors.As(err, &pe) {
			t.Fatalf("on_timeout: %s: want a policy error, got %v", bad, err)
		}
		if want := fmt.Sprintf("p.yaml:%d: approval.on_timeout: ", line); !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), "want needs_human, proceed or abort") {
			t.Errorf("on_timeout: %s: error %q, want it to start %q", bad, err, want)
		}
	}
	ex, err := Load("../../policies/approve-proceed.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if pc := ex.PlaybookConfig(); pc.ApprovalOnTimeout != playbook.OnTimeoutProceed || pc.Mode != playbook.ModeApprove {
		t.Fatalf("policies/approve-proceed.yaml: mode %s, on_timeout %s", pc.Mode, pc.ApprovalOnTimeout)
	}
}

func TestWithMode(t *testing.T) {
	p, err := Default().WithMode("auto")
	if err != nil || p.PlaybookConfig().Mode != "auto" {
		t.Fatalf("%v", err)
	}
	if _, err := Default().WithMode("sometimes"); err == nil {
		t.Fatal("bad mode accepted")
	}
}

func TestShippedExamplesAreValid(t *testing.T) {
	entries, err := os.ReadDir("../../policies")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".yaml") {
			if _, err := Load("../../policies/" + e.Name()); err != nil {
				t.Errorf("%s: %v", e.Name(), err)
			}
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(policies.Default)
	f.Add([]byte("version: 1\nmode: auto\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse("fuzz.yaml", data)
		if err != nil {
			return
		}
		// whatever parses must be consistent
		if err := p.SignalsConfig().Validate(); err != nil {
			t.Fatalf("accepted an invalid signals config: %v", err)
		}
		if err := p.PlaybookConfig().Validate(); err != nil {
			t.Fatalf("accepted an invalid playbook config: %v", err)
		}
	})
}
