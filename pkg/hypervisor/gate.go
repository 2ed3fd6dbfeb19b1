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
	// Reserved: a spare of the source's group (docs/groups.md, Reserved
	// hosts), taken into service if a server goes there.
	Reserved bool
}

// Need is what the servers to move require.
type Need struct {
	VCPUs int
	RAMMB int
}

// Decide is the gate's pure decision.
func Decide(cfg GateConfig, st Stats, now time.Time, dests []Destination, need Need) playbook.GateAnswer {
	cfg = cfg.withDefaults()
	why := libvirtReasons(cfg, st, now)
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

// libvirtReasons says why the management path is unfit for live
// migration (none: fit).
func libvirtReasons(cfg GateConfig, st Stats, now time.Time) []string {
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
	return why
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

// pool hands out destinations lowest d first and reads each one's headroom
// (a placement call) only when a server needs a host it has not read yet.
type pool struct {
	ctx  context.Context
	g    *Gate
	todo []Destination // candidates not read yet, lowest d first
	have []Destination // read, with the headroom still free
}

// pool lists the candidates for servers off host: state normal, not host,
// never a spare (a reserved host not in service). With spares true (an
// evacuation) and spares of host's group among the candidates, the order is
// the group's own hosts, then its spares in file order, then the rest.
func (g *Gate) pool(ctx context.Context, host string, spares bool) (*pool, error) {
	if g.Candidates == nil || g.Headroom == nil {
		return nil, fmt.Errorf("no destination source")
	}
	cands, err := g.Candidates(ctx, host)
	if err != nil {
		return nil, err
	}
	p := &pool{ctx: ctx, g: g}
	fit := map[string]Destination{}
	for _, d := range cands {
		if d.State != string(playbook.Normal) || d.Host == host {
			continue
		}
		if g.Reserve.Spare(d.Host) {
			fit[d.Host] = d
			continue
		}
		p.todo = append(p.todo, d)
	}
	sortDestinations(p.todo)
	if !spares || len(fit) == 0 {
		return p, nil
	}
	grp := g.group(host)
	var mine []Destination
	for _, h := range g.Reserve.Spares(grp) {
		if d, ok := fit[h]; ok {
			d.Reserved = true
			mine = append(mine, d)
		}
	}
	if len(mine) == 0 {
		return p, nil
	}
	var own, rest []Destination
	for _, d := range p.todo {
		if g.group(d.Host) == grp {
			own = append(own, d)
		} else {
			rest = append(rest, d)
		}
	}
	p.todo = append(append(own, mine...), rest...)
	return p, nil
}

// group is host's group (one group for all without Group).
func (g *Gate) group(host string) string {
	if g.Group == nil {
		return playbook.DefaultGroup
	}
	return g.Group(host)
}

// fit returns the index in p.have of the first destination with room for
// vcpus and ramMB, reading more candidates as needed; -1 if none has room.
func (p *pool) fit(vcpus, ramMB int) int {
	for i, d := range p.have {
		if d.FreeVCPUs >= vcpus && d.FreeRAMMB >= ramMB {
			return i
		}
	}
	for len(p.todo) > 0 {
		d := p.todo[0]
		p.todo = p.todo[1:]
		v, r, err := p.g.Headroom(p.ctx, d.Host)
		if err != nil {
			p.g.Log.Warn().Str("host_id", d.Host).Err(err).Msg("no headroom for a candidate destination; skipped")
			continue
		}
		d.FreeVCPUs, d.FreeRAMMB = v, r
		p.have = append(p.have, d)
		if v >= vcpus && r >= ramMB {
			return len(p.have) - 1
		}
	}
	return -1
}

// Place assigns evacuation destinations (playbook.Placer): each server to
// the first normal host, lowest d first, that still has headroom for its
// flavor once the servers placed before it are counted. The biggest
// servers are placed first. The source host's libvirt does not matter here:
// the host is powered off.
//
// A spare of the host's group (Reserve) comes after the group's own normal
// hosts and before the rest of the fleet: it is used only for the servers
// the group has no room for, and its placements say Reserved. Spares of
// other groups are never destinations.
func (g *Gate) Place(ctx context.Context, host string, servers []playbook.Server) ([]playbook.Placement, map[string]string) {
	unplaced := map[string]string{}
	p, err := g.pool(ctx, host, true)
	if err != nil {
		for _, s := range servers {
			unplaced[s.Name+" ("+s.ID+")"] = "cannot list destinations: " + err.Error()
		}
		return nil, unplaced
	}
	order := append([]playbook.Server(nil), servers...)
	sort.SliceStable(order, func(i, j int) bool { return order[i].VCPUs > order[j].VCPUs })
	var out []playbook.Placement
	for _, s := range order {
		i := p.fit(s.VCPUs, s.RAMMB)
		if i < 0 {
			unplaced[s.Name+" ("+s.ID+")"] = fmt.Sprintf("no normal host with %d vCPUs and %d MB free", s.VCPUs, s.RAMMB)
			continue
		}
		p.have[i].FreeVCPUs -= s.VCPUs
		p.have[i].FreeRAMMB -= s.RAMMB
		out = append(out, playbook.Placement{Server: s, Dest: p.have[i].Host, Reserved: p.have[i].Reserved})
	}
	ev := g.Log.Info().Str("host_id", host).Str("component", "placer").Int("placed", len(out)).Int("unplaced", len(unplaced))
	if taken := reservedDests(out); len(taken) > 0 {
		ev = ev.Strs("reserved_hosts", taken)
	}
	ev.Msg("evacuation placement")
	return out, unplaced
}

// decide reads the need and the candidates' headroom until one fits.
func (g *Gate) decide(ctx context.Context, host string, st Stats, now time.Time) playbook.GateAnswer {
	if g.Need == nil {
		return playbook.GateAnswer{Reasons: []string{"no destination source"}}
	}
	need, err := g.Need(ctx, host)
	if err != nil {
		return playbook.GateAnswer{Reasons: []string{"cannot list the servers: " + err.Error()}}
	}
	p, err := g.pool(ctx, host, false) // a live migration never goes to a spare
	if err != nil {
		return playbook.GateAnswer{Reasons: []string{"cannot list destinations: " + err.Error()}}
	}
	p.fit(need.VCPUs, need.RAMMB)
	return Decide(g.Config, st, now, p.have, need)
}

// AuditSink receives every gate answer.
type AuditSink interface {
	GateAnswered(ctx context.Context, host string, a playbook.GateAnswer)
}

// Gate implements playbook.Gate over the probes.
type Gate struct {
	Config GateConfig
	Probes map[string]*Probe
	// Candidates lists the hosts that may take servers off host, with their
	// state and d (the fleet's verdicts), without headroom.
	Candidates func(ctx context.Context, host string) ([]Destination, error)
	// Headroom reads one candidate's free vCPUs and MB (placement); it is
	// called lowest d first, only until the servers fit.
	Headroom func(ctx context.Context, host string) (vcpus, ramMB int, err error)
	// Need is what host's servers require together (live migration moves
	// them all to one destination).
	Need func(ctx context.Context, host string) (Need, error)
	// Reserve holds the groups' reserved hosts (nil: none). A spare is
	// never a live-migration destination, and an evacuation destination
	// only for a host of its group with no room left (Place).
	Reserve *playbook.Reserve
	// Group is a host's group (nil: one group).
	Group func(host string) string
	Audit AuditSink
	Clock clock.Clock
	Log   zerolog.Logger
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
	default:
		st := p.Stats(now)
		if why := libvirtReasons(g.Config.withDefaults(), st, now); len(why) > 0 {
			// closed whatever the destinations: no Nova or placement calls
			a = playbook.GateAnswer{Reasons: why}
			break
		}
		a = g.decide(ctx, host, st, now)
	}
	g.Log.Info().Str("host_id", host).Str("component", "migration-gate").Bool("allowed", a.Allowed).
		Str("destination", a.Destination).Str("reason", strings.Join(a.Reasons, "; ")).Msg("live-migration gate")
	if g.Audit != nil {
		g.Audit.GateAnswered(ctx, host, a)
	}
	return a
}

// reservedDests are the reserved hosts placements go to, in order.
func reservedDests(ps []playbook.Placement) []string {
	var out []string
	seen := map[string]bool{}
	for _, p := range ps {
		if p.Reserved && !seen[p.Dest] {
			seen[p.Dest] = true
			out = append(out, p.Dest)
		}
	}
	return out
}
