package nova

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/fencedhq/fenced/internal/hostname"
	"github.com/fencedhq/fenced/internal/obs"

	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/services"

	"github.com/fencedhq/fenced/pkg/signals"
)

// ReasonPrefix starts every disabled_reason fenced writes, so operators (and
// fenced after a restart) can tell its freezes from anyone else's.
const ReasonPrefix = "fenced: "

// ErrNoService is returned when no nova-compute runs on the host.
var ErrNoService = errors.New("no nova-compute service on host")

// Service is one nova-compute as Nova reports it, plus fenced's heartbeat view.
type Service struct {
	ID             string
	Host           string
	Zone           string
	Enabled        bool
	DisabledReason string
	// Up is Nova's own verdict (state == "up"): last heartbeat younger than
	// service_down_time and not forced down.
	Up         bool
	ForcedDown bool
	// UpdatedAt is Nova's raw updated_at: heartbeats and admin writes alike.
	// Zero while Nova reports null (a compute that never heartbeat).
	UpdatedAt time.Time
	// LastHeartbeat is the newest updated_at that was not produced by one of
	// fenced's own writes. Zero if unknown.
	LastHeartbeat time.Time
	// HeartbeatLag is how late the next heartbeat is: now - LastHeartbeat -
	// report_interval, never negative. Meaningful only if LagKnown.
	HeartbeatLag time.Duration
	LagKnown     bool
	// LagCritical is HeartbeatLag > the configured threshold (30 s by default).
	LagCritical bool
}

// FencedByUs reports whether the disabled reason is one fenced wrote.
func (s Service) FencedByUs() bool {
	return !s.Enabled && strings.HasPrefix(s.DisabledReason, ReasonPrefix)
}

// Services lists every nova-compute.
func (c *Client) Services(ctx context.Context) ([]Service, error) {
	raw, err := c.listServices(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("nova: list compute services: %w", err)
	}
	out := make([]Service, 0, len(raw))
	for _, s := range raw {
		// a host name fenced cannot carry safely through its API, audit and
		// terminals (control characters, spaces, …) is left out, loudly
		if err := hostname.Check(s.Host); err != nil {
			if _, seen := c.badHosts.LoadOrStore(s.Host, true); !seen {
				c.log.Warn().Str("component", "nova").Err(err).Msg("a nova-compute host name fenced cannot use: that host is not managed")
			}
			continue
		}
		out = append(out, c.observe(s))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Host < out[j].Host })
	return out, nil
}

// ServiceStatus returns the nova-compute on host.
func (c *Client) ServiceStatus(ctx context.Context, host string) (Service, error) {
	raw, err := c.service(ctx, host)
	if err != nil {
		return Service{}, err
	}
	return c.observe(raw), nil
}

// HeartbeatSamples turns every compute's heartbeat lag into a heartbeat_lag_s
// sample. Services whose lag is unknown are left out.
func (c *Client) HeartbeatSamples(ctx context.Context) ([]signals.Sample, error) {
	svcs, err := c.Services(ctx)
	if err != nil {
		return nil, err
	}
	now := c.clk.Now()
	var out []signals.Sample
	for _, s := range svcs {
		if s.LagKnown {
			out = append(out, signals.Sample{Host: s.Host, Signal: signals.HeartbeatLag, Value: s.HeartbeatLag.Seconds(), At: now})
		}
	}
	return out, nil
}

// Disable stops the scheduler from placing servers on host. The reason is
// recorded as "fenced: <reason>".
func (c *Client) Disable(ctx context.Context, host, reason string) (Service, error) {
	if reason == "" {
		reason = "frozen by fenced"
	}
	return c.update(ctx, host, "disable", services.UpdateOpts{Status: services.ServiceDisabled, DisabledReason: ReasonPrefix + reason})
}

// Enable lets the scheduler use host again.
func (c *Client) Enable(ctx context.Context, host string) (Service, error) {
	return c.update(ctx, host, "enable", services.UpdateOpts{Status: services.ServiceEnabled})
}

