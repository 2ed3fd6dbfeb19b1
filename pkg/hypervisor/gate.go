package hypervisor

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/fencedhq/fenced/pkg/clock"
	"github.com/fencedhq/fenced/pkg/playbook"
)

// GateConfig holds the thresholds (the policy's warn levels).
type GateConfig struct {
	LatencyWarn    time.Duration // libvirt_latency_p95_ms warn; default 200 ms
	TimeoutWarnPct float64       // libvirt_timeout_pct warn; default 1 %
	MaxSilence     time.Duration // the management path must have answered within this; default 30 s
	MinSamples     int           // calls needed before the gate can open; default 3
}

func (c GateConfig) withDefaults() GateConfig {
	if c.LatencyWarn <= 0 {
		c.LatencyWarn = 200 * time.Millisecond
	}
	if c.TimeoutWarnPct <= 0 {
		c.TimeoutWarnPct = 1
	}
	if c.MaxSilence <= 0 {
		c.MaxSilence = 30 * time.Second
	}
	if c.MinSamples <= 0 {
		c.MinSamples = 3
	}
	return c
}

// Destination is a host that could receive the servers.
type Destination struct {
	Host      string
	State     string  // its playbook state; only "normal" qualifies
	D         float64 // its divergence: the lowest goes first
	FreeVCPUs int
	FreeRAMMB int
}

// Need is what the servers to move require.
type Need struct {
	VCPUs int
	RAMMB int
}

// Decide is the gate's pure decision.
func Decide(cfg GateConfig, st Stats, now time.Time, dests []Destination, need Need) playbook.GateAnswer {
	cfg = cfg.withDefaults()
	var why []string
	switch {
	case st.LastAnswer.IsZero():
		why = append(why, "libvirt has never answered")
	case now.Sub(st.LastAnswer) > cfg.MaxSilence:
		why = append(why, fmt.Sprintf("libvirt silent for %s (limit %s)", now.Sub(st.LastAnswer).Round(time.Second), cfg.MaxSilence))
	}
	if st.Samples < cfg.MinSamples {
		why = append(why, fmt.Sprintf("only %d libvirt calls measured (need %d)", st.Samples, cfg.MinSamples))
	}
	if st.P95 >= cfg.LatencyWarn {
		why = append(why, fmt.Sprintf("libvirt p95 %s over warn %s", st.P95.Round(time.Millisecond), cfg.LatencyWarn))
	}
	if st.TimeoutPct >= cfg.TimeoutWarnPct {
		why = append(why, fmt.Sprintf("libvirt timeouts %.1f%% over warn %.1f%%", st.TimeoutPct, cfg.TimeoutWarnPct))
	}
	var fit []Destination
	for _, d := range dests {
		if d.State == string(playbook.Normal) && d.FreeVCPUs >= need.VCPUs && d.FreeRAMMB >= need.RAMMB {
			fit = append(fit, d)
		}
	}
	if len(fit) == 0 {
		why = append(why, fmt.Sprintf("no normal destination with %d vCPUs and %d MB free", need.VCPUs, need.RAMMB))
	}
	if len(why) > 0 {
		return playbook.GateAnswer{Reasons: why}
	}
	sortDestinations(fit)
	return playbook.GateAnswer{Allowed: true, Destination: fit[0].Host,
		Reasons: []string{fmt.Sprintf("libvirt p95 %s, timeouts %.1f%%; %s has %d vCPUs free", st.P95.Round(time.Millisecond), st.TimeoutPct, fit[0].Host, fit[0].FreeVCPUs)}}
}

// sortDestinations orders candidates by execution truth: lowest d first,
// then most free vCPUs, then name.
func sortDestinations(ds []Destination) {
	sort.Slice(ds, func(i, j int) bool {
		switch {
		case ds[i].D != ds[j].D:
			return ds[i].D < ds[j].D
		case ds[i].FreeVCPUs != ds[j].FreeVCPUs:
			return ds[i].FreeVCPUs > ds[j].FreeVCPUs
		}
		return ds[i].Host < ds[j].Host
	})
}

