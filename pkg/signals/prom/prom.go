// Package prom collects execution-plane signals from Prometheus with one
// PromQL instant query per signal. Each result series becomes a sample for
// the Nova host named by its host label. A Prometheus that does not answer
// yields an error and no samples, so the affected signals go stale (and a
// host with nothing else becomes blind) — never healthy.
package prom

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/fencedhq/fenced/pkg/signals"
)

// DefaultQueries read standard exporters: node_exporter for steal, run queue
// and disk latency; kubelet for pod start delay and evictions; a process
// exporter (namedprocess) for the management daemons' CPU. The disk query is
// the mean read latency over a minute, the closest node_exporter comes to a
// p99; replace it where a histogram exists.
var DefaultQueries = map[signals.Name]string{
	signals.CPUSteal:        `100 * avg by (instance) (rate(node_cpu_seconds_total{mode="steal"}[1m]))`,
	signals.RunqueuePerCore: `avg_over_time(node_procs_running[30s]) / on (instance) count by (instance) (node_cpu_seconds_total{mode="idle"})`,
	signals.IOLatency:       `1000 * max by (instance) (rate(node_disk_read_time_seconds_total[1m]) / clamp_min(rate(node_disk_reads_completed_total[1m]), 1e-9))`,
	signals.KubeletDelay:    `1000 * histogram_quantile(0.95, sum by (instance, le) (rate(kubelet_pod_start_duration_seconds_bucket[5m])))`,
	signals.PodEvictions:    `60 * sum by (instance) (rate(kubelet_evictions[5m]))`,
	signals.MgmtCPUShare:    `100 * sum by (instance) (rate(namedprocess_namegroup_cpu_seconds_total{groupname=~"nova-compute|libvirtd"}[1m])) / on (instance) count by (instance) (node_cpu_seconds_total{mode="idle"})`,
}

// Config of the collector.
type Config struct {
	URL       string                  // Prometheus base URL, e.g. http://prometheus:9090
	Queries   map[signals.Name]string // nil: DefaultQueries
	HostLabel string                  // label naming the host; default "instance"
	// HostMap maps a label value to a Nova host name. Values not in the map
	// are used as they are, with a ":port" suffix removed.
	HostMap map[string]string
	Timeout time.Duration // per query; default 3 s
	Client  *http.Client
}

// Collector queries Prometheus.
type Collector struct {
	cfg   Config
	names []signals.Name
}

var portSuffix = regexp.MustCompile(`:\d+$`)

// New validates the configuration.
func New(cfg Config) (*Collector, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("prom: url %q: want http(s)://host:port", cfg.URL)
	}
	if cfg.Queries == nil {
		cfg.Queries = DefaultQueries
	}
	if cfg.HostLabel == "" {
		cfg.HostLabel = "instance"
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 3 * time.Second
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	c := &Collector{cfg: cfg}
	for n, q := range cfg.Queries {
		if !n.Valid() {
			return nil, fmt.Errorf("prom: queries.%s: unknown signal", n)
		}
		if strings.TrimSpace(q) == "" {
			return nil, fmt.Errorf("prom: queries.%s: empty query", n)
		}
		c.names = append(c.names, n)
	}
	sort.Slice(c.names, func(i, j int) bool { return c.names[i] < c.names[j] })
	return c, nil
}

// Name is "prometheus".
func (c *Collector) Name() string { return "prometheus" }

// Host maps a label value to a Nova host name.
func (c *Collector) Host(label string) string {
	if h, ok := c.cfg.HostMap[label]; ok {
		return h
	}
	return portSuffix.ReplaceAllString(label, "")
}

type apiReply struct {
	Status    string `json:"status"`
	ErrorType string `json:"errorType"`
	Error     string `json:"error"`
	Data      struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		} `json:"result"`
	} `json:"data"`
}

// Collect runs every query at now. Queries that fail are reported in the
// error; the others' samples are returned.
func (c *Collector) Collect(ctx context.Context, now time.Time) ([]signals.Sample, error) {
	var out []signals.Sample
	var errs []error
	for _, n := range c.names {
		smp, err := c.query(ctx, n, now)
		if err != nil {
			errs = append(errs, fmt.Errorf("prom: %s: %w", n, err))
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
				break // the whole collection ran out of time
			}
			continue
		}
		out = append(out, smp...)
	}
	return out, errors.Join(errs...)
}

func (c *Collector) query(ctx context.Context, n signals.Name, now time.Time) ([]signals.Sample, error) {
	qctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	v := url.Values{}
	v.Set("query", c.cfg.Queries[n])
	v.Set("time", strconv.FormatFloat(float64(now.UnixMilli())/1000, 'f', 3, 64))
	v.Set("timeout", c.cfg.Timeout.String())
	req, err := http.NewRequestWithContext(qctx, http.MethodGet, strings.TrimRight(c.cfg.URL, "/")+"/api/v1/query?"+v.Encode(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.cfg.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return nil, err
	}
	var rep apiReply
	if err := json.Unmarshal(body, &rep); err != nil {
		return nil, fmt.Errorf("HTTP %d: not a Prometheus API reply: %w", resp.StatusCode, err)
	}
	if rep.Status != "success" {
		return nil, fmt.Errorf("HTTP %d: %s: %s", resp.StatusCode, rep.ErrorType, rep.Error)
	}
	if rep.Data.ResultType != "vector" {
		return nil, fmt.Errorf("query returns a %s, want an instant vector", rep.Data.ResultType)
	}
	var out []signals.Sample
	for _, r := range rep.Data.Result {
		label, ok := r.Metric[c.cfg.HostLabel]
		if !ok {
			continue // a series that names no host cannot be attributed
		}
		s, _ := r.Value[1].(string)
		val, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(val) || math.IsInf(val, 0) { // no data yet (a rate over one point, an empty histogram)
			continue
		}
		out = append(out, signals.Sample{Host: c.Host(label), Signal: n, Value: val, At: now})
	}
	return out, nil
}
