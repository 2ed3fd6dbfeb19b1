package saturation

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/fencedhq/fenced/integration/internal/harness"
	"github.com/fencedhq/fenced/pkg/hypervisor"
)

// condition is how the lab host is built: where libvirtd and the vCPU
// workers sit, their weights and scheduling class, and what else loads
// the host.
type condition struct {
	key  string // in logs and FENCED_SATURATION_ONLY
	name string // in the docs' tables
	// slices puts libvirtd in host/system (cpu.shares 1024) and the workers
	// in host/machine (cpu.shares shares(workers)); otherwise both share
	// one cgroup, every thread with the same weight.
	slices bool
	shares func(workers int) int
	// fifo vCPU workers run SCHED_FIFO at priority 10. Real-time tasks
	// escape the CFS quota, so the host is then pinned to one CPU (a
	// cpuset) instead, and host and machine get the RT runtime the kernel
	// gives the root group (950 ms per second).
	fifo int
	// vm adds memory pressure: the host gets a memory cgroup whose limit
	// leaves no room beyond what the vm workers keep touching, so every
	// allocation in the host reclaims first (the OOM killer, when nothing is
	// left, takes the biggest task: a vm worker). libvirtd's code pages were read before
	// it joined the cgroup and stay charged to the root: this kernel no
	// longer moves charges.
	vm bool
	// io adds I/O pressure: stress-ng hdd workers writing files and io
	// workers calling sync().
	io bool
}

func (c condition) machineShares(workers int) int {
	if !c.slices {
		return 0
	}
	if c.shares == nil {
		return 1024
	}
	return min(c.shares(workers), 262144) // cgroup v1's maximum
}

func (c condition) extras() string {
	var s []string
	if c.vm {
		s = append(s, fmt.Sprintf("%d vm × %d MB", vmWorkers, vmMB))
	}
	if c.io {
		s = append(s, "1 hdd + 1 io")
	}
	return strings.Join(s, " + ")
}

const (
	vmWorkers = 2
	vmMB      = 256
	rtRuntime = "950000" // µs per 1 s period: the root group's default
)

// lab is a one-core host with a running libvirtd.
type lab struct {
	t    testing.TB
	lv   harness.Libvirtd
	cond condition

	cpuRoot, cpusetRoot, memRoot string
	host, system, machine        string // cpu cgroups
	cpuset, mem                  string // "" unless used
	tmp                          string
}

func writeFile(dir, f, v string) error {
	if err := os.WriteFile(filepath.Join(dir, f), []byte(v), 0o644); err != nil {
		return fmt.Errorf("saturation: write %s to %s: %w", v, filepath.Join(dir, f), err)
	}
	return nil
}

func v1Root(controller, probe string) string {
	d := filepath.Join("/sys/fs/cgroup", controller)
	if _, err := os.Stat(filepath.Join(d, probe)); err == nil {
		return d
	}
	return ""
}

