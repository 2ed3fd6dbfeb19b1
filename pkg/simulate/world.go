package simulate

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

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
	// after a power cycle the starvation the trace describes is gone: samples
	// over warn are replaced by the host's own baseline until the trace
	// itself falls under warn for that signal
	suppress [len(signalsAll)]bool
	baseline [len(signalsAll)]float64
	verdict  signals.Verdict
	state    playbook.State
}

var signalsAll = [9]signals.Name(signals.All)

// world implements every backend interface the playbook declares.
type world struct {
	hosts      map[string]*simHost
	serverHost map[string]string
	now        func() time.Time
	rebootTime time.Duration
	warn       map[signals.Name]float64

	intents, powerCycles, migrations, migrationFailures, notifications int
}

func (w *world) host(name string) *simHost {
	h := w.hosts[name]
	if h == nil {
		h = &simHost{name: name, cores: 32, serviceUp: true, faults: map[string]bool{}, state: playbook.Normal}
		w.hosts[name] = h
	}
	return h
}

// control is what the evaluator is told Nova says.
func (h *simHost) control() signals.Control {
	return signals.Control{ServiceUp: h.serviceUp && !h.forcedDown, ServersActive: h.servers}
}

func (w *world) Disable(_ context.Context, host, _ string) error {
	w.host(host).disabled = true
	return nil
}

func (w *world) Enable(_ context.Context, host string) error {
	w.host(host).disabled = false
	return nil
}

func (w *world) ForceDown(_ context.Context, host string, down bool) error {
	w.host(host).forcedDown = down
	return nil
}

func (w *world) Servers(_ context.Context, host string) ([]playbook.Server, error) {
	h := w.host(host)
	out := make([]playbook.Server, h.servers)
	for i := range out {
		id := fmt.Sprintf("%s-vm%02d", host, i)
		w.serverHost[id] = host
		out[i] = playbook.Server{ID: id, Name: id, Status: "ACTIVE", Running: h.backAt.IsZero() || !w.now().Before(h.backAt)}
	}
	return out, nil
}

func (w *world) LiveMigrate(_ context.Context, serverID, dest string) error {
	src := w.hosts[w.serverHost[serverID]]
	if src == nil {
		return fmt.Errorf("no such server %s", serverID)
	}
	if src.faults[trace.FaultMigrationFails] || src.faults[trace.FaultLibvirtUnresponsive] {
		w.migrationFailures++
		return errors.New("migration did not complete: source hypervisor unresponsive")
	}
	w.migrations++
	w.serverHost[serverID] = dest
	src.servers--
	w.host(dest).servers++
	return nil
}

func (w *world) Check(_ context.Context, host string) playbook.GateAnswer {
	h := w.host(host)
	var reasons []string
	if h.faults[trace.FaultLibvirtUnresponsive] {
		reasons = append(reasons, "libvirt does not answer")
	}
	for _, c := range h.verdict.Contributions {
		if (c.Signal == signals.LibvirtLatency || c.Signal == signals.LibvirtTimeout) && c.OverWarn && !c.Stale {
			reasons = append(reasons, fmt.Sprintf("%s %.4g over warn", c.Signal, c.Value))
		}
	}
	// a destination must itself be normal, with the lowest divergence
	var dests []*simHost
	for _, d := range w.hosts {
		if d != h && d.state == playbook.Normal && !d.verdict.Blind && d.verdict.Level == signals.LevelNormal && !d.disabled {
			dests = append(dests, d)
		}
	}
	if len(dests) == 0 {
		reasons = append(reasons, "no destination in state normal")
	}
	if len(reasons) > 0 {
		return playbook.GateAnswer{Reasons: reasons}
	}
	sort.Slice(dests, func(i, j int) bool {
		if dests[i].verdict.D != dests[j].verdict.D {
			return dests[i].verdict.D < dests[j].verdict.D
		}
		return dests[i].name < dests[j].name
	})
	return playbook.GateAnswer{Allowed: true, Destination: dests[0].name}
}

func (w *world) PowerCycle(_ context.Context, host string) error {
	h := w.host(host)
	if h.faults[trace.FaultBMCUnreachable] {
		return errors.New("bmc unreachable: power state unknown")
	}
	w.powerCycles++
	h.poweredCycled = w.now()
	h.backAt = w.now().Add(w.rebootTime)
	for i := range h.suppress {
		h.suppress[i] = true
	}
	return nil
}

func (w *world) Back(_ context.Context, host string) (bool, error) {
	h := w.host(host)
	if h.backAt.IsZero() || h.faults[trace.FaultRebootNeverReturns] {
		return false, nil
	}
	return !w.now().Before(h.backAt), nil
}

func (w *world) Notify(context.Context, playbook.Notification) { w.notifications++ }

func (w *world) Intent(_ context.Context, in playbook.Intent) (string, error) {
	w.intents++
	return fmt.Sprintf("%s-%d", in.Action, w.intents), nil
}

func (w *world) Outcome(context.Context, string, error) error { return nil }

// sample applies the world to a trace sample: nothing arrives from a host
// that is off or booting, and a rebooted host no longer shows the starvation
// the trace goes on to describe. It returns false to drop the sample.
func (w *world) sample(h *simHost, i int, v float64) (float64, bool) {
	if !h.backAt.IsZero() && w.now().Before(h.backAt) {
		return 0, false
	}
	if h.suppress[i] {
		if v < w.warn[signalsAll[i]] {
			h.suppress[i] = false
		} else {
			return h.baseline[i], true
		}
	}
	if h.state == playbook.Normal && h.verdict.Level == signals.LevelNormal && v < w.warn[signalsAll[i]] {
		h.baseline[i] = v
	}
	return v, true
}
