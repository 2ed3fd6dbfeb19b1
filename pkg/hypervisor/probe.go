package hypervisor

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/trace"
	"libvirt.org/go/libvirt"

	"github.com/fencedhq/fenced/internal/metrics"
	"github.com/fencedhq/fenced/internal/obs"
	"github.com/fencedhq/fenced/pkg/clock"
	"github.com/fencedhq/fenced/pkg/signals"
)

var eventLoop sync.Once

// startEventLoop runs libvirt's default event loop once per process:
// keepalive needs it.
func startEventLoop() error {
	var err error
	eventLoop.Do(func() {
		if err = libvirt.EventRegisterDefaultImpl(); err != nil {
			return
		}
		go func() {
			for {
				if e := libvirt.EventRunDefaultImpl(); e != nil {
					time.Sleep(100 * time.Millisecond)
				}
			}
		}()
	})
	return err
}

// ProbeConfig configures one host's probe.
type ProbeConfig struct {
	Host           string
	URI            string        // qemu+tcp://, qemu+tls://, qemu+ssh://, test+tcp:// …
	CallTimeout    time.Duration // a probe slower than this is a timeout; default 2 s
	ConnectTimeout time.Duration // default 5 s
	KeepAlive      int           // keepalive interval, seconds; default 1
	KeepAliveCount uint          // missed keepalives before libvirt closes; default 3
	LatencyWindow  time.Duration // p95 over this; default 1 min
	TimeoutWindow  time.Duration // timeout rate over this; default 5 min
	Clock          clock.Clock
	Log            zerolog.Logger
	// Metrics receives the probes' collectors, shared by every probe on
	// one registerer (nil: none).
	Metrics prometheus.Registerer
	// Tracer receives a span per libvirt call (nil: tracing off).
	Tracer trace.TracerProvider
}

type result struct {
	at      time.Time
	latency time.Duration
	timeout bool
}

// Probe measures one host's libvirt daemon.
type Probe struct {
	cfg ProbeConfig
	m   probeMetrics
	tr  trace.Tracer

	mu         sync.Mutex
	conn       *libvirt.Connect
	connecting bool
	inFlight   bool
	started    time.Time // of the call in flight
	counted    bool      // the call in flight was already counted as a timeout
	results    []result
	lastAnswer time.Time
	lastErr    error
	// failures counts the ticks in a row at which the daemon could not be
	// reached: a call stuck past the timeout, a lost connection, a failed
	// or pending connect. An answer resets it.
	failures int
}

