// Package prometheus tests the Prometheus collector end to end: Debian's
// prometheus scraping Debian's node_exporter and a scripted exporter of ours
// (for signals no local exporter produces: steal, kubelet), on loopback.
package prometheus

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fencedhq/fenced/integration/internal/harness"
	"github.com/fencedhq/fenced/pkg/signals"
	"github.com/fencedhq/fenced/pkg/signals/prom"
)

// scripted serves counters that grow at rates the test sets.
type scripted struct {
	mu        sync.Mutex
	stealRate float64 // CPU-seconds of steal per second, per CPU
	steal     float64
	evictions float64
	last      time.Time
}

func (s *scripted) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	now := time.Now()
	if !s.last.IsZero() {
		s.steal += s.stealRate * now.Sub(s.last).Seconds()
	}
	s.last = now
	steal, ev := s.steal, s.evictions
	s.mu.Unlock()
	fmt.Fprintf(w, "# TYPE node_cpu_seconds_total counter\nnode_cpu_seconds_total{cpu=\"0\",mode=\"steal\"} %g\nnode_cpu_seconds_total{cpu=\"0\",mode=\"idle\"} 1\n", steal)
	fmt.Fprintf(w, "# TYPE kubelet_evictions counter\nkubelet_evictions{eviction_signal=\"memory.available\"} %g\n", ev)
}

func (s *scripted) set(rate, evictions float64) {
	s.mu.Lock()
	s.stealRate, s.evictions = rate, evictions
	s.mu.Unlock()
}

func need(t *testing.T, bins ...string) {
	t.Helper()
	for _, b := range bins {
		if _, err := exec.LookPath(b); err != nil {
			t.Fatalf("%s not found: install Debian's prometheus, prometheus-node-exporter and stress-ng (make deps does)", b)
		}
	}
}

type stack struct {
	promURL string
	prom    *harness.Proc
	exp     *scripted
}

