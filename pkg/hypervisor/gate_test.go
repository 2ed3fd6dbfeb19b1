package hypervisor

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/fencedhq/fenced/pkg/clock"
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

// fakeNova serves candidates and headroom and counts the headroom reads.
type fakeNova struct {
	cands []Destination
	free  map[string][2]int
	reads []string
}

func (f *fakeNova) gate() *Gate {
	return &Gate{
		Candidates: func(context.Context, string) ([]Destination, error) { return f.cands, nil },
		Headroom: func(_ context.Context, h string) (int, int, error) {
			f.reads = append(f.reads, h)
			return f.free[h][0], f.free[h][1], nil
		},
		Need: func(context.Context, string) (Need, error) { return Need{VCPUs: 8, RAMMB: 16000}, nil },
	}
}

func TestPlaceByExecutionTruthAndHeadroom(t *testing.T) {
	f := &fakeNova{
		cands: []Destination{
			{Host: "busy", State: "normal", D: 0.30},
			{Host: "calm", State: "normal", D: 0.05},
			{Host: "warned", State: "warn", D: 0.01},
			{Host: "src", State: "normal", D: 0},
			{Host: "spare", State: "normal", D: 0.50},
		},
		free: map[string][2]int{"busy": {64, 256000}, "calm": {6, 12000}, "warned": {64, 256000}, "src": {64, 256000}, "spare": {64, 256000}},
	}
	servers := []playbook.Server{
		{ID: "a", Name: "a", VCPUs: 4, RAMMB: 8000},
		{ID: "b", Name: "b", VCPUs: 4, RAMMB: 8000},
	}
	placed, unplaced := f.gate().Place(context.Background(), "src", servers)
	got := map[string]string{}
	for _, p := range placed {
		got[p.Server.ID] = p.Dest
	}
	// the calm host (lowest d) takes the first server it has room for; the
	// second no longer fits there; never a warn host, never the source
	if got["a"] != "calm" || got["b"] != "busy" || len(got) != 2 || len(unplaced) != 0 {
		t.Fatalf("placed %v, unplaced %v", got, unplaced)
	}
	// headroom is read lowest d first and only until the servers fit
	if strings.Join(f.reads, ",") != "calm,busy" {
		t.Fatalf("headroom read for %v, want calm,busy", f.reads)
	}
	f.reads = nil
	_, unplaced = f.gate().Place(context.Background(), "src", []playbook.Server{{ID: "huge", Name: "huge", VCPUs: 128, RAMMB: 8000}})
	if why := unplaced["huge (huge)"]; !strings.Contains(why, "128 vCPUs") || len(f.reads) != 3 {
		t.Fatalf("unplaced %v after reading %v", unplaced, f.reads)
	}
}

func TestGateClosedByLibvirtAsksNovaNothing(t *testing.T) {
	f := &fakeNova{cands: []Destination{{Host: "calm", State: "normal"}}, free: map[string][2]int{"calm": {64, 256000}}}
	g := f.gate()
	asked := false
	g.Candidates = func(context.Context, string) ([]Destination, error) { asked = true; return f.cands, nil }
	g.Probes = map[string]*Probe{"src": {}} // never answered
	g.Clock = clock.NewFake(now)
	a := g.Check(context.Background(), "src")
	if a.Allowed || asked || len(f.reads) != 0 || !strings.Contains(strings.Join(a.Reasons, ";"), "never answered") {
		t.Fatalf("%+v (candidates asked %v, headroom read %v)", a, asked, f.reads)
	}
}
