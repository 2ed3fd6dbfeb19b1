package hypervisor

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/fencedhq/fenced/pkg/playbook"
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

func TestPlaceByExecutionTruthAndHeadroom(t *testing.T) {
	dests := []Destination{
		{Host: "busy", State: "normal", D: 0.30, FreeVCPUs: 64, FreeRAMMB: 256000},
		{Host: "calm", State: "normal", D: 0.05, FreeVCPUs: 6, FreeRAMMB: 12000},
		{Host: "warned", State: "warn", D: 0.01, FreeVCPUs: 64, FreeRAMMB: 256000},
		{Host: "src", State: "normal", D: 0, FreeVCPUs: 64, FreeRAMMB: 256000},
	}
	g := &Gate{Destinations: func(context.Context, string) ([]Destination, Need, error) { return dests, Need{}, nil }}
	servers := []playbook.Server{
		{ID: "a", Name: "a", VCPUs: 4, RAMMB: 8000},
		{ID: "b", Name: "b", VCPUs: 4, RAMMB: 8000},
		{ID: "huge", Name: "huge", VCPUs: 128, RAMMB: 8000},
	}
	placed, unplaced := g.Place(context.Background(), "src", servers)
	got := map[string]string{}
	for _, p := range placed {
		got[p.Server.ID] = p.Dest
	}
	// the calm host (lowest d) takes the first server it has room for; the
	// second no longer fits there; never a warn host, never the source
	if got["a"] != "calm" || got["b"] != "busy" || len(got) != 2 {
		t.Fatalf("placed %v", got)
	}
	if why := unplaced["huge (huge)"]; !strings.Contains(why, "128 vCPUs") {
		t.Fatalf("unplaced %v", unplaced)
	}
}
