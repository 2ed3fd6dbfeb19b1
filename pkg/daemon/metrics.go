package daemon

import (
	"sort"
	"sync"
	"time"

	"github.com/fencedhq/fenced/pkg/signals"
)

// LatencyBuckets are the upper bounds (seconds) of the action latency histogram.
var LatencyBuckets = []float64{0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300}

// Histogram is a cumulative latency histogram per action and outcome.
type Histogram struct {
	Action  string    `json:"action"`
	Outcome string    `json:"outcome"`
	Buckets []float64 `json:"-"` // upper bounds
	Counts  []int64   `json:"counts"`
	Count   int64     `json:"count"`
	Sum     float64   `json:"sum_seconds"`
}

type histograms struct {
	mu sync.Mutex
	h  map[[2]string]*Histogram
}

// ObserveAction records an action's latency; the playbook's Actor calls it.
func (d *Daemon) ObserveAction(action string, took time.Duration, err error) {
	d.hist.mu.Lock()
	defer d.hist.mu.Unlock()
	if d.hist.h == nil {
		d.hist.h = map[[2]string]*Histogram{}
	}
	k := [2]string{action, outcome(err)}
	h := d.hist.h[k]
	if h == nil {
		h = &Histogram{Action: action, Outcome: k[1], Buckets: LatencyBuckets, Counts: make([]int64, len(LatencyBuckets))}
		d.hist.h[k] = h
	}
	sec := took.Seconds()
	for i, b := range h.Buckets {
		if sec <= b {
			h.Counts[i]++
		}
	}
	h.Count++
	h.Sum += sec
}

// ActionLatencies returns copies of the histograms, sorted.
func (d *Daemon) ActionLatencies() []Histogram {
	d.hist.mu.Lock()
	defer d.hist.mu.Unlock()
	out := make([]Histogram, 0, len(d.hist.h))
	for _, h := range d.hist.h {
		c := *h
		c.Counts = append([]int64(nil), h.Counts...)
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Action != out[j].Action {
			return out[i].Action < out[j].Action
		}
		return out[i].Outcome < out[j].Outcome
	})
	return out
}

// selfMonitor is what a Source may tell about itself.
type selfMonitor interface {
	Status() []signals.CollectorStatus
	SignalAges() map[signals.Name]time.Duration
}
