// Package lab is a simulated world for fenced: a Nova, a live-migration
// gate, out-of-band power and a host checker that obey injected faults and
// react to fenced's actions. `fenced simulate` drives it on a simulated clock
// from a trace; `fenced run --dev` drives it live with generated signals.
package lab

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/fencedhq/fenced/pkg/fencing"
	"github.com/fencedhq/fenced/pkg/fleet"
	"github.com/fencedhq/fenced/pkg/playbook"
	"github.com/fencedhq/fenced/pkg/signals"
	"github.com/fencedhq/fenced/pkg/trace"
)

// simHost is the simulated world's view of one host: what Nova says, what
// faults the trace has injected, and where the power is.
type simHost struct {
	name          string
	cores         int
	serviceUp     bool // as the trace reports it
	forcedDown    bool // set by fenced
	disabled      bool
	servers       int
	faults        map[string]bool
	poweredCycled time.Time // last power cycle (zero: never)
	backAt        time.Time // when the rebooted host is back (zero: not rebooting)
	off           bool      // powered off out of band
	// after a power cycle the starvation the trace describes is gone: samples
	// over warn are replaced by the host's own baseline until the trace
	// itself falls under warn for that signal
	suppress [9]bool
	baseline [9]float64
	// what a recorded trace says beyond up/down: the agent's heartbeat,
	// the libvirt probe and the BMC's power reading (pkg/simulate)
	heartbeatAge   time.Duration
	heartbeatKnown bool
	reportInterval time.Duration
	libvirt        signals.Liveness
	bmcPower       string
}

// Views tells the world what fenced thinks of a host (the gate picks
// destinations that are normal).
type Views interface {
	Get(host string) (fleet.View, bool)
}

// Counters counts what the world was asked to do.
type Counters struct {
	Intents, PowerCycles, Migrations, MigrationFailures, Evacuations, Notifications int
}

// World implements every backend interface the playbook declares. It is
// safe for concurrent use: the daemon runs actions off its loop.
type World struct {
	mu         sync.Mutex // guards everything below, Counters included
	hosts      map[string]*simHost
	serverHost map[string]string
	now        func() time.Time
	rebootTime time.Duration
	warn       [9]float64
	calmD      float64 // a host under this d is healthy enough to learn its baseline
	views      Views
	// groups with reserved hosts (SetGroups): a host's group, and the spares
	group   func(host string) string
	reserve *playbook.Reserve
	Counters
}

// NewWorld returns an empty world. now is the clock; rebootTime the time a
// power-cycled host takes to come back; warn the policy's warn thresholds.
func NewWorld(now func() time.Time, rebootTime time.Duration, sc signals.Config) *World {
	w := &World{hosts: map[string]*simHost{}, serverHost: map[string]string{}, now: now, rebootTime: rebootTime, calmD: sc.DWarn / 2}
	for i, n := range signals.All {
		w.warn[i] = math.Inf(1)
		if s, ok := sc.Signals[n]; ok {
			w.warn[i] = s.Warn
		}
	}
	return w
}

// SetViews connects the world to the fleet it serves. A daemon running
// actions off its loop must pass views that are safe for concurrent use
// (the daemon itself, which serves its snapshot), not its fleet.
func (w *World) SetViews(v Views) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.views = v
}

// Count returns what the world was asked to do so far.
func (w *World) Count() Counters {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.Counters
}

func (w *World) host(name string) *simHost {
	h := w.hosts[name]
	if h == nil {
		h = &simHost{name: name, cores: 32, serviceUp: true, faults: map[string]bool{}}
		w.hosts[name] = h
	}
	return h
}

// control is what the evaluator is told Nova says.
func (h *simHost) control() signals.Control {
	return signals.Control{ServiceUp: h.serviceUp && !h.forcedDown, ForcedDown: h.forcedDown, ServersActive: h.servers,
		HeartbeatAge: h.heartbeatAge, HeartbeatKnown: h.heartbeatKnown, ReportInterval: h.reportInterval,
		Libvirt: h.libvirt, BMCPower: h.bmcPower}
}

func (w *World) Disable(_ context.Context, host, _ string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.host(host).disabled = true
	return nil
}

func (w *World) Enable(_ context.Context, host string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.host(host).disabled = false
	return nil
}

// SchedulingEnabled reports whether the host takes new servers
// (playbook.ServiceReader: the keeper of reserved hosts reads it).
func (w *World) SchedulingEnabled(_ context.Context, host string) (bool, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return !w.host(host).disabled, nil
}