// ForceDown sets forced_down on host's nova-compute: true fences it in the
// control plane (Nova then reports it down and allows evacuation), false
// undoes that.
func (c *Client) ForceDown(ctx context.Context, host string, down bool) (Service, error) {
	action := "force_down"
	if !down {
		action = "force_up"
	}
	return c.update(ctx, host, action, forcedDownBody(down))
}

func (c *Client) update(ctx context.Context, host, action string, opts services.UpdateOptsBuilder) (Service, error) {
	cur, err := c.service(ctx, host)
	if err != nil {
		return Service{}, fmt.Errorf("nova: %s %s: %w", action, host, err)
	}
	c.observe(cur) // remember the last heartbeat before our write bumps updated_at
	var res *services.Service
	err = c.call(ctx, action, host, true, func(ctx context.Context) error {
		var err error
		res, err = services.Update(ctx, c.compute, cur.ID, opts).Extract()
		return err
	})
	if err != nil {
		return Service{}, fmt.Errorf("nova: %s %s: %w", action, host, err)
	}
	c.recordOwnWrite(res.ID, res.UpdatedAt)
	obs.Line(ctx, c.log.Info(), obs.Fields{Component: "nova", HostID: host, Action: action}, 0, "ok").Msg("compute service updated")
	return c.observe(*res), nil
}

func (c *Client) listServices(ctx context.Context, host string) ([]services.Service, error) {
	var out []services.Service
	err := c.call(ctx, "list_services", host, true, func(ctx context.Context) error {
		pages, err := services.List(c.compute, services.ListOpts{Binary: "nova-compute", Host: host}).AllPages(ctx)
		if err != nil {
			return err
		}
		out, err = services.ExtractServices(pages)
		return err
	})
	return out, err
}

func (c *Client) service(ctx context.Context, host string) (services.Service, error) {
	raw, err := c.listServices(ctx, host)
	if err != nil {
		return services.Service{}, fmt.Errorf("nova: get compute service on %s: %w", host, err)
	}
	for _, s := range raw {
		if s.Host == host {
			return s, nil
		}
	}
	return services.Service{}, fmt.Errorf("nova: %s: %w", host, ErrNoService)
}

// ownWritesKept bounds the remembered own-write timestamps per service.
const ownWritesKept = 16

func (c *Client) recordOwnWrite(id string, at time.Time) {
	if at.IsZero() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	w := append(c.own[id], at)
	if len(w) > ownWritesKept {
		w = w[len(w)-ownWritesKept:]
	}
	c.own[id] = w
}

// observe converts a raw service and folds its updated_at into the heartbeat
// history unless fenced's own write produced it.
func (c *Client) observe(s services.Service) Service {
	out := Service{ID: s.ID, Host: s.Host, Zone: s.Zone, Enabled: s.Status == "enabled",
		DisabledReason: s.DisabledReason, Up: s.State == "up", ForcedDown: s.ForcedDown, UpdatedAt: s.UpdatedAt}
	c.mu.Lock()
	defer c.mu.Unlock()
	if u := s.UpdatedAt; !u.IsZero() && !c.isOwnLocked(s.ID, u) && u.After(c.hb[s.ID]) {
		c.hb[s.ID] = u
	}
	out.LastHeartbeat = c.hb[s.ID]
	if !out.LastHeartbeat.IsZero() {
		out.LagKnown = true
		lag := c.clk.Now().Sub(out.LastHeartbeat) - c.cfg.ReportInterval
		if lag < 0 {
			lag = 0
		}
		out.HeartbeatLag = lag
		out.LagCritical = lag > c.cfg.HeartbeatLagThreshold
	}
	return out
}

func (c *Client) isOwnLocked(id string, u time.Time) bool {
	for _, w := range c.own[id] {
		if w.Equal(u) {
			return true
		}
	}
	return false
}