// Place assigns evacuation destinations (playbook.Placer): each server to
// the first normal host, lowest d first, that still has headroom for its
// flavor once the servers placed before it are counted. The biggest
// servers are placed first. The source host's libvirt does not matter here:
// the host is powered off.
func (g *Gate) Place(ctx context.Context, host string, servers []playbook.Server) ([]playbook.Placement, map[string]string) {
	unplaced := map[string]string{}
	var dests []Destination
	var err error
	if g.Destinations == nil {
		err = fmt.Errorf("no destination source")
	} else {
		dests, _, err = g.Destinations(ctx, host)
	}
	if err != nil {
		for _, s := range servers {
			unplaced[s.Name+" ("+s.ID+")"] = "cannot list destinations: " + err.Error()
		}
		return nil, unplaced
	}
	var fit []Destination
	for _, d := range dests {
		if d.State == string(playbook.Normal) && d.Host != host {
			fit = append(fit, d)
		}
	}
	sortDestinations(fit)
	order := append([]playbook.Server(nil), servers...)
	sort.SliceStable(order, func(i, j int) bool { return order[i].VCPUs > order[j].VCPUs })
	var out []playbook.Placement
	for _, s := range order {
		placed := false
		for i := range fit {
			if fit[i].FreeVCPUs >= s.VCPUs && fit[i].FreeRAMMB >= s.RAMMB {
				fit[i].FreeVCPUs -= s.VCPUs
				fit[i].FreeRAMMB -= s.RAMMB
				out = append(out, playbook.Placement{Server: s, Dest: fit[i].Host})
				placed = true
				break
			}
		}
		if !placed {
			unplaced[s.Name+" ("+s.ID+")"] = fmt.Sprintf("no normal host with %d vCPUs and %d MB free", s.VCPUs, s.RAMMB)
		}
	}
	g.Log.Info().Str("host", host).Str("component", "placer").Int("placed", len(out)).Int("unplaced", len(unplaced)).Msg("evacuation placement")
	return out, unplaced
}

// AuditSink receives every gate answer.
type AuditSink interface {
	GateAnswered(ctx context.Context, host string, a playbook.GateAnswer)
}

// Gate implements playbook.Gate over the probes.
type Gate struct {
	Config GateConfig
	Probes map[string]*Probe
	// Destinations lists candidate hosts and what the host's servers need
	// (from Nova capacity and the fleet's verdicts).
	Destinations func(ctx context.Context, host string) ([]Destination, Need, error)
	Audit        AuditSink
	Clock        clock.Clock
	Log          zerolog.Logger
}

// Check answers whether live migration may run off host.
func (g *Gate) Check(ctx context.Context, host string) playbook.GateAnswer {
	c := g.Clock
	if c == nil {
		c = clock.Real{}
	}
	now := c.Now()
	var a playbook.GateAnswer
	p, ok := g.Probes[host]
	switch {
	case !ok:
		a = playbook.GateAnswer{Reasons: []string{"no libvirt probe for " + host}}
	case g.Destinations == nil:
		a = playbook.GateAnswer{Reasons: []string{"no destination source"}}
	default:
		dests, need, err := g.Destinations(ctx, host)
		if err != nil {
			a = playbook.GateAnswer{Reasons: []string{"cannot list destinations: " + err.Error()}}
		} else {
			a = Decide(g.Config, p.Stats(now), now, dests, need)
		}
	}
	g.Log.Info().Str("host", host).Str("component", "migration-gate").Bool("allowed", a.Allowed).
		Str("destination", a.Destination).Str("reason", strings.Join(a.Reasons, "; ")).Msg("live-migration gate")
	if g.Audit != nil {
		g.Audit.GateAnswered(ctx, host, a)
	}
	return a
}
