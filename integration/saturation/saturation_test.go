// Package saturation is the B.4 lab of the paper: a cgroup-limited "host" of
// one core runs a real libvirtd and stress-ng workers standing for the vCPU
// threads of its VMs, at host oversubscription r1 ∈ {1.5, 2, 3} and inner
// (pod) oversubscription r2 ∈ {1, 1.5, 2}, then r1 = 4, 6, 8 at r2 = 2. For
// every combination it records what can be measured here — run queue per
// core, CPU throttling of the host (the steal its VMs would see), libvirtd's
// CPU share, libvirt RPC latency p50/p95/p99, timeout rate and the longest
// silence of the daemon — and whether the live-migration gate would allow
// migration. Beyond that grid, where libvirtd and the vCPUs have equal
// weights, it builds the host the way real hypervisors are built (lab_test.go):
// a system and a machine slice with Nova's cpu.shares, a SCHED_FIFO vCPU,
// memory and I/O pressure. It runs with `make saturation`
// (FENCED_SATURATION=1; about ten minutes) and writes docs/saturation.md and
// docs/saturation.png; FENCED_SATURATION_ONLY=key,… measures only those
// conditions and writes nothing. TestB4Short, in `make test`, measures two
// rows (one where the gate must stay open, one where it must close).
package saturation

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fencedhq/fenced/integration/internal/harness"
)

// the conditions, in the docs' order; the first is the B.4 grid's host
var conditions = []condition{
	{key: "equal", name: "equal weights: libvirtd and the vCPUs in one cgroup"},
	{key: "slices", name: "system 1024 : machine 1024 (systemd's slices)", slices: true},
	{key: "nova", name: "system 1024 : machine 1024 × vCPUs (Nova's shares)", slices: true, shares: novaShares},
	{key: "nova-vm", name: "Nova's shares + memory pressure", slices: true, shares: novaShares, vm: true},
	{key: "nova-io", name: "Nova's shares + I/O pressure", slices: true, shares: novaShares, io: true},
	{key: "nova-fifo", name: "Nova's shares + one SCHED_FIFO vCPU (host pinned to one CPU)", slices: true, shares: novaShares, fifo: 1},
}

// novaShares is what Nova's libvirt driver wrote for years (cputune shares
// = 1024 × the flavor's vCPUs); the machine slice holds every vCPU thread.
func novaShares(workers int) int { return 1024 * workers }

// grid is B.4's r1 × r2, then r1 = 4, 6, 8 at r2 = 2.
func grid() [][2]float64 {
	var g [][2]float64
	for _, r1 := range []float64{1.5, 2, 3} {
		for _, r2 := range []float64{1, 1.5, 2} {
			g = append(g, [2]float64{r1, r2})
		}
	}
	return append(g, [2]float64{4, 2}, [2]float64{6, 2}, [2]float64{8, 2})
}

// ladder is the shorter r_eff ladder for the other conditions: 1.5 to 16.
var ladder = [][2]float64{{1.5, 1}, {2, 1}, {2, 2}, {4, 2}, {8, 2}}

func TestB4Saturation(t *testing.T) {
	if os.Getenv("FENCED_SATURATION") == "" {
		t.Skip("the B.4 lab takes about ten minutes: run it with make saturation (FENCED_SATURATION=1)")
	}
	requireTools(t)
	only := map[string]bool{}
	for _, k := range strings.Split(os.Getenv("FENCED_SATURATION_ONLY"), ",") {
		if k = strings.TrimSpace(k); k != "" {
			only[k] = true
		}
	}
	lv := harness.StartLibvirtd(t)
	results := map[string][]row{}
	for i, c := range conditions {
		if len(only) > 0 && !only[c.key] {
			continue
		}
		combos, stop := ladder, true
		if i == 0 {
			combos, stop = grid(), false
		}
		results[c.key] = run(t, lv, c, combos, 3*time.Second, 15*time.Second, stop)
	}
	if len(only) > 0 {
		t.Log("FENCED_SATURATION_ONLY set: docs not written\n" + summary(results))
		return
	}
	report(t, results)
}