// NewProbe returns a probe; it connects on its first tick.
func NewProbe(cfg ProbeConfig) (*Probe, error) {
	if cfg.URI == "" {
		return nil, fmt.Errorf("hypervisor: %s: no libvirt URI", cfg.Host)
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = 2 * time.Second
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 5 * time.Second
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = 1
	}
	if cfg.KeepAliveCount == 0 {
		cfg.KeepAliveCount = 3
	}
	if cfg.LatencyWindow <= 0 {
		cfg.LatencyWindow = time.Minute
	}
	if cfg.TimeoutWindow <= 0 {
		cfg.TimeoutWindow = 5 * time.Minute
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	m, err := newProbeMetrics(cfg.Metrics)
	if err != nil {
		return nil, fmt.Errorf("hypervisor: %w", err)
	}
	if err := startEventLoop(); err != nil {
		return nil, fmt.Errorf("hypervisor: libvirt event loop: %w", err)
	}
	return &Probe{cfg: cfg, m: m, tr: obs.Tracer(cfg.Tracer)}, nil
}

// Tick starts one probe unless one is still in flight, and counts a call
// that outlived its timeout. It never waits for libvirt.
func (p *Probe) Tick(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.trim(now)
	switch {
	case p.inFlight && now.Sub(p.started) > p.cfg.CallTimeout,
		p.conn == nil && p.lastErr != nil:
		p.failures++
	}
	if p.inFlight {
		if !p.counted && now.Sub(p.started) > p.cfg.CallTimeout {
			p.counted = true
			p.m.timeouts.Inc()
			p.results = append(p.results, result{at: now, latency: p.cfg.CallTimeout, timeout: true})
			obs.Line(context.Background(), p.cfg.Log.Warn(), obs.Fields{Component: "libvirt-probe", HostID: p.cfg.Host, Action: "probe"},
				now.Sub(p.started), "timeout").Msg("libvirt call timed out")
		} else if p.counted {
			// still stuck: every tick it stays stuck counts as a timeout
			p.results = append(p.results, result{at: now, latency: p.cfg.CallTimeout, timeout: true})
		}
		return
	}
	if p.conn == nil {
		if !p.connecting {
			p.connecting = true
			go p.connect()
		}
		if now.Sub(p.lastAnswer) > p.cfg.CallTimeout && !p.lastAnswer.IsZero() {
			p.results = append(p.results, result{at: now, latency: p.cfg.CallTimeout, timeout: true})
		}
		return
	}
	p.inFlight, p.started, p.counted = true, now, false
	go p.call(p.conn, now)
}

func (p *Probe) connect() {
	type res struct {
		c   *libvirt.Connect
		err error
	}
	ch := make(chan res, 1)
	go func() { // NewConnect cannot be bounded; a late one is closed when it returns
		c, err := libvirt.NewConnect(p.cfg.URI)
		ch <- res{c, err}
	}()
	var r res
	select {
	case r = <-ch:
	case <-time.After(p.cfg.ConnectTimeout):
		go func() {
			if late := <-ch; late.c != nil {
				late.c.Close()
			}
			p.mu.Lock()
			p.connecting = false
			p.mu.Unlock()
		}()
		p.m.connects.WithLabelValues("timeout").Inc()
		p.mu.Lock()
		p.lastErr = fmt.Errorf("hypervisor: %s: connect %s: no answer within %s", p.cfg.Host, p.cfg.URI, p.cfg.ConnectTimeout)
		p.mu.Unlock()
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.connecting = false
	p.m.connects.WithLabelValues(metrics.Outcome(r.err)).Inc()
	if r.err != nil {
		p.lastErr = fmt.Errorf("hypervisor: %s: connect: %w", p.cfg.Host, r.err)
		return
	}
	if err := r.c.SetKeepAlive(p.cfg.KeepAlive, p.cfg.KeepAliveCount); err != nil {
		p.cfg.Log.Warn().Str("component", "libvirt-probe").Str("host_id", p.cfg.Host).Err(err).Msg("libvirt keepalive not set")
	}
	p.conn = r.c
	p.lastErr = nil
}

func (p *Probe) call(c *libvirt.Connect, started time.Time) {
	begin := time.Now()
	_, call := obs.Start(context.Background(), p.tr, clock.Real{}, "libvirt.probe",
		obs.Fields{Component: "libvirt-probe", HostID: p.cfg.Host, Action: "probe"}, trace.SpanKindClient)
	_, err := c.GetLibVersion()
	if err == nil {
		_, err = c.NumOfDomains()
	}
	took := time.Since(begin)
	p.m.calls.WithLabelValues(metrics.Outcome(err)).Observe(took.Seconds())
	call.End(p.cfg.Log.Debug(), metrics.Outcome(err), err).Msg("libvirt call")
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inFlight = false
	now := p.cfg.Clock.Now()
	if err != nil {
		// a closed connection (keepalive fired, daemon restarted): drop it and reconnect
		p.lastErr = fmt.Errorf("hypervisor: %s: %w", p.cfg.Host, err)
		if p.conn == c {
			p.conn = nil
		}
		go c.Close()
		if !p.counted {
			p.results = append(p.results, result{at: now, latency: took, timeout: true})
		}
		return
	}
	p.lastAnswer, p.failures = now, 0
	if !p.counted {
		p.results = append(p.results, result{at: now, latency: took, timeout: took > p.cfg.CallTimeout})
	}
}

// Forget drops the measurements taken before now: after a power cycle they
// describe a daemon that no longer runs (the evaluator forgets its windows
// too). The time of the last answer is kept.
func (p *Probe) Forget(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := 0
	for i < len(p.results) && p.results[i].at.Before(now) {
		i++
	}
	p.results = append(p.results[:0], p.results[i:]...)
}

func (p *Probe) trim(now time.Time) {
	keep := max(p.cfg.LatencyWindow, p.cfg.TimeoutWindow)
	i := 0
	for i < len(p.results) && now.Sub(p.results[i].at) > keep {
		i++
	}
	if i > 0 {
		p.results = append(p.results[:0], p.results[i:]...)
	}
}

// Stats is the probe's view of the management path.
type Stats struct {
	P50, P99   time.Duration
	P95        time.Duration // latency p95 over the latency window (timeouts count at the timeout)
	TimeoutPct float64       // timed-out or failed calls over the timeout window, percent
	Samples    int           // calls in the latency window
	LastAnswer time.Time     // the daemon last answered a call
	// Failures counts the probes in a row that could not reach the daemon
	// (timed out, connection lost, connect failed); 0 after an answer.
	Failures int
	InFlight bool
	Err      error
}

// Stats computes the current figures.
func (p *Probe) Stats(now time.Time) Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.trim(now)
	st := Stats{LastAnswer: p.lastAnswer, Failures: p.failures, InFlight: p.inFlight, Err: p.lastErr}
	var lat []time.Duration
	total, bad := 0, 0
	for _, r := range p.results {
		if now.Sub(r.at) <= p.cfg.LatencyWindow {
			lat = append(lat, r.latency)
		}
		if now.Sub(r.at) <= p.cfg.TimeoutWindow {
			total++
			if r.timeout {
				bad++
			}
		}
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		q := func(f float64) time.Duration { return lat[max(int(math.Ceil(f*float64(len(lat))))-1, 0)] }
		st.P50, st.P95, st.P99 = q(0.5), q(0.95), q(0.99)
	}
	if total > 0 {
		st.TimeoutPct = 100 * float64(bad) / float64(total)
	}
	st.Samples = len(lat)
	return st
}

// Samples returns the probe's two signals at now (none before any call).
func (p *Probe) Samples(now time.Time) []signals.Sample {
	st := p.Stats(now)
	if st.Samples == 0 {
		return nil
	}
	return []signals.Sample{
		{Host: p.cfg.Host, Signal: signals.LibvirtLatency, Value: float64(st.P95) / float64(time.Millisecond), At: now},
		{Host: p.cfg.Host, Signal: signals.LibvirtTimeout, Value: st.TimeoutPct, At: now},
	}
}

// Host is the probed host.
func (p *Probe) Host() string { return p.cfg.Host }

// Liveness is the probe's view for the evaluator's hard-failure rule and
// agent-failure verdict.
func (p *Probe) Liveness() signals.Liveness {
	p.mu.Lock()
	defer p.mu.Unlock()
	return signals.Liveness{Probed: true, Answered: !p.lastAnswer.IsZero(), Failures: p.failures}
}

// Close drops the connection (a call stuck in a frozen daemon is left to
// libvirt's keepalive).
func (p *Probe) Close() {
	p.mu.Lock()
	c, busy := p.conn, p.inFlight
	p.conn = nil
	p.mu.Unlock()
	if c != nil && !busy {
		c.Close()
	}
}

// Collector runs probes as a signals.Collector.
type Collector struct {
	Probes []*Probe
}

// Name is "libvirt".
func (c *Collector) Name() string { return "libvirt" }

// Collect ticks every probe and returns their signals; it never waits for libvirt.
func (c *Collector) Collect(_ context.Context, now time.Time) ([]signals.Sample, error) {
	var out []signals.Sample
	var errs []error
	for _, p := range c.Probes {
		p.Tick(now)
		out = append(out, p.Samples(now)...)
		if st := p.Stats(now); st.Err != nil {
			errs = append(errs, st.Err)
		}
	}
	return out, errors.Join(errs...)
}