func (w *World) ForceDown(_ context.Context, host string, down bool) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.host(host).forcedDown = down
	return nil
}

func (w *World) Servers(_ context.Context, host string) ([]playbook.Server, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	h := w.host(host)
	out := make([]playbook.Server, h.servers)
	for i := range out {
		id := fmt.Sprintf("%s-vm%02d", host, i)
		w.serverHost[id] = host
		out[i] = playbook.Server{ID: id, Name: id, Status: "ACTIVE", Running: !h.off && (h.backAt.IsZero() || !w.now().Before(h.backAt)),
			VCPUs: VCPUsPerServer, RAMMB: 8192, Evacuable: true}
	}
	return out, nil
}

func (w *World) LiveMigrate(_ context.Context, serverID, dest string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	src := w.hosts[w.serverHost[serverID]]
	if src == nil {
		return fmt.Errorf("no such server %s", serverID)
	}
	if src.faults[trace.FaultMigrationFails] || src.faults[trace.FaultLibvirtUnresponsive] {
		w.MigrationFailures++
		return errors.New("migration did not complete: source hypervisor unresponsive")
	}
	w.Migrations++
	w.serverHost[serverID] = dest
	src.servers--
	w.host(dest).servers++
	return nil
}

func (w *World) Check(_ context.Context, host string) playbook.GateAnswer {
	w.mu.Lock()
	defer w.mu.Unlock()
	h := w.host(host)
	var reasons []string
	if h.faults[trace.FaultLibvirtUnresponsive] {
		reasons = append(reasons, "libvirt does not answer")
	}
	var own fleet.View
	if w.views != nil {
		own, _ = w.views.Get(host)
	}
	for _, c := range own.Verdict.Contributions {
		if (c.Signal == signals.LibvirtLatency || c.Signal == signals.LibvirtTimeout) && c.OverWarn && !c.Stale {
			reasons = append(reasons, fmt.Sprintf("%s %.4g over warn", c.Signal, c.Value))
		}
	}
	dest := w.destination(host)
	if dest == "" {
		reasons = append(reasons, "no destination in state normal")
	}
	if len(reasons) > 0 {
		return playbook.GateAnswer{Reasons: reasons}
	}
	return playbook.GateAnswer{Allowed: true, Destination: dest}
}

// destination is the normal host with the lowest divergence ("" if none).
func (w *World) destination(host string) string {
	h := w.host(host)
	type dest struct {
		name string
		d    float64
	}
	var dests []dest
	for _, d := range w.hosts {
		if d == h || d.disabled {
			continue
		}
		if dd, ok := w.usable(d); ok {
			dests = append(dests, dest{d.name, dd})
		}
	}
	if len(dests) == 0 {
		return ""
	}
	sort.Slice(dests, func(i, j int) bool {
		if dests[i].d != dests[j].d {
			return dests[i].d < dests[j].d
		}
		return dests[i].name < dests[j].name
	})
	return dests[0].name
}

func (w *World) PowerCycle(_ context.Context, host string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.powerCycle(host)
}

func (w *World) powerCycle(host string) error {
	h := w.host(host)
	if h.faults[trace.FaultBMCUnreachable] {
		return errors.New("bmc unreachable: power state unknown")
	}
	w.PowerCycles++
	h.poweredCycled = w.now()
	h.backAt = w.now().Add(w.rebootTime)
	for i := range h.suppress {
		h.suppress[i] = true
	}
	return nil
}

// PowerOff powers a host off: nothing runs on it until PowerOn.
func (w *World) PowerOff(_ context.Context, host string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	h := w.host(host)
	if h.faults[trace.FaultBMCUnreachable] {
		return errors.New("bmc unreachable: power state unknown")
	}
	h.off = true
	return nil
}

// PowerOn boots a powered-off host: it is back after the reboot time, its
// starvation gone, as after a power cycle.
func (w *World) PowerOn(ctx context.Context, host string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	h := w.host(host)
	if h.faults[trace.FaultBMCUnreachable] {
		return errors.New("bmc unreachable: power state unknown")
	}
	if !h.off {
		return nil
	}
	h.off = false
	return w.powerCycle(host)
}

// PowerState is what the host's BMC reports.
func (w *World) PowerState(_ context.Context, host string) (fencing.PowerState, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	h := w.host(host)
	if h.faults[trace.FaultBMCUnreachable] {
		return fencing.Unknown, errors.New("bmc unreachable: power state unknown")
	}
	if h.off {
		return fencing.Off, nil
	}
	return fencing.On, nil
}

