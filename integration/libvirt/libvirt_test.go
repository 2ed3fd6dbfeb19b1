// Package libvirt tests the probe and the live-migration gate against a real
// libvirtd from Debian's packages, started on loopback with its test driver:
// healthy, frozen with SIGSTOP, thawed with SIGCONT, and starved of CPU
// through a cgroup v1 CPU quota.
package libvirt

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/fencedhq/fenced/integration/internal/harness"
	"github.com/fencedhq/fenced/pkg/hypervisor"
)

type daemon struct {
	pid int
	uri string
}

// startLibvirtd runs libvirtd with every connection driver but qemu (which
// needs the libvirt-qemu user of libvirt-daemon-system), TCP on a free
// loopback port without auth; the test driver inside it serves test:///default.
func startLibvirtd(t *testing.T) daemon {
	t.Helper()
	bin, err := exec.LookPath("libvirtd")
	if err != nil {
		if _, err2 := os.Stat("/usr/sbin/libvirtd"); err2 != nil {
			t.Fatal("libvirtd not found: install Debian's libvirt-daemon (make deps does)")
		}
		bin = "/usr/sbin/libvirtd"
	}
	dir, err := os.MkdirTemp("", "fenced-lv-") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	drivers := filepath.Join(dir, "drivers")
	sock := filepath.Join(dir, "sock")
	for _, d := range []string{drivers, sock} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	matches, _ := filepath.Glob("/usr/lib/*/libvirt/connection-driver/*.so")
	for _, m := range matches {
		if !strings.Contains(filepath.Base(m), "qemu") {
			_ = os.Symlink(m, filepath.Join(drivers, filepath.Base(m)))
		}
	}
	port := harness.FreePort(t)
	conf := filepath.Join(dir, "libvirtd.conf")
	err = os.WriteFile(conf, []byte(fmt.Sprintf(`unix_sock_dir = %q
unix_sock_ro_perms = "0777"
unix_sock_rw_perms = "0770"
auth_unix_rw = "none"
auth_unix_ro = "none"
listen_tls = 0
listen_tcp = 1
listen_addr = "127.0.0.1"
tcp_port = "%d"
auth_tcp = "none"
log_level = 3
log_outputs = "3:file:%s"
`, sock, port, filepath.Join(dir, "libvirtd.log"))), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(dir, "libvirtd.pid")
	cmd := exec.Command(bin, "--listen", "-f", conf, "-p", pidFile)
	cmd.Env = append(os.Environ(), "LIBVIRT_DRIVER_DIR="+drivers)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start libvirtd: %v", err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(cmd.Process.Pid, syscall.SIGCONT)
		_ = syscall.Kill(cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
	uri := fmt.Sprintf("test+tcp://127.0.0.1:%d/default", port)
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, err := exec.Command("virsh", "-c", uri, "list", "--all").CombinedOutput()
		if err == nil && strings.Contains(string(out), "test") {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "libvirtd.log"))
			t.Fatalf("libvirtd not answering at %s: %v %s\nlog:\n%s", uri, err, out, log)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return daemon{pid: cmd.Process.Pid, uri: uri}
}

func probe(t *testing.T, d daemon, mod func(*hypervisor.ProbeConfig)) *hypervisor.Probe {
	t.Helper()
	cfg := hypervisor.ProbeConfig{Host: "cmp-017", URI: d.uri, CallTimeout: time.Second, KeepAlive: 1, KeepAliveCount: 2,
		LatencyWindow: 10 * time.Second, TimeoutWindow: 10 * time.Second, Log: zerolog.Nop()}
	if mod != nil {
		mod(&cfg)
	}
	p, err := hypervisor.NewProbe(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func gate(p *hypervisor.Probe) *hypervisor.Gate {
	return &hypervisor.Gate{Probes: map[string]*hypervisor.Probe{"cmp-017": p}, Log: zerolog.Nop(),
		Config: hypervisor.GateConfig{MaxSilence: 3 * time.Second},
		Destinations: func(context.Context, string) ([]hypervisor.Destination, hypervisor.Need, error) {
			return []hypervisor.Destination{{Host: "cmp-002", State: "normal", FreeVCPUs: 32, FreeRAMMB: 1 << 17}}, hypervisor.Need{VCPUs: 8, RAMMB: 8192}, nil
		}}
}

// tick drives the probe every interval for d.
func tick(p *hypervisor.Probe, every, d time.Duration) {
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		p.Tick(time.Now())
		time.Sleep(every)
	}
}

func TestFreezeThawAndGate(t *testing.T) {
	d := startLibvirtd(t)
	p := probe(t, d, nil)
	g := gate(p)
	tick(p, 200*time.Millisecond, 2*time.Second)
	st := p.Stats(time.Now())
	if st.Samples < 3 || st.TimeoutPct != 0 || st.P95 > 100*time.Millisecond {
		t.Fatalf("healthy daemon: %+v", st)
	}
	if a := g.Check(context.Background(), "cmp-017"); !a.Allowed || a.Destination != "cmp-002" {
		t.Fatalf("healthy: gate closed: %v", a.Reasons)
	}

	// SIGSTOP: the probe must see timeouts within its bound without piling up goroutines
	base := runtime.NumGoroutine()
	if err := syscall.Kill(d.pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	frozen := time.Now()
	var detected time.Duration
	for time.Since(frozen) < 6*time.Second {
		p.Tick(time.Now())
		if detected == 0 && p.Stats(time.Now()).TimeoutPct > 0 {
			detected = time.Since(frozen)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if detected == 0 || detected > 2*time.Second {
		t.Fatalf("frozen daemon detected after %s, want within the 1 s call timeout plus a tick", detected)
	}
	t.Logf("frozen libvirtd detected %s after SIGSTOP", detected.Round(10*time.Millisecond))
	if a := g.Check(context.Background(), "cmp-017"); a.Allowed {
		t.Fatal("gate open while libvirtd is frozen")
	}
	if n := runtime.NumGoroutine(); n > base+5 {
		t.Fatalf("goroutines grew from %d to %d over 60 ticks of a frozen daemon", base, n)
	}

	// SIGCONT: the probe reconnects and the gate opens again once timeouts age out
	if err := syscall.Kill(d.pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	thawed := time.Now()
	deadline := time.Now().Add(30 * time.Second)
	for {
		p.Tick(time.Now())
		if st := p.Stats(time.Now()); st.LastAnswer.After(thawed) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("probe never recovered after SIGCONT: %+v", p.Stats(time.Now()))
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("probe answered again %s after SIGCONT", time.Since(thawed).Round(10*time.Millisecond))
	tick(p, 200*time.Millisecond, 11*time.Second) // the 10 s windows forget the freeze
	if a := g.Check(context.Background(), "cmp-017"); !a.Allowed {
		t.Fatalf("gate still closed after recovery: %v", a.Reasons)
	}
}

// cgroupV1 returns the cgroup v1 cpu controller's mount, if writable.
func cgroupV1() string {
	for _, d := range []string{"/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"} {
		if _, err := os.Stat(filepath.Join(d, "cpu.cfs_quota_us")); err == nil {
			return d
		}
	}
	return ""
}

// starve puts every thread of pid in a cgroup limited to quota µs per period µs.
func starve(t *testing.T, pid int, quota, period int) func() {
	t.Helper()
	root := cgroupV1()
	if root == "" {
		t.Fatal("no cgroup v1 cpu controller here (cgroup v2 has no cpu controller on this machine either): cannot starve libvirtd")
	}
	cg := filepath.Join(root, fmt.Sprintf("fenced-test-%d", os.Getpid()))
	if err := os.MkdirAll(cg, 0o755); err != nil {
		t.Fatalf("create cgroup: %v", err)
	}
	write := func(f, v string) {
		if err := os.WriteFile(filepath.Join(cg, f), []byte(v), 0o644); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	write("cpu.cfs_period_us", strconv.Itoa(period))
	write("cpu.cfs_quota_us", strconv.Itoa(quota))
	write("cgroup.procs", strconv.Itoa(pid))
	return func() {
		_ = os.WriteFile(filepath.Join(root, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644)
		for i := 0; i < 20; i++ {
			if os.Remove(cg) == nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func TestCPUStarvationRaisesLatency(t *testing.T) {
	d := startLibvirtd(t)
	p := probe(t, d, func(c *hypervisor.ProbeConfig) { c.CallTimeout = 5 * time.Second; c.LatencyWindow = time.Minute })
	tick(p, 100*time.Millisecond, time.Second)
	before := p.Stats(time.Now()).P95
	undo := starve(t, d.pid, 1000, 1000000) // 1 ms of CPU per second
	defer undo()
	// sequential probes, as the tick does: each waits for the previous one
	end := time.Now().Add(15 * time.Second)
	for time.Now().Before(end) {
		p.Tick(time.Now())
		time.Sleep(50 * time.Millisecond)
	}
	st := p.Stats(time.Now())
	t.Logf("libvirt p95 %s before, %s under a 1 ms/1 s CPU quota (%d calls)", before, st.P95, st.Samples)
	if st.P95 < 200*time.Millisecond {
		t.Fatalf("p95 %s under starvation did not cross the 200 ms warn threshold", st.P95)
	}
	if a := gate(p).Check(context.Background(), "cmp-017"); a.Allowed {
		t.Fatal("gate open under CPU starvation")
	}
}

// TestLatencyCurve measures the probe's latency under several CPU quotas.
// It runs with FENCED_LIBVIRT_CURVE=1 (about 90 s); docs/hypervisor.md has
// the table.
func TestLatencyCurve(t *testing.T) {
	if os.Getenv("FENCED_LIBVIRT_CURVE") == "" {
		t.Skip("set FENCED_LIBVIRT_CURVE=1 to measure the latency curve (about 90 s)")
	}
	d := startLibvirtd(t)
	t.Log("| CPU quota of libvirtd | calls | p50 | p95 | p99 | gate |")
	for _, q := range []struct{ quota, period int }{{0, 0}, {10000, 100000}, {2000, 100000}, {1000, 100000}, {10000, 1000000}, {2000, 1000000}, {1000, 1000000}} {
		p := probe(t, d, func(c *hypervisor.ProbeConfig) { c.CallTimeout = 5 * time.Second; c.LatencyWindow = time.Minute })
		undo := func() {}
		label := "none"
		if q.quota > 0 {
			undo = starve(t, d.pid, q.quota, q.period)
			label = fmt.Sprintf("%g ms / %g ms", float64(q.quota)/1000, float64(q.period)/1000)
		}
		end := time.Now().Add(12 * time.Second)
		for time.Now().Before(end) {
			p.Tick(time.Now())
			time.Sleep(20 * time.Millisecond)
		}
		st := p.Stats(time.Now())
		open := "open"
		if a := gate(p).Check(context.Background(), "cmp-017"); !a.Allowed {
			open = "closed"
		}
		undo()
		t.Logf("| %s | %d | %s | %s | %s | %s |", label, st.Samples, st.P50.Round(10*time.Microsecond), st.P95.Round(10*time.Microsecond), st.P99.Round(10*time.Microsecond), open)
		p.Close()
	}
}

func TestRunWithLibvirtProbe(t *testing.T) {
	d := startLibvirtd(t)
	bin := harness.Fenced(t)
	port := harness.FreePort(t)
	cfg := filepath.Join(t.TempDir(), "fenced.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("listen: 127.0.0.1:%d\ntick: 1s\nlibvirt:\n  uris: {cmp-017: %q}\n  call_timeout: 1s\n", port, d.uri)), 0o644); err != nil {
		t.Fatal(err)
	}
	harness.Start(t, bin, "run", "--config", cfg, "--log-json")
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	harness.WaitHTTP(t, base+"/healthz", 30*time.Second)
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, _ := exec.Command(bin, "host", "cmp-017", "--server", base).CombinedOutput()
		if strings.Contains(string(out), "libvirt_latency_p95_ms") && strings.Contains(string(out), "libvirt_timeout_pct") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("fenced host shows no libvirt signals:\n%s", out)
		}
		time.Sleep(300 * time.Millisecond)
	}
}