// newLab builds the host for c around lv; close tears it down and puts
// libvirtd back where it was.
func newLab(t testing.TB, lv harness.Libvirtd, c condition) (*lab, error) {
	l := &lab{t: t, lv: lv, cond: c, cpuRoot: harness.CgroupV1(), tmp: t.TempDir()}
	if l.cpuRoot == "" {
		return nil, fmt.Errorf("saturation: no cgroup v1 cpu controller: cannot build a one-core host")
	}
	name := fmt.Sprintf("fenced-b4-%d", os.Getpid())
	l.host = filepath.Join(l.cpuRoot, name)
	if err := os.MkdirAll(l.host, 0o755); err != nil {
		return nil, fmt.Errorf("saturation: host cgroup: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			l.close()
		}
	}()
	for _, kv := range [][2]string{{"cpu.cfs_period_us", "100000"}, {"cpu.cfs_quota_us", "100000"}} {
		if err := writeFile(l.host, kv[0], kv[1]); err != nil {
			return nil, err
		}
	}
	l.system, l.machine = l.host, l.host
	if c.slices {
		l.system, l.machine = filepath.Join(l.host, "system"), filepath.Join(l.host, "machine")
		for _, d := range []string{l.system, l.machine} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return nil, fmt.Errorf("saturation: slice cgroup: %w", err)
			}
		}
		if err := writeFile(l.system, "cpu.shares", "1024"); err != nil {
			return nil, err
		}
	}
	if c.fifo > 0 {
		if !c.slices {
			return nil, fmt.Errorf("saturation: %s: FIFO vCPUs need the slices", c.key)
		}
		for _, d := range []string{l.host, l.machine} { // parent first
			if err := writeFile(d, "cpu.rt_runtime_us", rtRuntime); err != nil {
				return nil, err
			}
		}
		if l.cpusetRoot = v1Root("cpuset", "cpuset.cpus"); l.cpusetRoot == "" {
			return nil, fmt.Errorf("saturation: no cgroup v1 cpuset controller: cannot pin the host")
		}
		l.cpuset = filepath.Join(l.cpusetRoot, name)
		if err := os.MkdirAll(l.cpuset, 0o755); err != nil {
			return nil, fmt.Errorf("saturation: cpuset cgroup: %w", err)
		}
		cpus, _ := os.ReadFile(filepath.Join(l.cpusetRoot, "cpuset.effective_cpus"))
		last := strings.TrimSpace(string(cpus))
		if i := strings.LastIndexAny(last, ",-"); i >= 0 {
			last = last[i+1:]
		}
		if err := writeFile(l.cpuset, "cpuset.cpus", last); err != nil {
			return nil, err
		}
		if err := writeFile(l.cpuset, "cpuset.mems", "0"); err != nil {
			return nil, err
		}
	}
	if c.vm {
		if l.memRoot = v1Root("memory", "memory.limit_in_bytes"); l.memRoot == "" {
			return nil, fmt.Errorf("saturation: no cgroup v1 memory controller: cannot press on memory")
		}
		l.mem = filepath.Join(l.memRoot, name)
		if err := os.MkdirAll(l.mem, 0o755); err != nil {
			return nil, fmt.Errorf("saturation: memory cgroup: %w", err)
		}
	}
	for _, d := range l.dirs(l.system) {
		if err := writeFile(d, "cgroup.procs", strconv.Itoa(lv.PID)); err != nil {
			return nil, err
		}
	}
	if c.vm {
		time.Sleep(200 * time.Millisecond)
		use, err := readInt(filepath.Join(l.mem, "memory.usage_in_bytes"))
		if err != nil {
			return nil, err
		}
		// the limit: what libvirtd holds now plus what the vm workers keep
		limit := use + vmWorkers*vmMB<<20
		if err := writeFile(l.mem, "memory.limit_in_bytes", strconv.FormatInt(limit, 10)); err != nil {
			return nil, err
		}
	}
	ok = true
	return l, nil
}

// dirs are the cgroups a task of the given cpu cgroup joins.
func (l *lab) dirs(cpu string) []string {
	d := []string{cpu}
	if l.cpuset != "" {
		d = append(d, l.cpuset)
	}
	if l.mem != "" {
		d = append(d, l.mem)
	}
	return d
}

func readInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("saturation: read %s: %w", path, err)
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// close kills whatever still runs in the host's cgroups but libvirtd,
// puts libvirtd back in the root cgroups and removes the host's.
func (l *lab) close() {
	all := []string{l.machine, l.system, l.host, l.cpuset, l.mem}
	for try := 0; try < 50; try++ {
		left := 0
		for _, d := range all {
			if d == "" {
				continue
			}
			b, _ := os.ReadFile(filepath.Join(d, "cgroup.procs"))
			for _, f := range strings.Fields(string(b)) {
				pid, _ := strconv.Atoi(f)
				if pid > 0 && pid != l.lv.PID {
					left++
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		if left == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, r := range []string{l.cpuRoot, l.cpusetRoot, l.memRoot} {
		if r != "" {
			_ = os.WriteFile(filepath.Join(r, "cgroup.procs"), []byte(strconv.Itoa(l.lv.PID)), 0o644)
		}
	}
	for _, d := range all {
		if d == "" {
			continue
		}
		for i := 0; i < 40 && os.Remove(d) != nil; i++ {
			if _, err := os.Stat(d); err != nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// load is the stress-ng processes standing for the host's VMs.
type load struct {
	t    testing.TB
	cmds []*exec.Cmd
	errs []*strings.Builder
}

// start runs the vCPU workers (n at load %, fifo of them SCHED_FIFO) and
// the condition's memory and I/O workers, each stress-ng inside the
// machine's cgroups; every process ends by itself after timeout.
func (l *lab) start(n, pct int, timeout time.Duration) (*load, error) {
	ld := &load{t: l.t}
	join := ""
	for _, d := range l.dirs(l.machine) {
		join += fmt.Sprintf("echo $$ > %s/cgroup.procs && ", d)
	}
	tm := fmt.Sprintf("--timeout %ds --quiet", int(timeout.Seconds()))
	var runs []string
	if k := min(l.cond.fifo, n); k > 0 {
		runs = append(runs, fmt.Sprintf("chrt -f 10 stress-ng --cpu %d --cpu-load %d %s", k, pct, tm))
		n -= k
	}
	if n > 0 {
		runs = append(runs, fmt.Sprintf("stress-ng --cpu %d --cpu-load %d %s", n, pct, tm))
	}
	if l.cond.vm {
		runs = append(runs, fmt.Sprintf("stress-ng --vm %d --vm-bytes %dM --vm-keep %s", vmWorkers, vmMB, tm))
	}
	if l.cond.io {
		runs = append(runs, fmt.Sprintf("stress-ng --hdd 1 --hdd-bytes 256M --io 1 --temp-path %s %s", l.tmp, tm))
	}
	for _, r := range runs {
		cmd := exec.Command("sh", "-c", join+"exec "+r)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		var errb strings.Builder
		cmd.Stderr = &errb
		if err := cmd.Start(); err != nil {
			ld.stop()
			return nil, fmt.Errorf("saturation: start %s: %w", r, err)
		}
		ld.cmds = append(ld.cmds, cmd)
		ld.errs = append(ld.errs, &errb)
	}
	return ld, nil
}

// stop ends every worker: SIGTERM to each process group, SIGKILL after 5 s.
func (ld *load) stop() {
	for _, c := range ld.cmds {
		_ = syscall.Kill(-c.Process.Pid, syscall.SIGTERM)
	}
	for _, c := range ld.cmds {
		done := make(chan struct{})
		go func() { _ = c.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
			<-done
		}
	}
	// stress-ng warns that SIGTERM ended it early; anything else is logged
	for i, c := range ld.cmds {
		for _, line := range strings.Split(ld.errs[i].String(), "\n") {
			if line != "" && !strings.Contains(line, "finished prematurely") {
				ld.t.Logf("%s: %s", c.Args[len(c.Args)-1], line)
			}
		}
	}
}

type row struct {
	cond                     string
	r1, r2, reff             float64
	workers, load, shares    int
	runq, throttled, mgmtCPU float64
	memPSI, ioPSI            float64 // % of wall time some task stalled (machine-wide)
	majflt                   int64   // libvirtd's major page faults during the window
	silence                  time.Duration
	st                       hypervisor.Stats
	gate                     bool
}

func throttledNS(cg string) int64 {
	b, _ := os.ReadFile(filepath.Join(cg, "cpu.stat"))
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[0] == "throttled_time" {
			v, _ := strconv.ParseInt(f[1], 10, 64)
			return v
		}
	}
	return 0
}

func procsRunning() float64 {
	b, _ := os.ReadFile("/proc/stat")
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[0] == "procs_running" {
			v, _ := strconv.ParseFloat(f[1], 64)
			return v
		}
	}
	return 0
}

// procStat returns utime+stime (ticks) and major faults of pid.
func procStat(pid int) (ticks, majflt int64) {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i > 0 {
		f := strings.Fields(s[i+2:])
		if len(f) > 12 {
			m, _ := strconv.ParseInt(f[9], 10, 64)
			u, _ := strconv.ParseInt(f[11], 10, 64)
			k, _ := strconv.ParseInt(f[12], 10, 64)
			return u + k, m
		}
	}
	return 0, 0
}

// psiSome returns the "some" stall total (µs) of /proc/pressure/<res>.
func psiSome(res string) int64 {
	b, _ := os.ReadFile("/proc/pressure/" + res)
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "some ") {
			for _, f := range strings.Fields(l) {
				if v, ok := strings.CutPrefix(f, "total="); ok {
					n, _ := strconv.ParseInt(v, 10, 64)
					return n
				}
			}
		}
	}
	return 0
}

// measure loads the host at r1·r2 busy workers per core, waits settle,
// probes libvirt for window and says what it saw.
func (l *lab) measure(r1, r2 float64, settle, window time.Duration) (row, error) {
	const cores = 1.0
	reff := r1 * r2
	n := int(math.Ceil(reff * cores))
	pct := int(math.Round(100 * reff * cores / float64(n)))
	if shares := l.cond.machineShares(n); shares > 0 {
		if err := writeFile(l.machine, "cpu.shares", strconv.Itoa(shares)); err != nil {
			return row{}, err
		}
	}
	ld, err := l.start(n, pct, settle+window+10*time.Second)
	if err != nil {
		return row{}, err
	}
	defer ld.stop()
	time.Sleep(settle)
	p, err := hypervisor.NewProbe(hypervisor.ProbeConfig{Host: "b4", URI: l.lv.URI, CallTimeout: time.Second,
		LatencyWindow: time.Minute, TimeoutWindow: time.Minute, Log: zerolog.Nop()})
	if err != nil {
		return row{}, err
	}
	defer p.Close()
	th0, start := throttledNS(l.host), time.Now()
	cpu0, mf0 := procStat(l.lv.PID)
	mem0, io0 := psiSome("memory"), psiSome("io")
	var rq, silence float64
	samples := 0
	for time.Since(start) < window {
		now := time.Now()
		p.Tick(now)
		if st := p.Stats(now); !st.LastAnswer.IsZero() {
			silence = math.Max(silence, now.Sub(st.LastAnswer).Seconds())
		}
		if samples%10 == 0 {
			rq += procsRunning()
		}
		samples++
		time.Sleep(50 * time.Millisecond)
	}
	wall := time.Since(start)
	now := time.Now()
	st := p.Stats(now)
	cpu1, mf1 := procStat(l.lv.PID)
	r := row{cond: l.cond.key, r1: r1, r2: r2, reff: reff, workers: n, load: pct, shares: l.cond.machineShares(n), st: st,
		runq:      rq / float64((samples+9)/10) / 2, // machine-wide, per core of the 2-core machine
		throttled: 100 * float64(throttledNS(l.host)-th0) / float64(wall.Nanoseconds()),
		mgmtCPU:   100 * float64(cpu1-cpu0) / 100 / wall.Seconds(),
		memPSI:    100 * float64(psiSome("memory")-mem0) / float64(wall.Microseconds()),
		ioPSI:     100 * float64(psiSome("io")-io0) / float64(wall.Microseconds()),
		majflt:    mf1 - mf0,
		silence:   time.Duration(silence * float64(time.Second))}
	a := hypervisor.Decide(hypervisor.GateConfig{}, st, now,
		[]hypervisor.Destination{{Host: "dest", State: "normal", FreeVCPUs: 64, FreeRAMMB: 1 << 20}}, hypervisor.Need{VCPUs: 1, RAMMB: 1})
	r.gate = a.Allowed
	l.t.Logf("%s r1 %.1f r2 %.1f r_eff %.2f: p95 %s timeouts %.1f%% silence %s throttled %.0f%% majflt %d mem/io stall %.0f/%.0f%% gate %v",
		l.cond.key, r1, r2, reff, st.P95, st.TimeoutPct, r.silence.Round(time.Millisecond), r.throttled, r.majflt, r.memPSI, r.ioPSI, a.Allowed)
	return r, nil
}

// run measures c at each (r1, r2), stopping once the gate stayed closed
// for two rows in a row (or, with stopEarly false, never).
func run(t testing.TB, lv harness.Libvirtd, c condition, combos [][2]float64, settle, window time.Duration, stopEarly bool) []row {
	l, err := newLab(t, lv, c)
	if err != nil {
		t.Fatal(err)
	}
	defer l.close()
	var rows []row
	closed := 0
	for _, cb := range combos {
		if stopEarly && closed >= 2 {
			break
		}
		r, err := l.measure(cb[0], cb[1], settle, window)
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, r)
		if r.gate {
			closed = 0
		} else {
			closed++
		}
	}
	return rows
}

func requireTools(t testing.TB) {
	if harness.CgroupV1() == "" {
		t.Fatal("no cgroup v1 cpu controller: cannot build a one-core host")
	}
	for _, b := range []string{"stress-ng", "chrt"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Fatalf("%s not found (make deps installs it)", b)
		}
	}
}