// Evacuate rebuilds a server of a powered-off host on dest.
func (w *World) Evacuate(_ context.Context, serverID, dest string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	src := w.hosts[w.serverHost[serverID]]
	if src == nil {
		return fmt.Errorf("no such server %s", serverID)
	}
	if !src.forcedDown {
		return fmt.Errorf("evacuate %s: source %s is not forced down", serverID, src.name)
	}
	w.Evacuations++
	w.serverHost[serverID] = dest
	src.servers--
	w.host(dest).servers++
	return nil
}

// Place puts each server on the normal, calm host with the lowest d (the
// lab's hosts have room for everything) — except for a host of a group with
// reserved hosts (SetGroups), placed as fenced's placer does: first on the
// group's own normal hosts with room (a lab host has room for
// cores × 1.5 vCPUs, Capacity's ratio, less its servers'), then on the
// group's spares, taken into service (Placement.Reserved), then anywhere
// else in the fleet.
func (w *World) Place(ctx context.Context, host string, servers []playbook.Server) ([]playbook.Placement, map[string]string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.reserve != nil {
		if g := w.group(host); w.hasReserved(g) {
			return w.placeInGroup(host, g, servers)
		}
	}
	return placeAll(servers, w.destination(host))
}

// SetGroups gives the world the hosts' groups and the groups' reserved
// hosts (playbook.Reserve; nil: none).
func (w *World) SetGroups(group func(host string) string, r *playbook.Reserve) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.group, w.reserve = group, r
}

func (w *World) hasReserved(group string) bool {
	for _, r := range w.reserve.List() {
		if r.Group == group {
			return true
		}
	}
	return false
}

// usable says whether h can take servers now: on, back, not fenced, no
// fault, and (with views) normal with a normal verdict; its d. Without
// views (served to remote replicas) it is the world's own view of health.
func (w *World) usable(h *simHost) (float64, bool) {
	if h.off || h.forcedDown || len(h.faults) > 0 || !h.backAt.IsZero() && w.now().Before(h.backAt) {
		return 0, false
	}
	if w.views == nil {
		return 0, true
	}
	v, ok := w.views.Get(h.name)
	if !ok || v.Host.State != playbook.Normal || v.Verdict.Blind || v.Verdict.Level != signals.LevelNormal {
		return 0, false
	}
	return v.Verdict.D, true
}

// placeInGroup places the servers of host, in group, on the group's own
// hosts with room, then its spares, then the rest of the fleet.
func (w *World) placeInGroup(host, group string, servers []playbook.Server) ([]playbook.Placement, map[string]string) {
	type dest struct {
		name     string
		d        float64
		free     int // vCPUs; -1: room for everything
		reserved bool
	}
	var own, rest []dest
	for _, h := range w.hosts {
		if h.name == host || h.disabled || w.reserve.Status(h.name) == playbook.ReservedSpare {
			continue
		}
		d, ok := w.usable(h)
		if !ok {
			continue
		}
		if w.group(h.name) == group {
			own = append(own, dest{h.name, d, h.cores*3/2 - h.servers*VCPUsPerServer, false})
		} else {
			rest = append(rest, dest{h.name, d, -1, false})
		}
	}
	byD := func(ds []dest) {
		sort.Slice(ds, func(i, j int) bool {
			if ds[i].d != ds[j].d {
				return ds[i].d < ds[j].d
			}
			return ds[i].name < ds[j].name
		})
	}
	byD(own)
	byD(rest)
	cands := own
	for _, s := range w.reserve.Spares(group) {
		if h := w.hosts[s]; h != nil {
			if d, ok := w.usable(h); ok {
				cands = append(cands, dest{h.name, d, h.cores*3/2 - h.servers*VCPUsPerServer, true})
			}
		}
	}
	cands = append(cands, rest...)
	var out []playbook.Placement
	un := map[string]string{}
	for _, s := range servers {
		placed := false
		for i := range cands {
			c := &cands[i]
			if c.free >= 0 && c.free < s.VCPUs {
				continue
			}
			if c.free >= 0 {
				c.free -= s.VCPUs
			}
			out = append(out, playbook.Placement{Server: s, Dest: c.name, Reserved: c.reserved})
			placed = true
			break
		}
		if !placed {
			un[s.ID] = "no destination in state normal with room"
		}
	}
	return out, un
}