// TestB4Short is the lab's check in make test: at r_eff 4 with equal weights
// the gate stays open and the host is throttled; with one SCHED_FIFO vCPU on
// the host's core the gate closes on latency while libvirtd still answers.
func TestB4Short(t *testing.T) {
	if os.Getenv("FENCED_SATURATION") != "" {
		t.Skip("make saturation measures these rows and more")
	}
	requireTools(t)
	lv := harness.StartLibvirtd(t)
	eq := run(t, lv, conditions[0], [][2]float64{{2, 2}}, 2*time.Second, 6*time.Second, false)[0]
	// (throttling is not asserted: it is 96–98 % on an idle machine but falls
	// near 0 when work outside the lab takes the CPUs; the FIFO row below
	// shows the workers land in the host)
	if eq.st.Samples < 30 || !eq.gate || eq.st.TimeoutPct > 0 {
		t.Errorf("equal weights, r_eff 4: want ≥ 30 calls, no timeout, gate open; got %d calls, throttled %.0f %%, p95 %s, timeouts %.1f %%, gate open %v",
			eq.st.Samples, eq.throttled, eq.st.P95, eq.st.TimeoutPct, eq.gate)
	}
	var fifo condition
	for _, c := range conditions {
		if c.fifo > 0 {
			fifo = c
		}
	}
	rt := run(t, lv, fifo, [][2]float64{{2, 1}}, 2*time.Second, 6*time.Second, false)[0]
	if rt.st.P95 < 200*time.Millisecond || rt.gate || rt.st.LastAnswer.IsZero() {
		t.Errorf("one SCHED_FIFO vCPU, r_eff 2: want p95 ≥ 200 ms, gate closed, libvirtd answering; got p95 %s, timeouts %.1f %%, gate open %v, answered %v",
			rt.st.P95, rt.st.TimeoutPct, rt.gate, !rt.st.LastAnswer.IsZero())
	}
}

// novaDown is Nova's service_down_time default: a nova-compute silent for
// less than this is still "up".
const novaDown = 60 * time.Second

func header() string {
	return "| r1 | r2 | r_eff | busy vCPU threads | machine shares | run queue per core | host CPU throttled | libvirtd CPU | libvirtd major faults | memory / I/O stall | libvirt p50 | p95 | p99 | timeouts | longest silence | gate |\n" +
		"|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
}

func (r row) line(c condition) string {
	g := "open"
	if !r.gate {
		g = "**closed**"
	}
	busy := fmt.Sprintf("%d × %d %%", r.workers, r.load)
	if c.fifo > 0 {
		busy += fmt.Sprintf(" (%d FIFO)", min(c.fifo, r.workers))
	}
	if e := c.extras(); e != "" {
		busy += " + " + e
	}
	shares := "–"
	if r.shares > 0 {
		shares = fmt.Sprint(r.shares)
	}
	p95 := r.st.P95.Round(10 * time.Microsecond).String()
	if r.st.P95 >= 200*time.Millisecond {
		p95 = "**" + p95 + "**"
	}
	to := fmt.Sprintf("%.1f %%", r.st.TimeoutPct)
	if r.st.TimeoutPct >= 1 {
		to = "**" + to + "**"
	}
	return fmt.Sprintf("| %.1f | %.1f | %.2f | %s | %s | %.2f | %.0f %% | %.1f %% | %d | %.0f %% / %.0f %% | %s | %s | %s | %s | %s | %s |\n",
		r.r1, r.r2, r.reff, busy, shares, r.runq, r.throttled, r.mgmtCPU, r.majflt, r.memPSI, r.ioPSI,
		r.st.P50.Round(10*time.Microsecond), p95, r.st.P99.Round(10*time.Microsecond), to, r.silence.Round(10*time.Millisecond), g)
}

// verdict says where, if anywhere, c's management path became unreliable.
type verdict struct {
	maxReff                        float64
	p95From, timeoutFrom, gateFrom float64 // +Inf: never
	silence                        time.Duration
}

