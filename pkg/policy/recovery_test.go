package policy

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fencedhq/fenced/pkg/playbook"
)

// withRecovery is the default policy with after_fence replaced by block
// (a recovery: section, or nothing).
func withRecovery(t *testing.T, block string) []byte {
	t.Helper()
	return mutate(t, "after_fence: evacuate\n", block)
}

// lineOf is the 1-based line of the first occurrence of s in data.
func lineOf(data []byte, s string) int {
	return 1 + strings.Count(strings.Split(string(data), s)[0], "\n")
}

// TestRecoveryChain: without recovery the chain is the one after_fence
// implies (every policy written before chains behaves as before); an
// explicit chain reaches the playbook with its defaults filled in; the
// instance filter defaults to off.
func TestRecoveryChain(t *testing.T) {
	pc := Default().PlaybookConfig()
	if pc.Recovery != nil || pc.SkipError {
		t.Fatalf("default policy: recovery %v, skip_error %v; want neither", pc.Recovery, pc.SkipError)
	}
	want := []playbook.RecoveryStep{
		{Action: playbook.RecoverLiveMigrate, Timeout: 20 * time.Minute, When: playbook.WhenGateOpen},
		{Action: playbook.RecoverEvacuate, Timeout: 15 * time.Minute, When: playbook.WhenAlways},
	}
	if got := pc.Chain(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("default chain %v, want %v", got, want)
	}
	p, err := Parse("p.yaml", mutate(t, "after_fence: evacuate", "after_fence: reboot_in_place"))
	if err != nil {
		t.Fatal(err)
	}
	if got := p.PlaybookConfig().Chain(); len(got) != 2 || got[1].Action != playbook.RecoverPowerCycle {
		t.Fatalf("reboot_in_place chain %v, want live_migrate → power_cycle", got)
	}
	p, err = Parse("p.yaml", bytes.Replace(withRecovery(t, `recovery:
  - {step: live_migrate, timeout: 10m}
  - {step: power_cycle, timeout: 8m, when: gate_closed}
  - {step: evacuate}
`), []byte("skip_error: false"), []byte("skip_error: true"), 1))
	if err != nil {
		t.Fatal(err)
	}
	pc = p.PlaybookConfig()
	want = []playbook.RecoveryStep{
		{Action: playbook.RecoverLiveMigrate, Timeout: 10 * time.Minute, When: playbook.WhenGateOpen},
		{Action: playbook.RecoverPowerCycle, Timeout: 8 * time.Minute, When: playbook.WhenGateClosed},
		{Action: playbook.RecoverEvacuate, Timeout: 15 * time.Minute, When: playbook.WhenAlways},
	}
	if got := pc.Chain(); fmt.Sprint(got) != fmt.Sprint(want) || !pc.SkipError {
		t.Fatalf("chain %v (skip_error %v), want %v", got, pc.SkipError, want)
	}
	if d := playbook.DescribeChain(pc.Chain()); d != "live_migrate (when gate_open, timeout 10m0s) → power_cycle (when gate_closed, timeout 8m0s) → evacuate (timeout 15m0s) → needs_human" {
		t.Fatalf("described %q", d)
	}
	p, err = Parse("p.yaml", withRecovery(t, "recovery:\n  - step: power_cycle\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := p.PlaybookConfig().Chain(); len(got) != 1 || got[0].Action != playbook.RecoverPowerCycle {
		t.Fatalf("power_cycle only: %v", got)
	}
}

// TestRecoveryErrors: a bad chain is refused with the file, the line and
// the field.
func TestRecoveryErrors(t *testing.T) {
	for _, c := range []struct {
		block, field, want string // the offending line is marked # here
	}{
		{"recovery:\n  - {step: reboot}  # here\n", "recovery[0].step", `unknown step "reboot"`},
		{"recovery:\n  - {step: power_cycle}\n  - {step: power_cycle}  # here\n", "recovery[1].step", "already recovery[0]: each step at most once"},
		{"recovery:\n  - {step: power_cycle}\n  - {step: live_migrate}  # here\n", "recovery[1].step", "must be the first step"},
		{"recovery:\n  - {step: power_cycle, when: sometimes}  # here\n", "recovery[0].when", `unknown condition "sometimes"`},
		{"recovery:\n  - {step: live_migrate, when: always}  # here\n", "recovery[0].when", "only while the live-migration gate is open"},
		{"recovery:\n  - {step: evacuate, timeout: 0s}  # here\n", "recovery[0].timeout", "must be positive"},
		{"recovery:\n  - {step: evacuate, timeout: -5m}  # here\n", "", "negative"},
		{"recovery:\n  - {step: evacuate, timeout: later}  # here\n", "", "not a duration"},
		{"recovery: []  # here\n", "recovery", "an empty chain"},
		{"recovery:\n  - {step: evacuate, after: 1m}  # here\n", "", "field after not found"},
	} {
		data := withRecovery(t, c.block)
		_, err := Parse("p.yaml", data)
		var pe *Error
		if err == nil || !errors.As(err, &pe) {
			t.Errorf("%q: want a policy error, got %v", c.block, err)
			continue
		}
		prefix := fmt.Sprintf("p.yaml:%d: ", lineOf(data, "# here"))
		if c.field != "" {
			prefix += c.field + ": "
		}
		if !strings.HasPrefix(err.Error(), prefix) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %q, want it to start %q and say %q", c.block, err, prefix, c.want)
		}
	}
	// recovery and after_fence together: the error names the field and both lines
	data := mutate(t, "after_fence: evacuate\n", "after_fence: evacuate\nrecovery:\n  - {step: power_cycle}\n")
	_, err := Parse("p.yaml", data)
	if err == nil || !strings.HasPrefix(err.Error(), fmt.Sprintf("p.yaml:%d: recovery: ", lineOf(data, "recovery:"))) ||
		!strings.Contains(err.Error(), fmt.Sprintf("after_fence (line %d) together", lineOf(data, "after_fence:"))) {
		t.Fatalf("recovery with after_fence: %v", err)
	}
	data = mutate(t, "skip_error: false", "skip_errors: true")
	if _, err := Parse("p.yaml", data); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("p.yaml:%d", lineOf(data, "skip_errors:"))) {
		t.Fatalf("instances.skip_errors: %v", err)
	}
}

