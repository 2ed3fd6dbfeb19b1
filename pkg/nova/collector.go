package nova

import (
	"context"
	"sync"
	"time"

	"github.com/fencedhq/fenced/pkg/signals"
)

// DefaultServersEvery is how often the collector lists the ACTIVE servers.
const DefaultServersEvery = 30 * time.Second

// Collector reads Nova's compute services each tick: the heartbeat_lag_s
// signal (own writes excluded), and what the control plane says about each
// host: service up or down, forced down, the age of the last heartbeat, and
// (every ServersEvery) the servers it reports ACTIVE there, for the
// hard-failure rule, the agent-failure verdict and the incoherence message.
type Collector struct {
	Client *Client
	// ServersEvery spaces the server listings (one call for the whole
	// fleet, heavier than the service list); default 30 s.
	ServersEvery time.Duration

	mu      sync.Mutex // guards control (Control reads it from the engine)
	control map[string]signals.Control

	active      map[string][]string // collection goroutine only
	activeAt    time.Time
	activeKnown bool
}

// Name is "nova".
func (c *Collector) Name() string { return "nova" }

// Collect implements signals.Collector.
func (c *Collector) Collect(ctx context.Context, now time.Time) ([]signals.Sample, error) {
	svcs, err := c.Client.Services(ctx)
	if err != nil {
		return nil, err
	}
	every := c.ServersEvery
	if every <= 0 {
		every = DefaultServersEvery
	}
	// one goroutine collects (the registry never overlaps two collections),
	// so the listing's schedule needs the lock only for readers of control
	var serr error
	if !c.activeKnown || now.Sub(c.activeAt) >= every {
		active, err := c.Client.ActiveServers(ctx)
		if err == nil {
			c.active, c.activeKnown = active, true
		}
		serr = err // on error the counts keep their last value; the heartbeats still count
		c.activeAt = now
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ctl := make(map[string]signals.Control, len(svcs))
	var out []signals.Sample
	for _, s := range svcs {
		k := signals.Control{ServiceUp: s.Up && !s.ForcedDown, ForcedDown: s.ForcedDown, Known: true,
			ReportInterval: c.Client.cfg.ReportInterval}
		if !s.LastHeartbeat.IsZero() {
			k.HeartbeatAge, k.HeartbeatKnown = max(now.Sub(s.LastHeartbeat), 0), true
		}
		if names := c.active[s.Host]; len(names) > 0 {
			k.ServersActive, k.ActiveServers = len(names), names
		}
		ctl[s.Host] = k
		if s.LagKnown {
			out = append(out, signals.Sample{Host: s.Host, Signal: signals.HeartbeatLag, Value: s.HeartbeatLag.Seconds(), At: now})
		}
	}
	c.control = ctl
	return out, serr
}

// Control is what Nova said about host at the last collection.
func (c *Collector) Control(host string) (signals.Control, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.control[host]
	return v, ok
}
