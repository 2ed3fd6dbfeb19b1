package signals

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Collector produces samples. Collectors are plugins: each is registered
// explicitly, in order, in a Registry.
type Collector interface {
	Name() string
	Collect(ctx context.Context, now time.Time) ([]Sample, error)
}

// CollectorStatus is a collector's self-monitoring.
type CollectorStatus struct {
	Name        string        `json:"name"`
	LastRun     time.Time     `json:"last_run,omitzero"`
	LastSuccess time.Time     `json:"last_success,omitzero"`
	LastError   string        `json:"last_error,omitempty"`
	Duration    time.Duration `json:"duration"`
	Samples     int           `json:"samples"`
	Skipped     int64         `json:"skipped"` // ticks skipped because the previous collection was still running
	Failures    int64         `json:"failures"`
}

type slot struct {
	c        Collector
	mu       sync.Mutex
	inFlight bool
	status   CollectorStatus
	results  chan result
}

type result struct {
	samples []Sample
	err     error
	dur     time.Duration
	at      time.Time
}

// Registry runs collectors: concurrently with each other, at most one
// collection in flight per collector, each bounded by Timeout. A collection
// that outlives its timeout is not waited for; its tick gets nothing from
// that collector (its signals go stale, never healthy), and the collector is
// skipped until the late call returns.
type Registry struct {
	Timeout time.Duration // per collection; default 5 s
	slots   []*slot

	mu       sync.Mutex
	newest   map[Name]time.Time // newest sample per signal, for scrape age
	lastNow  time.Time
	duration *prometheus.HistogramVec // RegisterMetrics; nil: none
}

// Register adds a collector; names must be unique.
func (r *Registry) Register(c Collector) error {
	for _, s := range r.slots {
		if s.c.Name() == c.Name() {
			return fmt.Errorf("signals: collector %q registered twice", c.Name())
		}
	}
	r.slots = append(r.slots, &slot{c: c, status: CollectorStatus{Name: c.Name()}})
	return nil
}

// Collect runs every collector once and returns all samples. The error joins
// the collectors' errors; samples from the others are still returned.
func (r *Registry) Collect(ctx context.Context, now time.Time) ([]Sample, error) {
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	type pending struct {
		s  *slot
		ch chan result
	}
	var waits []pending
	for _, s := range r.slots {
		s.mu.Lock()
		if s.inFlight {
			s.status.Skipped++
			s.mu.Unlock()
			continue
		}
		s.inFlight = true
		s.status.LastRun = now
		s.mu.Unlock()
		ch := make(chan result, 1)
		go func(s *slot) {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
			defer cancel()
			start := time.Now()
			smp, err := s.c.Collect(cctx, now)
			res := result{samples: smp, err: err, dur: time.Since(start), at: now}
			r.observe(s.c.Name(), res.dur.Seconds())
			s.mu.Lock()
			s.inFlight = false
			s.status.Duration = res.dur
			if err != nil {
				s.status.Failures++
				s.status.LastError = err.Error()
			} else {
				s.status.LastSuccess, s.status.LastError, s.status.Samples = now, "", len(smp)
			}
			s.mu.Unlock()
			ch <- res
		}(s)
		waits = append(waits, pending{s, ch})
	}
	var out []Sample
	var errs []error
	deadline := time.NewTimer(timeout + 100*time.Millisecond)
	defer deadline.Stop()
	for _, w := range waits {
		select {
		case res := <-w.ch:
			if res.err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", w.s.c.Name(), res.err))
			}
			out = append(out, res.samples...)
		case <-deadline.C:
			errs = append(errs, fmt.Errorf("%s: no answer within %s", w.s.c.Name(), timeout))
		case <-ctx.Done():
			return out, ctx.Err()
		}
	}
	r.mu.Lock()
	if r.newest == nil {
		r.newest = map[Name]time.Time{}
	}
	for _, s := range out {
		if s.At.After(r.newest[s.Signal]) {
			r.newest[s.Signal] = s.At
		}
	}
	r.lastNow = now
	r.mu.Unlock()
	return out, errors.Join(errs...)
}

// Status returns every collector's self-monitoring, in registration order.
func (r *Registry) Status() []CollectorStatus {
	out := make([]CollectorStatus, 0, len(r.slots))
	for _, s := range r.slots {
		s.mu.Lock()
		out = append(out, s.status)
		s.mu.Unlock()
	}
	return out
}

// SignalAges returns, per signal, how old the newest sample was at the last
// collection (scrape age). Signals never seen are absent.
func (r *Registry) SignalAges() map[Name]time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[Name]time.Duration{}
	for n, t := range r.newest {
		out[n] = r.lastNow.Sub(t)
	}
	return out
}

// Names lists the registered collectors in order.
func (r *Registry) Names() []string {
	var out []string
	for _, s := range r.slots {
		out = append(out, s.c.Name())
	}
	return out
}
