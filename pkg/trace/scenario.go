package trace

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"time"

	"github.com/fencedhq/fenced/pkg/signals"
)

// Scenario describes a synthetic trace. The generator is deterministic for a
// given scenario (same seed, same bytes).
type Scenario struct {
	Kind     string // healthy, incident, saturation, fleet, groups, reserved
	Hosts    int    // healthy and fleet only
	Start    time.Time
	Duration time.Duration
	Step     time.Duration
	Seed     uint64
}

// Scenarios lists the scenario kinds.
var Scenarios = []string{"healthy", "incident", "saturation", "fleet", "groups", "reserved"}

// IncidentDate is the day the incident scenario replays (section 3 of the paper).
var IncidentDate = time.Date(2026, 1, 15, 0, 0, 0, 0, time.UTC)

// Times of the paper's incident (Table 1), on IncidentDate.
var (
	IncidentOnset    = IncidentDate.Add(1*time.Hour + 14*time.Minute) // 01:14 saturation starts
	IncidentStall    = IncidentDate.Add(1*time.Hour + 20*time.Minute) // nova-compute stops heartbeating (ours)
	IncidentDecision = IncidentDate.Add(2*time.Hour + 2*time.Minute)  // 02:02 reboot decided and executed
	IncidentRestored = IncidentDate.Add(2*time.Hour + 25*time.Minute) // 02:25 service declared restored
)

// hostModel turns a starvation level L (0 healthy … 1 fully starved) into the nine signals.
type hostModel struct {
	name    string
	rng     *rand.Rand
	noise   float64 // noise scale, 1 = a noisy healthy host
	spikes  bool
	stalled time.Time // heartbeats stopped at this time (zero: heartbeating)
}

func (h *hostModel) n(scale float64) float64 { return h.noise * scale * h.rng.NormFloat64() }

func (h *hostModel) spike(p, size float64) float64 {
	if h.spikes && h.rng.Float64() < p {
		return size * (0.5 + h.rng.Float64())
	}
	return 0
}

// values computes the nine signals at t for starvation level L, in the order of signals.All.
func (h *hostModel) values(t time.Time, L float64) [9]float64 {
	pos := func(v float64) float64 { return math.Max(v, 0) }
	var v [9]float64
	v[0] = pos(2 + h.n(1) + 45*L + h.spike(0.004, 12))                // cpu_steal_pct
	v[1] = pos(0.8 + h.n(0.2) + 5*L + h.spike(0.004, 2))              // runqueue_per_core
	v[2] = pos(4 + math.Abs(h.n(3)) + 2000*L*L + h.spike(0.003, 200)) // libvirt_latency_p95_ms
	v[3] = pos(20 * (L - 0.5))                                        // libvirt_timeout_pct
	lag := 5 + h.rng.Float64()*5 + h.spike(0.002, 10)
	if !h.stalled.IsZero() && !t.Before(h.stalled) {
		lag = 10 + t.Sub(h.stalled).Seconds()
	}
	v[4] = lag                                                        // heartbeat_lag_s
	v[5] = pos(80 + math.Abs(h.n(30)) + 3000*L + h.spike(0.003, 300)) // kubelet_sched_delay_p95_ms
	v[6] = pos(4*(L-0.5) + h.spike(0.001, 1))                         // pod_evictions_per_min
	v[7] = pos(12 + math.Abs(h.n(5)) + 250*L + h.spike(0.003, 60))    // io_latency_p99_ms
	v[8] = pos(4 + h.n(1) + 30*L)                                     // mgmt_cpu_share_pct
	return v
}

func (h *hostModel) emit(w *Writer, t time.Time, L float64) {
	for i, v := range h.values(t, L) {
		w.Signal(t, h.name, signals.All[i], v)
	}
}

// HostModel generates a host's signals live (the dev lab uses it).
type HostModel struct{ m hostModel }

// NewHostModel returns a noisy host model with its own random stream.
func NewHostModel(name string, seed uint64) *HostModel {
	return &HostModel{m: hostModel{name: name, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), noise: 1, spikes: true}}
}

// Stall makes the host's heartbeats stop from t on (zero t: heartbeating).
func (h *HostModel) Stall(t time.Time) { h.m.stalled = t }

// Samples returns the nine signals at t for starvation level L (0 healthy … 1 starved).
func (h *HostModel) Samples(t time.Time, L float64) []signals.Sample {
	v := h.m.values(t, L)
	out := make([]signals.Sample, len(v))
	for i := range v {
		out[i] = signals.Sample{Host: h.m.name, Signal: signals.All[i], Value: v[i], At: t}
	}
	return out
}

// Ramp is 0 before from, 1 after to, linear between.
func Ramp(t, from, to time.Time) float64 { return ramp(t, from, to) }

func ramp(t, from, to time.Time) float64 {
	switch {
	case !t.After(from):
		return 0
	case !t.Before(to):
		return 1
	}
	return float64(t.Sub(from)) / float64(to.Sub(from))
}

