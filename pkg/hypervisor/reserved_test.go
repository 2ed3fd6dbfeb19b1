package hypervisor

import (
	"context"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/fencedhq/fenced/pkg/playbook"
)

// TestPlaceReservedHosts is the placement table of reserved hosts
// (docs/groups.md, Reserved hosts): group gpu is g1, g2 (normal) and the
// spares s1, s2; group web is w1 with no spare; o1 is in no group. A spare
// is used first for what its group has no room for, and never otherwise.
func TestPlaceReservedHosts(t *testing.T) {
	group := map[string]string{"g0": "gpu", "g1": "gpu", "g2": "gpu", "s1": "gpu", "s2": "gpu", "w0": "web", "w1": "web", "o0": "default", "o1": "default"}
	srv := func(n, vcpus int) []playbook.Server {
		var out []playbook.Server
		for i := 0; i < n; i++ {
			id := string(rune('a' + i))
			out = append(out, playbook.Server{ID: id, Name: id, VCPUs: vcpus, RAMMB: 1000})
		}
		return out
	}
	for _, c := range []struct {
		name     string
		src      string
		free     map[string]int // vCPUs free (every host has RAM)
		inSvc    []string       // spares already taken into service
		servers  []playbook.Server
		want     string // server=dest[*] sorted, * for a reserved placement
		unplaced int
	}{
		{name: "the group has room: no spare", src: "g0", free: map[string]int{"g1": 8, "g2": 8, "s1": 64, "s2": 64, "o1": 64},
			servers: srv(2, 4), want: "a=g2 b=g2"},
		{name: "the group's room first, the spare for the rest", src: "g0", free: map[string]int{"g1": 4, "g2": 0, "s1": 64, "s2": 64, "o1": 64},
			servers: srv(3, 4), want: "a=g1 b=s1* c=s1*"},
		{name: "no room in the group: the first spare in file order, before the rest of the fleet", src: "g0", free: map[string]int{"g1": 0, "g2": 0, "s1": 64, "s2": 64, "o1": 64},
			servers: srv(2, 4), want: "a=s1* b=s1*"},
		{name: "one spare full: the next spare", src: "g0", free: map[string]int{"g1": 0, "g2": 0, "s1": 4, "s2": 64, "o1": 0},
			servers: srv(2, 4), want: "a=s1* b=s2*"},
		{name: "spares full: the rest of the fleet", src: "g0", free: map[string]int{"g1": 0, "g2": 0, "s1": 4, "s2": 0, "o1": 64},
			servers: srv(2, 4), want: "a=s1* b=o1"},
		{name: "a host of another group never gets a spare", src: "w0", free: map[string]int{"w1": 0, "g1": 0, "g2": 0, "s1": 64, "s2": 64, "o1": 0},
			servers: srv(2, 4), want: "", unplaced: 2},
		{name: "a host in no group never gets a spare", src: "o0", free: map[string]int{"w1": 0, "g1": 0, "g2": 0, "s1": 64, "s2": 64, "o1": 0},
			servers: srv(1, 4), want: "", unplaced: 1},
		{name: "another group's host goes to the fleet, never a spare with more room", src: "w0", free: map[string]int{"w1": 0, "g1": 4, "g2": 0, "s1": 64, "s2": 64, "o1": 0},
			servers: srv(1, 4), want: "a=g1"},
		{name: "a spare in service is an ordinary host of its group", src: "g0", inSvc: []string{"s1"}, free: map[string]int{"g1": 0, "g2": 0, "s1": 4, "s2": 64, "o1": 64},
			servers: srv(2, 4), want: "a=s1 b=s2*"},
		{name: "a spare in service takes another group's servers like any host", src: "w0", inSvc: []string{"s1"}, free: map[string]int{"w1": 0, "g1": 0, "g2": 0, "s1": 64, "s2": 64, "o1": 0},
			servers: srv(1, 4), want: "a=s1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := playbook.NewReserve([]playbook.ReservedGroup{{Group: "gpu", Hosts: []string{"s1", "s2"}}})
			recs := map[string]playbook.ReservedHost{}
			for _, h := range c.inSvc {
				recs[h] = playbook.ReservedHost{InService: true, Enabled: true, For: "x"}
			}
			r.Load(recs)
			f := &fakeNova{free: map[string][2]int{}}
			// d orders the fleet: the rest of the fleet (o1) is calmer than the group
			for h, d := range map[string]float64{"g1": 0.2, "g2": 0.1, "s1": 0.3, "s2": 0.05, "w1": 0.1, "o1": 0.01, c.src: 0} {
				f.cands = append(f.cands, Destination{Host: h, State: "normal", D: d})
			}
			for h, v := range c.free {
				f.free[h] = [2]int{v, 64000}
			}
			g := f.gate()
			g.Reserve, g.Group = r, func(h string) string { return group[h] }
			placed, unplaced := g.Place(context.Background(), c.src, c.servers)
			var got []string
			for _, p := range placed {
				s := p.Server.ID + "=" + p.Dest
				if p.Reserved {
					s += "*"
				}
				got = append(got, s)
			}
			sort.Strings(got)
			if strings.Join(got, " ") != c.want || len(unplaced) != c.unplaced {
				t.Fatalf("placed %v, unplaced %v; want %q and %d unplaced (headroom read for %v)", got, unplaced, c.want, c.unplaced, f.reads)
			}
			// a spare's headroom is read only when the group's own hosts are full
			if c.want != "" && !strings.Contains(c.want, "*") {
				for _, h := range f.reads {
					if r.Spare(h) {
						t.Fatalf("headroom of spare %s read though it was not needed (%v)", h, f.reads)
					}
				}
			}
		})
	}
}

// TestGateNeverMigratesToASpare: the live-migration gate's destination is
// never a spare, even the only host with room in the source's group.
func TestGateNeverMigratesToASpare(t *testing.T) {
	f := &fakeNova{cands: []Destination{{Host: "s1", State: "normal"}}, free: map[string][2]int{"s1": {64, 256000}}}
	g := f.gate()
	g.Reserve = playbook.NewReserve([]playbook.ReservedGroup{{Group: "gpu", Hosts: []string{"s1"}}})
	g.Group = func(string) string { return "gpu" }
	healthy := Stats{P95: 5 * time.Millisecond, Samples: 10, LastAnswer: now.Add(-time.Second)}
	a := g.decide(context.Background(), "src", healthy, now)
	if a.Allowed || len(f.reads) != 0 || !strings.Contains(strings.Join(a.Reasons, ";"), "no normal destination") {
		t.Fatalf("%+v (headroom read for %v)", a, f.reads)
	}
}
