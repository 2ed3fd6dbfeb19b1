package daemon

import (
	"strings"
	"testing"

	"github.com/fencedhq/fenced/pkg/fleet"
	"github.com/fencedhq/fenced/pkg/playbook"
	"github.com/fencedhq/fenced/pkg/policy"
	"github.com/fencedhq/fenced/policies"
)

// TestCheckReloadChain: a reload that changes the steps of the recovery
// chain in force for a rebooting host's group is refused, naming the host
// and both chains; a change of timeouts only, a change for another group,
// or a host not rebooting lets it through.
func TestCheckReloadChain(t *testing.T) {
	parse := func(from, to, groups string) *policy.Policy {
		t.Helper()
		text := string(policies.Default)
		if !strings.Contains(text, from) {
			t.Fatalf("default policy has no %q", from)
		}
		p, err := policy.Parse("p.yaml", []byte(strings.Replace(text, from, to, 1)+groups))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	const af = "after_fence: evacuate\n"
	old := parse(af, "recovery:\n  - {step: live_migrate}\n  - {step: evacuate, timeout: 10m}\n", "")
	rebooting := []fleet.View{{Host: playbook.Host{Name: "cmp-017", State: playbook.Rebooting}, Group: playbook.DefaultGroup}}

	next := parse(af, "recovery:\n  - {step: live_migrate}\n  - {step: power_cycle}\n  - {step: evacuate}\n", "")
	err := checkReload(old, next, rebooting)
	if err == nil || !strings.Contains(err.Error(), "cmp-017 is rebooting") || !strings.Contains(err.Error(), "the recovery chain changes from live_migrate when gate_open → evacuate when always to live_migrate when gate_open → power_cycle when always → evacuate when always") {
		t.Fatalf("chain change while rebooting: %v", err)
	}
	if err := checkReload(old, next, []fleet.View{{Host: playbook.Host{Name: "cmp-017", State: playbook.Fenced}, Group: playbook.DefaultGroup}}); err != nil {
		t.Fatalf("no host rebooting: %v", err)
	}
	if err := checkReload(old, parse(af, "recovery:\n  - {step: live_migrate}\n  - {step: evacuate, timeout: 30m}\n", ""), rebooting); err != nil {
		t.Fatalf("a timeout change: %v", err)
	}
	// the same chain spelled out as after_fence implies it is no change
	if err := checkReload(old, parse(af, af, ""), rebooting); err != nil {
		t.Fatalf("after_fence evacuate for the chain it implies: %v", err)
	}
	// another group's chain changes; the rebooting host's does not
	other := parse(af, "recovery:\n  - {step: live_migrate}\n  - {step: evacuate, timeout: 10m}\n", "groups:\n  gpu:\n    recovery:\n      - {step: power_cycle}\n")
	if err := checkReload(old, other, rebooting); err != nil {
		t.Fatalf("another group's chain: %v", err)
	}
	if err := checkReload(old, other, []fleet.View{{Host: playbook.Host{Name: "gpu-001", State: playbook.Rebooting}, Group: "gpu"}}); err == nil || !strings.Contains(err.Error(), "gpu-001") {
		t.Fatalf("the rebooting host's group's chain: %v", err)
	}
}