func judge(rows []row) verdict {
	v := verdict{p95From: math.Inf(1), timeoutFrom: math.Inf(1), gateFrom: math.Inf(1)}
	for _, r := range rows {
		v.maxReff = math.Max(v.maxReff, r.reff)
		if r.st.P95 >= 200*time.Millisecond {
			v.p95From = math.Min(v.p95From, r.reff)
		}
		if r.st.TimeoutPct >= 1 {
			v.timeoutFrom = math.Min(v.timeoutFrom, r.reff)
		}
		if !r.gate {
			v.gateFrom = math.Min(v.gateFrom, r.reff)
		}
		v.silence = max(v.silence, r.silence)
	}
	return v
}

func from(x float64) string {
	if math.IsInf(x, 1) {
		return "never"
	}
	return fmt.Sprintf("**%.2f**", x)
}

// failure says whether c reproduces the paper's failure: the gate closes
// while the daemon (and so the slice nova-compute runs in) still answers
// well inside Nova's service_down_time.
func (v verdict) failure() string {
	switch {
	case math.IsInf(v.gateFrom, 1):
		return "no: the gate stayed open"
	case v.silence < novaDown:
		return fmt.Sprintf("**yes**: gate closed from r_eff %.2f while libvirtd answered at least every %s (Nova's service_down_time: %s)", v.gateFrom, v.silence.Round(10*time.Millisecond), novaDown)
	}
	return fmt.Sprintf("gate closed from r_eff %.2f, but libvirtd was silent %s: Nova may see it too", v.gateFrom, v.silence.Round(time.Second))
}

func summary(results map[string][]row) string {
	var b strings.Builder
	b.WriteString("| host | r_eff tried | p95 ≥ 200 ms from r_eff | timeouts ≥ 1 % from r_eff | gate closed from r_eff | longest silence | the paper's failure (gate closed, control plane still says up) |\n|---|---|---|---|---|---|---|\n")
	for _, c := range conditions {
		rows, ok := results[c.key]
		if !ok {
			continue
		}
		v := judge(rows)
		fmt.Fprintf(&b, "| %s | up to %.0f | %s | %s | %s | %s | %s |\n", c.name, v.maxReff, from(v.p95From), from(v.timeoutFrom), from(v.gateFrom), v.silence.Round(10*time.Millisecond), v.failure())
	}
	return b.String()
}