// placeAll puts every server on dest ("": nowhere).
func placeAll(servers []playbook.Server, dest string) ([]playbook.Placement, map[string]string) {
	if dest == "" {
		un := map[string]string{}
		for _, s := range servers {
			un[s.ID] = "no destination in state normal"
		}
		return nil, un
	}
	out := make([]playbook.Placement, len(servers))
	for i, s := range servers {
		out[i] = playbook.Placement{Server: s, Dest: dest}
	}
	return out, nil
}

func (w *World) Back(_ context.Context, host string) (bool, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	h := w.host(host)
	if h.off || h.backAt.IsZero() || h.faults[trace.FaultRebootNeverReturns] {
		return false, nil
	}
	return !w.now().Before(h.backAt), nil
}

func (w *World) Notify(context.Context, playbook.Notification) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.Notifications++
}

func (w *World) Intent(_ context.Context, in playbook.Intent) (string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.Intents++
	return fmt.Sprintf("%s-%d", in.Action, w.Intents), nil
}

func (w *World) Outcome(context.Context, string, error) error { return nil }

// Sample applies the world to a sample: nothing arrives from a host that is
// off or booting, and a rebooted host no longer shows the starvation its
// generator or trace goes on to describe (samples over warn are replaced by
// the host's last healthy value until the source itself falls under warn).
// It returns false to drop the sample.
func (w *World) Sample(s signals.Sample) (v float64, keep bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	h := w.host(s.Host)
	i := index(s.Signal)
	if h.off || !h.backAt.IsZero() && w.now().Before(h.backAt) {
		return 0, false
	}
	if h.suppress[i] {
		if s.Value < w.warn[i] {
			h.suppress[i] = false
		} else {
			return h.baseline[i], true
		}
	}
	if w.views != nil {
		if v, ok := w.views.Get(s.Host); ok && v.Host.State == playbook.Normal && !v.Verdict.Blind && v.Verdict.D < w.calmD && s.Value < w.warn[i] {
			h.baseline[i] = s.Value
		}
	}
	return s.Value, true
}

func index(n signals.Name) int {
	for i, a := range signals.All {
		if a == n {
			return i
		}
	}
	return 0
}

// SetService records what the control plane reports for a host's service.
func (w *World) SetService(host string, up bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.host(host).serviceUp = up
}

// SetHeartbeat records Nova's view of the agent's heartbeat: how old it is
// (known: Nova has one) and Nova's report interval.
func (w *World) SetHeartbeat(host string, age time.Duration, known bool, reportInterval time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	h := w.host(host)
	h.heartbeatAge, h.heartbeatKnown, h.reportInterval = age, known, reportInterval
}

// SetLibvirt records the libvirt probe's view of a host.
func (w *World) SetLibvirt(host string, l signals.Liveness) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.host(host).libvirt = l
}

// SetBMCPower records the BMC's last power reading of a host.
func (w *World) SetBMCPower(host, state string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.host(host).bmcPower = state
}

// SetServers sets how many servers are ACTIVE on a host.
func (w *World) SetServers(host string, n int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.host(host).servers = n
}

// VCPUsPerServer is the size of every lab server.
const VCPUsPerServer = 4

// Capacity reports the host's cores and the vCPUs of its servers; the lab's
// VMs run Kubernetes with pods requesting 1.5× their vCPUs (r2 = 1.5).
func (w *World) Capacity(host string) (cores, vcpus int, r2 float64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	h := w.host(host)
	return h.cores, h.servers * VCPUsPerServer, 1.5
}

// SetCores sets a host's physical cores.
func (w *World) SetCores(host string, n int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.host(host).cores = n
}

// Fault injects a fault (trace.FaultCleared clears them all).
func (w *World) Fault(host, fault string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	h := w.host(host)
	if fault == trace.FaultCleared {
		clear(h.faults)
		return
	}
	h.faults[fault] = true
}

// Control is what Nova says about a host: up unless reported down or forced
// down by fenced, and its ACTIVE servers.
func (w *World) Control(host string) (signals.Control, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	h, ok := w.hosts[host]
	if !ok {
		return signals.Control{}, false
	}
	return h.control(), true
}

// RebootedAt is the time of a host's last power cycle (zero: never).
func (w *World) RebootedAt(host string) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.host(host).poweredCycled
}

// Power reports a host's power: false while it reboots.
func (w *World) Power(host string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	h := w.host(host)
	return !h.off && (h.backAt.IsZero() || !w.now().Before(h.backAt))
}
