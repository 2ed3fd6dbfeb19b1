package hypervisor

import (
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 1, 15, 1, 20, 0, 0, time.UTC)

func TestDecide(t *testing.T) {
	healthy := Stats{P95: 5 * time.Millisecond, Samples: 10, LastAnswer: now.Add(-time.Second)}
	dests := []Destination{{Host: "b", State: "normal", FreeVCPUs: 16, FreeRAMMB: 65536}, {Host: "c", State: "warn", FreeVCPUs: 64, FreeRAMMB: 1 << 20}}
	need := Need{VCPUs: 8, RAMMB: 16384}
	for _, c := range []struct {
		name  string
		st    Stats
		dests []Destination
		need  Need
		open  bool
		why   string
	}{
		{"healthy with a normal destination", healthy, dests, need, true, "b has 16 vCPUs free"},
		{"slow libvirt", Stats{P95: 300 * time.Millisecond, Samples: 10, LastAnswer: now}, dests, need, false, "p95 300ms over warn"},
		{"timeouts", Stats{P95: time.Millisecond, TimeoutPct: 2, Samples: 10, LastAnswer: now}, dests, need, false, "timeouts 2.0%"},
		{"silent management path", Stats{P95: time.Millisecond, Samples: 10, LastAnswer: now.Add(-time.Minute)}, dests, need, false, "silent for 1m0s"},
		{"never answered", Stats{}, dests, need, false, "never answered"},
		{"no destination in normal", healthy, dests[1:], need, false, "no normal destination"},
		{"no headroom", healthy, dests, Need{VCPUs: 32}, false, "no normal destination with 32 vCPUs"},
	} {
		a := Decide(GateConfig{}, c.st, now, c.dests, c.need)
		if a.Allowed != c.open || !strings.Contains(strings.Join(a.Reasons, "; "), c.why) {
			t.Errorf("%s: %+v, want allowed=%v and %q", c.name, a, c.open, c.why)
		}
		if a.Allowed && a.Destination != "b" {
			t.Errorf("%s: destination %s", c.name, a.Destination)
		}
	}
}