// TestGroupRecovery: a group may change the chain (power_cycle only, for
// hosts without shared storage) although the file says after_fence; a
// group's after_fence replaces the file's recovery; a bad chain in a group
// names the group's field.
func TestGroupRecovery(t *testing.T) {
	data := append(mutate(t, "after_fence: evacuate\n", "after_fence: evacuate\n"), []byte(`groups:
  local-disk:
    recovery:
      - {step: power_cycle, timeout: 10m}
    instances: {skip_error: true}
  plain: {}
`)...)
	p, err := Parse("p.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Group("local-disk").PlaybookConfig(); len(got.Chain()) != 1 || got.Chain()[0].Action != playbook.RecoverPowerCycle || !got.SkipError {
		t.Fatalf("local-disk: chain %v, skip_error %v", got.Chain(), got.SkipError)
	}
	if got := p.Group("plain").PlaybookConfig().Chain(); len(got) != 2 || got[1].Action != playbook.RecoverEvacuate {
		t.Fatalf("plain: chain %v", got)
	}
	if got := p.PlaybookConfig(); got.Recovery != nil || got.SkipError {
		t.Fatalf("the file's own: %+v", got.Recovery)
	}
	// the file spells the chain out, a group picks reboot_in_place
	data = append(withRecovery(t, "recovery:\n  - {step: evacuate}\n"), []byte("groups:\n  rack1: {after_fence: reboot_in_place}\n")...)
	if p, err = Parse("p.yaml", data); err != nil {
		t.Fatal(err)
	}
	if got := p.Group("rack1").PlaybookConfig().Chain(); len(got) != 2 || got[1].Action != playbook.RecoverPowerCycle {
		t.Fatalf("rack1: chain %v", got)
	}
	data = append(mutate(t, "after_fence: evacuate\n", ""), []byte("groups:\n  gpu:\n    recovery:\n      - {step: evacuate}\n      - {step: live_migrate}  # here\n")...)
	_, err = Parse("p.yaml", data)
	if want := fmt.Sprintf("p.yaml:%d: groups.gpu.recovery[1].step: ", lineOf(data, "# here")); err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("a bad chain in a group: %v, want %q…", err, want)
	}
}