func report(t *testing.T, results map[string][]row) {
	docs := filepath.Join(harness.Root(), "docs")
	var md strings.Builder
	md.WriteString(`# B.4 saturation lab

` + "`make saturation`" + ` (FENCED_SATURATION=1 go test -count=1 -v -timeout 20m ./integration/saturation/; about ten
minutes, every figure below comes from one run): a host of one core (a cgroup v1 CPU quota of 100 ms per
100 ms) runs a real libvirtd and stress-ng workers standing for the vCPU threads of its VMs: r1·r2 busy workers
per core. The probe measures libvirt's RPC latency for 15 s per row (a call unanswered after 1 s is a timeout);
the gate is the live-migration gate of pkg/hypervisor with the default thresholds (p95 200 ms, timeouts 1 %).
Run queue is machine-wide per core of the 2-core machine; "throttled" is the share of wall time the host's
cgroup was throttled (what its VMs would see as steal); libvirtd CPU is its share of one core; "memory / I/O
stall" is the share of wall time some task of the machine waited for memory or I/O (pressure stall
information); "longest silence" is the longest time the probe waited for any answer of the daemon.

Measured ` + time.Now().UTC().Format("2006-01-02") + ` on the 2-core VM.

## Which hosts lose the management path

`)
	md.WriteString(summary(results))
	md.WriteString(`
"Control plane still says up" is read from the daemon's longest silence: nova-compute would live in the
same slice as libvirtd, with the same weight and scheduling class, and Nova declares a compute down only
after service_down_time (60 s) without a heartbeat (sent every 10 s). A host whose libvirtd answers every
second but too slowly for the gate is a host Nova reports up with its servers ACTIVE.

## How the hosts are built

- **equal weights** (the B.4 grid below): libvirtd and every vCPU worker in the host's cgroup; CFS weighs
  each thread alike.
- **system 1024 : machine 1024**: libvirtd in host/system, the vCPU workers in host/machine, both
  cpu.shares 1024 — what systemd gives system.slice and machine.slice, and what libvirt's own machine
  partition gets without systemd (libvirt writes no shares unless the domain asks).
- **Nova's shares**: the machine group gets cpu.shares = 1024 × its vCPU threads (up to 16384 at r_eff 16)
  against libvirtd's 1024: Nova's libvirt driver set cputune shares to 1024 × the flavor's vCPUs by default
  until it stopped (cgroup v2 caps weights at 10000), and a host whose VM cgroups sit beside the system slice
  sees this ratio.
- **+ memory pressure**: the host also gets a cgroup v1 memory limit sized to what libvirtd held plus what
  2 stress-ng vm workers keep touching (` + fmt.Sprint(vmWorkers*vmMB) + ` MB). The intent was to charge libvirtd's pages to it and make the
  kernel reclaim them, but this kernel no longer moves charges between cgroups (move_charge_at_immigrate
  is refused), so libvirtd's pages stay charged to the root cgroup and are not evicted (0 major faults in
  every row), and its oom_score_adj −1000 was refused too: this condition is weaker than a real host's.
- **+ I/O pressure**: a stress-ng hdd worker (256 MB files) and an io worker (sync()) beside the vCPUs.
- **+ one SCHED_FIFO vCPU**: one vCPU worker runs ` + "`chrt -f 10`" + `; real-time threads ignore the CFS quota and
  weights, so the host is pinned to one CPU (a cpuset) instead of the quota, and host and machine get the
  RT runtime of the root group (950 ms per second, the kernel's RT throttling): the other threads of the
  core share what is left.

Every condition but the grid's climbs r_eff 1.5, 2, 4, 8, 16 and stops after two rows with the gate closed.

`)
	for i, c := range conditions {
		rows, ok := results[c.key]
		if !ok {
			continue
		}
		if i == 0 {
			md.WriteString("## The B.4 grid: " + c.name + "\n\n")
		} else {
			md.WriteString("## " + c.name + "\n\n")
		}
		md.WriteString(header())
		for _, r := range rows {
			md.WriteString(r.line(c))
		}
		md.WriteString("\n")
	}
	md.WriteString("![p95 against r_eff, one line per host](saturation.png)\n")
	t.Log("\n" + md.String())
	plot(t, filepath.Join(docs, "saturation.png"), results)
	if err := os.WriteFile(filepath.Join(docs, "saturation.md"), []byte(md.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

func plot(t *testing.T, png string, results map[string][]row) {
	dir := t.TempDir()
	var plots []string
	for _, c := range conditions {
		rows, ok := results[c.key]
		if !ok {
			continue
		}
		best := map[float64]time.Duration{} // the grid has several rows per r_eff: the worst p95
		for _, r := range rows {
			best[r.reff] = max(best[r.reff], r.st.P95)
		}
		var d strings.Builder
		for _, r := range rows {
			if p, ok := best[r.reff]; ok {
				fmt.Fprintf(&d, "%.2f %.3f\n", r.reff, p.Seconds()*1000)
				delete(best, r.reff)
			}
		}
		dat := filepath.Join(dir, c.key+".dat")
		_ = os.WriteFile(dat, []byte(d.String()), 0o644)
		plots = append(plots, fmt.Sprintf("%q using 1:2 with linespoints pt 7 title %q", dat, c.key))
	}
	script := fmt.Sprintf(`set terminal png size 900,520
set output %q
set title "libvirt RPC latency p95 vs effective oversubscription (1-core host, B.4)"
set xlabel "r_eff = r1 x r2"
set ylabel "p95 (ms)"
set logscale y
set grid
set key outside right
plot %s, 200 with lines dt 2 title "warn 200 ms"
`, png, strings.Join(plots, ", "))
	gp := filepath.Join(dir, "b4.gp")
	_ = os.WriteFile(gp, []byte(script), 0o644)
	if out, err := exec.Command("gnuplot", gp).CombinedOutput(); err != nil {
		t.Logf("no plot (gnuplot-nox missing?): %v %s", err, out)
	}
}
