package chaos

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/fencedhq/fenced/integration/internal/harness"
)

// hostState is what the exporter says of a host.
type hostState int

const (
	stateHealthy  hostState = iota
	stateStarving           // CPU steal, run queue, kubelet and I/O latency far over critical
	stateOff                // powered off: no series
	stateHidden             // series gone while the host runs (the exporter lost it)
)

// exporter serves per-host execution metrics for Prometheus to scrape, one
// series per host and signal (label host).
type exporter struct {
	addr string
	srv  *http.Server
	mu   sync.Mutex
	st   map[string]hostState
}

// the PromQL of each signal fenced reads (the config's prometheus.queries)
var promQueries = map[string]string{
	"cpu_steal_pct":              "chaos_cpu_steal_pct",
	"runqueue_per_core":          "chaos_runqueue_per_core",
	"kubelet_sched_delay_p95_ms": "chaos_kubelet_sched_delay_p95_ms",
	"io_latency_p99_ms":          "chaos_io_latency_p99_ms",
}

var values = map[hostState][4]float64{
	stateHealthy:  {1, 0.5, 40, 4},
	stateStarving: {60, 9, 3000, 900},
}

func startExporter(hs []string) (*exporter, error) {
	e := &exporter{st: map[string]hostState{}}
	for _, h := range hs {
		e.st[h] = stateHealthy
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	e.addr = ln.Addr().String()
	e.srv = &http.Server{Handler: http.HandlerFunc(e.serve), ReadHeaderTimeout: 5 * time.Second}
	go e.srv.Serve(ln)
	return e, nil
}

func (e *exporter) serve(w http.ResponseWriter, _ *http.Request) {
	e.mu.Lock()
	names := make([]string, 0, len(e.st))
	for h := range e.st {
		names = append(names, h)
	}
	sort.Strings(names)
	var b strings.Builder
	for i, m := range []string{"chaos_cpu_steal_pct", "chaos_runqueue_per_core", "chaos_kubelet_sched_delay_p95_ms", "chaos_io_latency_p99_ms"} {
		fmt.Fprintf(&b, "# TYPE %s gauge\n", m)
		for _, h := range names {
			if v, ok := values[e.st[h]]; ok {
				fmt.Fprintf(&b, "%s{host=%q} %g\n", m, h, v[i])
			}
		}
	}
	e.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	_, _ = w.Write([]byte(b.String()))
}

func (e *exporter) set(host string, s hostState) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.st[host] = s
}

func (e *exporter) get(host string) hostState {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.st[host]
}

func (e *exporter) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = e.srv.Shutdown(ctx)
}

// startPrometheus runs Debian's Prometheus scraping the exporter every second.
func startPrometheus(dir, target string) (string, *harness.Proc, error) {
	if _, err := exec.LookPath("prometheus"); err != nil {
		return "", nil, fmt.Errorf("prometheus not found: install Debian's prometheus (integration/deps/chaos.txt; make deps does)")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", nil, err
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: chaos
    static_configs:
      - targets: [%q]
`, target)
	path := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return "", nil, err
	}
	port, err := harness.PickPort()
	if err != nil {
		return "", nil, err
	}
	p, err := harness.Spawn(nil, "prometheus", "--config.file="+path, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port), "--log.level=warn")
	if err != nil {
		return "", nil, err
	}
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(url + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return url, p, nil
			}
		}
		if time.Now().After(deadline) {
			p.Stop()
			return "", nil, fmt.Errorf("prometheus not ready within 60s: %v\n%s", err, tail(p.Output(), 2000))
		}
		time.Sleep(200 * time.Millisecond)
	}
}
