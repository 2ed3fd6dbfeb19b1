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
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/fencedhq/fenced/integration/internal/harness"
	"github.com/fencedhq/fenced/pkg/hypervisor"
)

func probe(t *testing.T, d harness.Libvirtd, mod func(*hypervisor.ProbeConfig)) *hypervisor.Probe {
	t.Helper()
	cfg := hypervisor.ProbeConfig{Host: "cmp-017", URI: d.URI, CallTimeout: time.Second, KeepAlive: 1, KeepAliveCount: 2,
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
		Candidates: func(context.Context, string) ([]hypervisor.Destination, error) {
			return []hypervisor.Destination{{Host: "cmp-002", State: "normal"}}, nil
		},
		Headroom: func(context.Context, string) (int, int, error) { return 32, 1 << 17, nil },
		Need: func(context.Context, string) (hypervisor.Need, error) {
			return hypervisor.Need{VCPUs: 8, RAMMB: 8192}, nil
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
	d := harness.StartLibvirtd(t)
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
	if lv := p.Liveness(); !lv.Probed || !lv.Answered || lv.Failures != 0 {
		t.Fatalf("healthy: liveness %+v, want answered with no failures", lv)
	}

	// SIGSTOP: the probe must see timeouts within its bound without piling up goroutines
	base := runtime.NumGoroutine()
	if err := syscall.Kill(d.PID, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	frozen := time.Now()
	var detected, third time.Duration
	for time.Since(frozen) < 6*time.Second {
		p.Tick(time.Now())
		if detected == 0 && p.Stats(time.Now()).TimeoutPct > 0 {
			detected = time.Since(frozen)
		}
		if third == 0 && p.Liveness().Failures >= 3 {
			third = time.Since(frozen) // the hard-failure rule's libvirt evidence, at 100 ms ticks
		}
		time.Sleep(100 * time.Millisecond)
	}
	if lv := p.Liveness(); lv.Failures < 30 {
		t.Fatalf("frozen for 6 s of 100 ms ticks: liveness %+v, want a failure for (nearly) every tick past the 1 s timeout", lv)
	}
	t.Logf("three failed probes in a row %s after SIGSTOP", third.Round(10*time.Millisecond))
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
	if err := syscall.Kill(d.PID, syscall.SIGCONT); err != nil {
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
	if lv := p.Liveness(); lv.Failures != 0 {
		t.Fatalf("after an answer: liveness %+v, want the failures reset", lv)
	}
	tick(p, 200*time.Millisecond, 11*time.Second) // the 10 s windows forget the freeze
	if a := g.Check(context.Background(), "cmp-017"); !a.Allowed {
		t.Fatalf("gate still closed after recovery: %v", a.Reasons)
	}
}

func TestCPUStarvationRaisesLatency(t *testing.T) {
	d := harness.StartLibvirtd(t)
	p := probe(t, d, func(c *hypervisor.ProbeConfig) { c.CallTimeout = 5 * time.Second; c.LatencyWindow = time.Minute })
	tick(p, 100*time.Millisecond, time.Second)
	before := p.Stats(time.Now()).P95
	undo := harness.CPUQuota(t, d.PID, 1000, 1000000) // 1 ms of CPU per second
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
	d := harness.StartLibvirtd(t)
	t.Log("| CPU quota of libvirtd | calls | p50 | p95 | p99 | gate |")
	for _, q := range []struct{ quota, period int }{{0, 0}, {10000, 100000}, {2000, 100000}, {1000, 100000}, {10000, 1000000}, {2000, 1000000}, {1000, 1000000}} {
		p := probe(t, d, func(c *hypervisor.ProbeConfig) { c.CallTimeout = 5 * time.Second; c.LatencyWindow = time.Minute })
		undo := func() {}
		label := "none"
		if q.quota > 0 {
			undo = harness.CPUQuota(t, d.PID, q.quota, q.period)
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
	d := harness.StartLibvirtd(t)
	bin := harness.Fenced(t)
	port := harness.FreePort(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "fenced.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("api: {listen: 127.0.0.1:%d}\ntick: 1s\netcd: {embedded: {data_dir: %s}}\nlibvirt:\n  hosts: {cmp-017: %q}\n  call_timeout: 1s\n",
		port, filepath.Join(dir, "etcd"), d.URI)), 0o644); err != nil {
		t.Fatal(err)
	}
	harness.Start(t, bin, "run", "--config", cfg, "--mode", "observe", "--log-json")
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

// TestKilledDaemonCountsFailures: a libvirtd that is gone (connection
// refused on every reconnect) is a failed probe on every tick, the libvirt
// half of the hard-failure rule.
func TestKilledDaemonCountsFailures(t *testing.T) {
	d := harness.StartLibvirtd(t)
	p := probe(t, d, nil)
	tick(p, 100*time.Millisecond, time.Second)
	if lv := p.Liveness(); !lv.Answered || lv.Failures != 0 {
		t.Fatalf("healthy: liveness %+v", lv)
	}
	if err := syscall.Kill(d.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	var third time.Duration
	for time.Since(killed) < 4*time.Second {
		p.Tick(time.Now())
		if third == 0 && p.Liveness().Failures >= 3 {
			third = time.Since(killed)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if third == 0 || third > 3*time.Second {
		t.Fatalf("killed daemon: three failed probes after %s (liveness %+v), want within 3 s of 100 ms ticks", third, p.Liveness())
	}
	t.Logf("killed libvirtd: three failed probes in a row %s after SIGKILL", third.Round(10*time.Millisecond))
}