// Generate writes the scenario's trace to out.
func Generate(out io.Writer, sc Scenario) error {
	if sc.Step <= 0 {
		sc.Step = 10 * time.Second
	}
	w := NewWriter(out)
	rng := rand.New(rand.NewPCG(sc.Seed, sc.Seed^0x9e3779b97f4a7c15))
	models := func(prefix string, n int) []*hostModel {
		hs := make([]*hostModel, n)
		for i := range hs {
			hs[i] = &hostModel{name: fmt.Sprintf("%s%03d", prefix, i), rng: rng, noise: 1, spikes: true}
		}
		return hs
	}
	switch sc.Kind {
	case "healthy":
		if sc.Hosts <= 0 {
			return fmt.Errorf("trace: healthy scenario needs hosts > 0")
		}
		hs := models("cmp-", sc.Hosts)
		for _, h := range hs {
			w.Cores(h.name, 32)
		}
		for t := sc.Start; t.Before(sc.Start.Add(sc.Duration)); t = t.Add(sc.Step) {
			for _, h := range hs {
				if t.Equal(sc.Start) {
					w.Service(t, h.name, true)
					w.ServersActive(t, h.name, 12)
				}
				h.emit(w, t, 0)
			}
		}
	case "fleet":
		// healthy noisy hosts; one host in a hundred starves like the incident,
		// its onset spread over the run
		if sc.Hosts <= 0 {
			return fmt.Errorf("trace: fleet scenario needs hosts > 0")
		}
		hs := models("cmp-", sc.Hosts)
		onset := map[int]time.Time{}
		for i := 0; i < sc.Hosts; i += 100 {
			onset[(i+37)%sc.Hosts] = sc.Start.Add(time.Duration(rng.Int64N(int64(sc.Duration) * 3 / 4)))
		}
		for t := sc.Start; t.Before(sc.Start.Add(sc.Duration)); t = t.Add(sc.Step) {
			for i, h := range hs {
				if t.Equal(sc.Start) {
					w.Service(t, h.name, true)
				}
				L := 0.0
				if on, ok := onset[i]; ok {
					L = ramp(t, on, on.Add(12*time.Minute))
					if t.After(on.Add(6 * time.Minute)) {
						h.stalled = on.Add(6 * time.Minute)
					}
				}
				h.emit(w, t, L)
			}
		}
	case "incident":
		// Section 3: cluster load rises from 01:14, one host (cmp-017) is
		// starved, its VMs stay ACTIVE, libvirt stops answering, migration
		// fails; the historical reboot is at 02:02, restoration at 02:25.
		start, end := IncidentDate.Add(30*time.Minute), IncidentDate.Add(3*time.Hour)
		hs := make([]*hostModel, 0, 10)
		for i := 10; i < 20; i++ {
			hs = append(hs, &hostModel{name: fmt.Sprintf("cmp-%03d", i), rng: rng, noise: 0.5})
		}
		victim := hs[7]
		down, back := IncidentDecision, IncidentDecision.Add(8*time.Minute)
		for t := start; t.Before(end); t = t.Add(sc.Step) {
			if t.Equal(IncidentStall) {
				w.Fault(t, victim.name, FaultLibvirtUnresponsive)
				victim.stalled = IncidentStall
			}
			if t.Equal(IncidentStall.Add(5 * time.Minute)) {
				w.Fault(t, victim.name, FaultMigrationFails)
			}
			if t.Equal(down) {
				w.Fault(t, victim.name, FaultCleared)
				w.Service(t, victim.name, false)
				victim.stalled = time.Time{}
			}
			for _, h := range hs {
				if t.Equal(start) {
					w.Cores(h.name, 32)
					w.Service(t, h.name, true)
					n := 10
					if h == victim {
						n = 14
					}
					w.ServersActive(t, h.name, n)
				}
				L := 0.08 * ramp(t, IncidentOnset, IncidentOnset.Add(20*time.Minute))
				if h == victim {
					switch {
					case t.Before(down):
						L = ramp(t, IncidentOnset, IncidentOnset.Add(12*time.Minute))
					case t.Before(back):
						continue // powered off and booting: no samples
					default:
						if t.Equal(back) {
							w.Service(t, h.name, true)
						}
						L = 0.3 * (1 - ramp(t, back, IncidentRestored))
					}
				}
				h.emit(w, t, L)
			}
		}
	case "saturation":
		// Section 4.3: every host loaded to warn, two of them starved; there is
		// nowhere to evacuate to.
		start, end := IncidentDate.Add(time.Hour), IncidentDate.Add(3*time.Hour)
		hs := make([]*hostModel, 0, 10)
		for i := 100; i < 110; i++ {
			hs = append(hs, &hostModel{name: fmt.Sprintf("cmp-%03d", i), rng: rng, noise: 0.5})
		}
		loadFrom := start.Add(10 * time.Minute)
		starveFrom := start.Add(30 * time.Minute)
		for t := start; t.Before(end); t = t.Add(sc.Step) {
			for i, h := range hs {
				if t.Equal(start) {
					w.Cores(h.name, 32)
					w.Service(t, h.name, true)
					w.ServersActive(t, h.name, 16)
				}
				L := 0.45 * ramp(t, loadFrom, loadFrom.Add(10*time.Minute))
				if i == 3 || i == 7 {
					L = math.Max(L, ramp(t, starveFrom, starveFrom.Add(10*time.Minute)))
					if t.Equal(starveFrom.Add(5 * time.Minute)) {
						h.stalled = t
					}
				}
				h.emit(w, t, L)
			}
		}
	case "groups":
		// two aggregates: agg-a (4 hosts) is loaded to warn from 01:10 and
		// cmp-202 in it starves from 01:30 — the aggregate is saturated,
		// nowhere in it to evacuate to; agg-b (16 hosts) stays calm but
		// cmp-217 in it starves from 01:30 too. The fleet as a whole (5 of
		// 20 hosts at warn or worse) is not saturated.
		start, end := IncidentDate.Add(time.Hour), IncidentDate.Add(3*time.Hour)
		w.Group("agg-a", "", 0)
		w.Group("agg-b", "50%", 1)
		var hs []*hostModel
		for i := 200; i < 204; i++ {
			hs = append(hs, &hostModel{name: fmt.Sprintf("cmp-%03d", i), rng: rng, noise: 0.5})
			w.Member(hs[len(hs)-1].name, "agg-a", false)
		}
		for i := 210; i < 226; i++ {
			hs = append(hs, &hostModel{name: fmt.Sprintf("cmp-%03d", i), rng: rng, noise: 0.5})
			w.Member(hs[len(hs)-1].name, "agg-b", false)
		}
		loadFrom, starveFrom := start.Add(10*time.Minute), start.Add(30*time.Minute)
		for t := start; t.Before(end); t = t.Add(sc.Step) {
			for i, h := range hs {
				if t.Equal(start) {
					w.Cores(h.name, 32)
					w.Service(t, h.name, true)
					w.ServersActive(t, h.name, 8)
				}
				L := 0.0
				if i < 4 {
					L = 0.45 * ramp(t, loadFrom, loadFrom.Add(10*time.Minute))
				}
				if h.name == "cmp-202" || h.name == "cmp-217" {
					L = math.Max(L, ramp(t, starveFrom, starveFrom.Add(10*time.Minute)))
					if t.Equal(starveFrom.Add(5 * time.Minute)) {
						h.stalled = t
						w.Fault(t, h.name, FaultLibvirtUnresponsive)
					}
				}
				h.emit(w, t, L)
			}
		}
	case "reserved":
		// agg-r: four hosts of 32 cores, 10 servers each (room for 2 more
		// each at 1.5 vCPUs a core), and a reserved host cmp-309, empty and
		// disabled; agg-s: six roomy hosts. cmp-301 starves from 01:30 like
		// the incident: its 10 servers are evacuated, 6 onto its group's
		// own hosts and the 4 they have no room for onto the spare, taken
		// into service; none onto agg-s.
		start, end := IncidentDate.Add(time.Hour), IncidentDate.Add(2*time.Hour)
		w.Group("agg-r", "", 0)
		w.Group("agg-s", "", 0)
		var hs []*hostModel
		add := func(name, group string, reserved bool) {
			hs = append(hs, &hostModel{name: name, rng: rng, noise: 0.5})
			w.Member(name, group, reserved)
		}
		for i := 300; i < 304; i++ {
			add(fmt.Sprintf("cmp-%03d", i), "agg-r", false)
		}
		add("cmp-309", "agg-r", true)
		for i := 310; i < 316; i++ {
			add(fmt.Sprintf("cmp-%03d", i), "agg-s", false)
		}
		starveFrom := start.Add(30 * time.Minute)
		for t := start; t.Before(end); t = t.Add(sc.Step) {
			for _, h := range hs {
				if t.Equal(start) {
					w.Cores(h.name, 32)
					w.Service(t, h.name, true)
					n := 10
					switch {
					case h.name == "cmp-309":
						n = 0
					case h.name >= "cmp-310":
						n = 4
					}
					w.ServersActive(t, h.name, n)
				}
				L := 0.0
				if h.name == "cmp-301" {
					L = ramp(t, starveFrom, starveFrom.Add(10*time.Minute))
					if t.Equal(starveFrom.Add(5 * time.Minute)) {
						h.stalled = t
						w.Fault(t, h.name, FaultLibvirtUnresponsive)
					}
				}
				h.emit(w, t, L)
			}
		}
	default:
		return fmt.Errorf("trace: unknown scenario %q (want one of %v)", sc.Kind, Scenarios)
	}
	return w.Flush()
}
