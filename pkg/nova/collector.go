package nova

import (
	"context"
	"sync"
	"time"

	"github.com/fencedhq/fenced/pkg/signals"
)

// Collector reads Nova's compute services each tick: the heartbeat_lag_s
// signal (own writes excluded), and what the control plane says about each
// host for the incoherence check.
type Collector struct {
	Client *Client

	mu      sync.Mutex
	control map[string]signals.Control
}

// Name is "nova".
func (c *Collector) Name() string { return "nova" }

// Collect implements signals.Collector.
func (c *Collector) Collect(ctx context.Context, now time.Time) ([]signals.Sample, error) {
	svcs, err := c.Client.Services(ctx)
	if err != nil {
		return nil, err
	}
	ctl := make(map[string]signals.Control, len(svcs))
	var out []signals.Sample
	for _, s := range svcs {
		ctl[s.Host] = signals.Control{ServiceUp: s.Up && !s.ForcedDown, Known: true}
		if s.LagKnown {
			out = append(out, signals.Sample{Host: s.Host, Signal: signals.HeartbeatLag, Value: s.HeartbeatLag.Seconds(), At: now})
		}
	}
	c.mu.Lock()
	c.control = ctl
	c.mu.Unlock()
	return out, nil
}

// Control is what Nova said about host at the last collection.
func (c *Collector) Control(host string) (signals.Control, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.control[host]
	return v, ok
}