// startStack brings up node_exporter, the scripted exporter and
// Prometheus; extra is appended to Prometheus's config (rule_files,
// alerting).
func startStack(t *testing.T, extra ...string) *stack {
	t.Helper()
	need(t, "prometheus", "prometheus-node-exporter", "stress-ng")
	dir := t.TempDir()
	nodePort := harness.FreePort(t)
	harness.Start(t, "prometheus-node-exporter", fmt.Sprintf("--web.listen-address=127.0.0.1:%d", nodePort),
		"--collector.disable-defaults", "--collector.cpu", "--collector.stat", "--collector.diskstats", "--collector.loadavg")
	harness.WaitHTTP(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", nodePort), 20*time.Second)

	exp := &scripted{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: exp, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	// both targets belong to Nova host cmp-001 (label host); the scripted one
	// also carries an instance of its own
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: node
    static_configs:
      - targets: ["127.0.0.1:%d"]
        labels: {host: cmp-001}
  - job_name: scripted
    static_configs:
      - targets: ["%s"]
        labels: {host: cmp-002}
`, nodePort, ln.Addr()) + strings.Join(extra, "")
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	promPort := harness.FreePort(t)
	p := harness.Start(t, "prometheus", "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", promPort))
	url := fmt.Sprintf("http://127.0.0.1:%d", promPort)
	harness.WaitHTTP(t, url+"/-/ready", 60*time.Second)
	return &stack{promURL: url, prom: p, exp: exp}
}

func collector(t *testing.T, url string) *prom.Collector {
	t.Helper()
	q := map[signals.Name]string{
		signals.CPUSteal:        `100 * avg by (host) (rate(node_cpu_seconds_total{mode="steal"}[5s]))`,
		signals.RunqueuePerCore: `max_over_time(node_procs_running[3s]) / on (host) count by (host) (node_cpu_seconds_total{mode="idle"})`,
		signals.PodEvictions:    `60 * sum by (host) (rate(kubelet_evictions[5s]))`,
	}
	c, err := prom.New(prom.Config{URL: url, Queries: q, HostLabel: "host", Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// poll collects until cond holds for the samples, or fails after timeout.
func poll(t *testing.T, c *prom.Collector, timeout time.Duration, what string, cond func(map[string]float64) bool) map[string]float64 {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last map[string]float64
	for time.Now().Before(deadline) {
		smp, _ := c.Collect(context.Background(), time.Now())
		last = map[string]float64{}
		for _, s := range smp {
			last[s.Host+"/"+string(s.Signal)] = s.Value
		}
		if cond(last) {
			return last
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("%s: not seen within %s; last samples %v", what, timeout, last)
	return nil
}

func TestRealPromQLEndToEnd(t *testing.T) {
	st := startStack(t)
	c := collector(t, st.promURL)

	// scripted steal of 0.3 CPU-s/s on one CPU = 30 %
	st.exp.set(0.3, 0)
	got := poll(t, c, 30*time.Second, "scripted steal", func(m map[string]float64) bool {
		v, ok := m["cmp-002/cpu_steal_pct"]
		return ok && v > 25 && v < 35
	})
	if _, ok := got["cmp-001/runqueue_per_core"]; !ok {
		t.Fatalf("node_exporter's run queue missing: %v", got)
	}
	base := got["cmp-001/runqueue_per_core"]

	// stress-ng puts 4 busy workers per core on this machine: the real run queue rises
	cores := float64(countCPU())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stress := exec.CommandContext(ctx, "stress-ng", "--cpu", fmt.Sprint(int(4*cores)), "--timeout", "25s", "--quiet")
	if err := stress.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = stress.Wait() }()
	got = poll(t, c, 25*time.Second, "stress-ng run queue", func(m map[string]float64) bool {
		return m["cmp-001/runqueue_per_core"] >= base+1.5
	})
	t.Logf("run queue per core: idle %.2f, under stress-ng %.2f (cores %.0f)", base, got["cmp-001/runqueue_per_core"], cores)
	cancel()

	// the evaluator sees the scripted host over the steal warn threshold
	ev, err := signals.NewEvaluator(signals.Config{DWarn: 0.4, DCrit: 0.7, StaleAfter: 3 * time.Second, Signals: map[signals.Name]signals.SignalConfig{
		signals.CPUSteal: {Warn: 10, Crit: 25, Weight: 1, Agg: signals.AggLast},
	}})
	if err != nil {
		t.Fatal(err)
	}
	smp, _ := c.Collect(context.Background(), time.Now())
	for _, s := range smp {
		_ = ev.Observe(s)
	}
	now := time.Now()
	if v := ev.Evaluate("cmp-002", now); v.Blind || v.Level != signals.LevelCritical {
		t.Fatalf("30 %% steal should be critical: %+v", v)
	}

	// Prometheus goes away: the collector reports an error and nothing else;
	// once stale, the host is blind, not healthy
	_ = st.prom.Cmd.Process.Kill()
	_ = st.prom.Cmd.Wait()
	smp, err = c.Collect(context.Background(), time.Now())
	if err == nil || len(smp) != 0 {
		t.Fatalf("down Prometheus: %d samples, err %v", len(smp), err)
	}
	if v := ev.Evaluate("cmp-002", now.Add(5*time.Second)); !v.Blind {
		t.Fatalf("host with only stale signals must be blind: %+v", v)
	}
}

func countCPU() int {
	n := 0
	b, _ := os.ReadFile("/proc/cpuinfo")
	for i := 0; i+9 < len(b); i++ {
		if string(b[i:i+9]) == "processor" && (i == 0 || b[i-1] == '\n') {
			n++
		}
	}
	return max(n, 1)
}

func TestRunWithConfigShowsRealVerdicts(t *testing.T) {
	st := startStack(t)
	st.exp.set(0.3, 0)
	dir := t.TempDir()
	port := harness.FreePort(t)
	cfg := fmt.Sprintf(`api:
  listen: 127.0.0.1:%d
tick: 1s
etcd:
  embedded: {data_dir: %s}
prometheus:
  url: %s
  host_label: host
  queries:
    cpu_steal_pct: '100 * avg by (host) (rate(node_cpu_seconds_total{mode="steal"}[5s]))'
    runqueue_per_core: 'max_over_time(node_procs_running[3s]) / on (host) count by (host) (node_cpu_seconds_total{mode="idle"})'
`, port, filepath.Join(dir, "etcd"), st.promURL)
	path := filepath.Join(dir, "fenced.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := harness.Fenced(t)
	harness.Start(t, bin, "run", "--config", path, "--mode", "observe", "--log-json")
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	harness.WaitHTTP(t, base+"/healthz", 20*time.Second)

	deadline := time.Now().Add(40 * time.Second)
	var out []byte
	for time.Now().Before(deadline) {
		out, _ = exec.Command(bin, "hosts", "--server", base).CombinedOutput()
		if bytesContain(out, "cmp-002") && bytesContain(out, "cpu_steal_pct=") && bytesContain(out, "cmp-001") && bytesContain(out, "runqueue_per_core=") {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if !bytesContain(out, "cpu_steal_pct=") || !bytesContain(out, "runqueue_per_core=") {
		t.Fatalf("fenced hosts shows no real verdicts:\n%s", out)
	}
	t.Logf("fenced hosts:\n%s", out)
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`fenced_signal_age_seconds{signal="cpu_steal_pct"}`, `fenced_collector_failures_total{collector="prometheus"} 0`, `fenced_tick_drift_seconds`} {
		if !bytesContain(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// acting without nova: and bmc: sections is refused, naming what is missing
	bad := filepath.Join(dir, "act.yaml")
	_ = os.WriteFile(bad, []byte(cfg), 0o644)
	if out, err := exec.Command(bin, "run", "--config", bad, "--mode", "auto").CombinedOutput(); err == nil || !bytesContain(out, "add a nova: section") {
		t.Fatalf("run --mode auto without Nova/BMC: %v %s", err, out)
	}
}

func bytesContain(b []byte, s string) bool { return strings.Contains(string(b), s) }
