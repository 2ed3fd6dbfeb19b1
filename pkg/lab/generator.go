package lab

import (
	"fmt"
	"time"

	"github.com/fencedhq/fenced/pkg/signals"
	"github.com/fencedhq/fenced/pkg/trace"
)

// Generator makes live signals for a lab fleet: noisy healthy hosts, and one
// host that starves like the paper's incident from Start+StarveAfter on (its
// load ramps up over Ramp, its heartbeats stop halfway through, libvirt stops
// answering).
type Generator struct {
	Hosts       []string
	Victim      string
	Start       time.Time
	StarveAfter time.Duration
	Ramp        time.Duration
	World       *World

	models map[string]*trace.HostModel
	starve map[string]*starving
}

type starving struct {
	onset          time.Time // zero: Start+StarveAfter
	faulted, cured bool
}

// Starve makes more hosts starve like the victim (a scale run's incident).
func (g *Generator) Starve(hosts ...string) {
	for _, h := range hosts {
		g.starve[h] = &starving{}
	}
}

// StarveAt makes host starve like the victim from at on (a test's new
// incident on a running lab). An unknown host is ignored.
func (g *Generator) StarveAt(host string, at time.Time) {
	if _, ok := g.models[host]; ok {
		g.starve[host] = &starving{onset: at}
	}
}

// NewGenerator returns a generator for n hosts named lab-001…; the victim is
// the 7th host (or the last, for small fleets).
func NewGenerator(n int, start time.Time, starveAfter time.Duration, w *World) *Generator {
	g := &Generator{Start: start, StarveAfter: starveAfter, Ramp: 3 * time.Minute, World: w, models: map[string]*trace.HostModel{}, starve: map[string]*starving{}}
	for i := 1; i <= n; i++ {
		h := fmt.Sprintf("lab-%03d", i)
		g.Hosts = append(g.Hosts, h)
		g.models[h] = trace.NewHostModel(h, uint64(i))
		w.SetServers(h, 8)
		w.SetService(h, true)
	}
	g.Victim = g.Hosts[min(6, n-1)]
	w.SetServers(g.Victim, 14)
	g.Starve(g.Victim)
	return g
}

// Samples returns every host's nine samples at now.
func (g *Generator) Samples(now time.Time) []signals.Sample {
	onset := g.Start.Add(g.StarveAfter)
	out := make([]signals.Sample, 0, 9*len(g.Hosts))
	for _, h := range g.Hosts {
		L := 0.0
		if st := g.starve[h]; st != nil {
			onset := onset
			if !st.onset.IsZero() {
				onset = st.onset
			}
			L = trace.Ramp(now, onset, onset.Add(g.Ramp))
			if stall := onset.Add(g.Ramp * 2 / 3); !now.Before(stall) && !st.faulted {
				g.models[h].Stall(stall)
				g.World.Fault(h, trace.FaultLibvirtUnresponsive)
				st.faulted = true
			}
			if st.faulted && !st.cured && !g.World.RebootedAt(h).IsZero() {
				// the power cycle restarted libvirt
				g.World.Fault(h, trace.FaultCleared)
				st.cured = true
			}
		}
		out = append(out, g.models[h].Samples(now, L)...)
	}
	return out
}
