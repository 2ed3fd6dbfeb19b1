package nova

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/services"

	"github.com/fencedhq/fenced/internal/obs"
	"github.com/fencedhq/fenced/pkg/playbook"
)

// DefaultDisableTimeout bounds the service PUT of ControlPlane.Disable and
// Enable.
const DefaultDisableTimeout = 5 * time.Second

// ErrNotConfirmed: a service PUT failed or timed out and reading the service
// back did not show the change.
var ErrNotConfirmed = errors.New("service update not confirmed by read-back")

// ControlPlane makes a *Client the playbook's control plane
// (playbook.ControlPlane), with the bounds and the idempotence a leader that
// may be replaced at any moment needs. The zero value of every field but C
// means its default.
type ControlPlane struct {
	C *Client
	// DisableTimeout bounds each request of Disable and Enable (default 5 s):
	// the lookup, the PUT (sent once, never retried on a timeout) and, when
	// the PUT timed out, the read-back. Nova saves the status before it calls
	// the compute synchronously to sync the COMPUTE_STATUS_DISABLED trait, and
	// a frozen compute that Nova still thinks up holds that call for
	// rpc_response_timeout (60 s); the read-back then finds the change saved.
	DisableTimeout time.Duration
	// Evacuable is the evacuable filter of Servers (none: every server).
	Evacuable Evacuable
	// EvacuableFor, when set, is the filter for one host's servers (a
	// group's own filter, else Evacuable); Evacuable is then unused.
	EvacuableFor func(host string) Evacuable
	// Image is glance v2 for Evacuable.ImageProperty; nil: the image endpoint
	// New found in the catalog.
	Image *gophercloud.ServiceClient
	// AbortTimeout bounds the abort LiveMigrate sends once its context
	// expired (default 10 s).
	AbortTimeout time.Duration
	// ClockSkew is how much older than `since` a migration's created_at may
	// be and still count in MigrationSince (default 5 s): Nova's clock and
	// fenced's are not the same clock.
	ClockSkew time.Duration
}

func (p *ControlPlane) disableTimeout() time.Duration {
	if p.DisableTimeout > 0 {
		return p.DisableTimeout
	}
	return DefaultDisableTimeout
}

// maxReasonRunes is Nova's maxLength for disabled_reason.
const maxReasonRunes = 255

// fencedReason is what Disable writes: "fenced: <reason>", cut to Nova's 255
// characters (a longer one is a 400).
func fencedReason(reason string) string {
	if reason == "" {
		reason = "frozen by fenced"
	}
	r := ReasonPrefix + reason
	if utf8.RuneCountInString(r) > maxReasonRunes {
		r = string([]rune(r)[:maxReasonRunes])
	}
	return r
}

// Disable stops scheduling on host, recording "fenced: <reason>". It returns
// within about DisableTimeout (twice that in the worst case, see the field)
// whatever the compute's state: a PUT that times out counts as done when the
// service reads back disabled with this reason. A host already disabled with
// this reason is left alone (no PUT, no RPC to the compute).
func (p *ControlPlane) Disable(ctx context.Context, host, reason string) error {
	want := fencedReason(reason)
	return p.setStatus(ctx, host, "disable",
		services.UpdateOpts{Status: services.ServiceDisabled, DisabledReason: want},
		func(s services.Service) bool { return s.Status == "disabled" && s.DisabledReason == want })
}

// Enable lets the scheduler use host again, bounded like Disable.
func (p *ControlPlane) Enable(ctx context.Context, host string) error {
	return p.setStatus(ctx, host, "enable", services.UpdateOpts{Status: services.ServiceEnabled},
		func(s services.Service) bool { return s.Status == "enabled" })
}

// ForceDown sets or clears forced_down. Nova does not call the compute for
// it, so it is the Client's ordinary retried call.
func (p *ControlPlane) ForceDown(ctx context.Context, host string, down bool) error {
	_, err := p.C.ForceDown(ctx, host, down)
	return err
}

// setStatus is a bounded enable/disable: look up, skip if already so, PUT
// once under DisableTimeout, and on failure read back.
func (p *ControlPlane) setStatus(ctx context.Context, host, action string, opts services.UpdateOpts, done func(services.Service) bool) error {
	c := p.C
	bound := p.disableTimeout()
	lctx, cancel := context.WithTimeout(ctx, bound)
	cur, err := c.service(lctx, host)
	cancel()
	if err != nil {
		return fmt.Errorf("nova: %s %s: %w", action, host, err)
	}
	c.observe(cur) // the last heartbeat before our write bumps updated_at
	if done(cur) {
		obs.Line(ctx, c.log.Debug(), obs.Fields{Component: "nova", HostID: host, Action: action}, 0, "already").Msg("compute service already so")
		return nil
	}
	var res *services.Service
	pctx, cancel := context.WithTimeout(ctx, bound)
	putErr := c.call(pctx, action, host, false, func(ctx context.Context) error {
		var err error
		res, err = services.Update(ctx, c.compute, cur.ID, opts).Extract()
		return err
	})
	cancel()
	if putErr == nil {
		c.recordOwnWrite(res.ID, res.UpdatedAt)
		c.observe(*res)
		obs.Line(ctx, c.log.Info(), obs.Fields{Component: "nova", HostID: host, Action: action}, 0, "ok").Msg("compute service updated")
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("nova: %s %s: %w", action, host, putErr)
	}
	// Nova may have saved the change and be waiting on the compute (a
	// frozen one holds the RPC for rpc_response_timeout): read it back.
	rctx, cancel := context.WithTimeout(ctx, bound)
	back, err := c.service(rctx, host)
	cancel()
	if err != nil {
		return fmt.Errorf("nova: %s %s: %w (read-back: %v)", action, host, putErr, err)
	}
	if !done(back) {
		c.observe(back)
		return fmt.Errorf("nova: %s %s: %w (PUT: %v)", action, host, ErrNotConfirmed, putErr)
	}
	// The updated_at the read-back shows is our write (or, on a compute that
	// heartbeats right after it, a heartbeat: taking that one for ours only
	// delays the lag signal's reset to the next heartbeat, whereas the other
	// mistake would hide a frozen compute).
	if !back.UpdatedAt.Equal(cur.UpdatedAt) {
		c.recordOwnWrite(back.ID, back.UpdatedAt)
	}
	c.observe(back)
	obs.Line(ctx, c.log.Warn(), obs.Fields{Component: "nova", HostID: host, Action: action}, 0, "ok").
		AnErr("put_error", putErr).Msg("compute service update confirmed by read-back after the PUT failed")
	return nil
}

// SchedulingEnabled reads whether Nova schedules onto host: its compute
// service is enabled (playbook.ServiceReader).
func (p *ControlPlane) SchedulingEnabled(ctx context.Context, host string) (bool, error) {
	s, err := p.C.ServiceStatus(ctx, host)
	if err != nil {
		return false, err
	}
	return s.Enabled, nil
}

// Servers lists the servers on host for the playbook: flavor size, power
// state and whether the evacuable filter selects them.
func (p *ControlPlane) Servers(ctx context.Context, host string) ([]playbook.Server, error) {
	ss, err := p.C.ServersOnHost(ctx, host)
	if err != nil {
		return nil, err
	}
	sc := p.Image
	if sc == nil {
		sc = p.C.image
	}
	filter := p.Evacuable
	if p.EvacuableFor != nil {
		filter = p.EvacuableFor(host)
	}
	ev, err := p.C.evacuableSet(ctx, host, filter, sc, ss)
	if err != nil {
		return nil, err
	}
	out := make([]playbook.Server, 0, len(ss))
	for _, s := range ss {
		out = append(out, playbook.Server{ID: s.ID, Name: s.Name, Status: s.Status, Running: s.PowerState == "RUNNING",
			TaskState: s.TaskState, VCPUs: s.VCPUs, RAMMB: s.RAMMB, Evacuable: ev[s.ID]})
	}
	return out, nil
}

// newestMigration is the record with the highest id, and whether there is one.
func newestMigration(ms []Migration) (Migration, bool) {
	var best Migration
	for _, m := range ms {
		if m.ID > best.ID {
			best = m
		}
	}
	return best, best.ID != 0
}

// LiveMigrate moves serverID to dest ("" lets the scheduler choose) and
// returns once the migration completed or failed. A live migration of the
// server already under way (task_state migrating, a non-terminal record) is
// followed instead of starting another. When ctx expires first, the
// migration is aborted (bounded by AbortTimeout) and ctx's error returned.
func (p *ControlPlane) LiveMigrate(ctx context.Context, serverID, dest string) error {
	c := p.C
	srv, err := c.GetServer(ctx, serverID)
	if err != nil {
		return err
	}
	var m Migration
	running := false
	if srv.TaskState == "migrating" {
		ms, err := c.Migrations(ctx, MigrationFilter{InstanceID: serverID, Type: "live-migration"})
		if err != nil {
			return err
		}
		if n, ok := newestMigration(ms); ok && !n.Terminal() {
			m, running = n, true
			obs.Line(ctx, c.log.Info(), obs.Fields{Component: "nova", VMID: serverID, Action: "live_migrate"}, 0, "adopted").Int64("migration_id", m.ID).
				Msg("following a live migration already under way")
		}
	}
	if !running {
		if m, err = c.LiveMigrate(ctx, serverID, dest); err != nil {
			return err
		}
	}
	m, err = c.WaitMigration(ctx, m)
	if err == nil || ctx.Err() == nil {
		return err
	}
	timeout := p.AbortTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	if aerr := c.AbortMigration(actx, m); aerr != nil {
		return fmt.Errorf("%w; abort: %v", err, aerr)
	}
	return fmt.Errorf("%w; migration %d aborted", err, m.ID)
}

func rebuilding(task string) bool { return task == "rebuilding" || strings.HasPrefix(task, "rebuild_") }

// priorStatus guesses, from vm_state, the status a server had before an
// evacuation fenced did not start itself: Nova keeps vm_state during the
// rebuild and, below 2.95, after it.
func (c *Client) priorStatus(s Server) string {
	if s.VMState == "stopped" && !c.atLeast("2.95") {
		return "SHUTOFF"
	}
	return "ACTIVE"
}

// Evacuate rebuilds serverID, whose host is forced down, on dest ("": the
// scheduler chooses), and returns once it runs there (ACTIVE; SHUTOFF at
// >= 2.95 unless Config.StartAfterEvacuate) or failed. It never evacuates a
// server twice:
//
//   - an evacuation already under way (a non-terminal evacuation record, or
//     task_state rebuilding/rebuild_*) is waited for, wherever it goes;
//   - a server with no task already on dest, or on the host its latest
//     evacuation took it to while that host is not forced down, is done.
//
// Otherwise it sends the evacuation (Client.Evacuate refuses unless the
// server's host is forced down) and waits. Bounded by ctx.
func (p *ControlPlane) Evacuate(ctx context.Context, serverID, dest string) error {
	c := p.C
	for {
		srv, err := c.GetServer(ctx, serverID)
		if err != nil {
			return err
		}
		ms, err := c.Migrations(ctx, MigrationFilter{InstanceID: serverID, Type: "evacuation"})
		if err != nil {
			return err
		}
		last, hasLast := newestMigration(ms)
		if hasLast && !last.Terminal() {
			obs.Line(ctx, c.log.Info(), obs.Fields{Component: "nova", VMID: serverID, Action: "evacuate"}, 0, "adopted").Int64("migration_id", last.ID).
				Msg("waiting for an evacuation already under way")
			_, err := c.WaitEvacuation(ctx, Evacuation{Migration: last, ServerID: serverID, Source: last.SourceCompute,
				Dest: last.DestCompute, PriorStatus: c.priorStatus(srv)})
			return err
		}
		if rebuilding(srv.TaskState) {
			// Nova sets task_state before it creates the migration record; or
			// this is a plain rebuild. Either way no new evacuation now.
			select {
			case <-ctx.Done():
				return fmt.Errorf("nova: evacuate %s: server is being rebuilt (task_state %s) with no evacuation record: %w", serverID, srv.TaskState, ctx.Err())
			case <-c.clk.After(c.cfg.PollInterval):
			}
			continue
		}
		if srv.TaskState == "" {
			onDest := dest != "" && srv.Host == dest
			evacuatedHere := hasLast && last.Succeeded() && last.DestCompute == srv.Host
			if evacuatedHere && !onDest {
				svc, err := c.ServiceStatus(ctx, srv.Host)
				if err != nil {
					return fmt.Errorf("nova: evacuate %s: %w", serverID, err)
				}
				evacuatedHere = !svc.ForcedDown // forced down: that host failed in turn
			}
			if onDest || evacuatedHere {
				if srv.Status == "ACTIVE" {
					return nil
				}
				ev := Evacuation{ServerID: serverID, Dest: srv.Host, PriorStatus: c.priorStatus(srv)}
				if evacuatedHere {
					ev.Migration, ev.Source = last, last.SourceCompute
				}
				_, err := c.WaitEvacuation(ctx, ev)
				return err
			}
		}
		ev, err := c.Evacuate(ctx, serverID, dest)
		if err != nil {
			return err
		}
		_, err = c.WaitEvacuation(ctx, ev)
		return err
	}
}

// MigrationSince returns the newest migration of type typ ("live-migration",
// "evacuation") of serverID created at or after since, less ClockSkew, and
// whether there is one: a new leader holding an intent without an outcome
// asks Nova whether the action happened.
func (p *ControlPlane) MigrationSince(ctx context.Context, serverID, typ string, since time.Time) (Migration, bool, error) {
	ms, err := p.C.Migrations(ctx, MigrationFilter{InstanceID: serverID, Type: typ})
	if err != nil {
		return Migration{}, false, err
	}
	skew := p.ClockSkew
	if skew <= 0 {
		skew = 5 * time.Second
	}
	from := since.Add(-skew)
	var best Migration
	found := false
	for _, m := range ms {
		if m.InstanceID != serverID || (typ != "" && m.Type != typ) || m.CreatedAt.IsZero() || m.CreatedAt.Before(from) {
			continue
		}
		if !found || m.CreatedAt.After(best.CreatedAt) || (m.CreatedAt.Equal(best.CreatedAt) && m.ID > best.ID) {
			best, found = m, true
		}
	}
	return best, found, nil
}

// Headroom is what the scheduler may still place on host: vCPUs and MB of
// RAM under placement's allocation ratios (Capacity).
func (p *ControlPlane) Headroom(ctx context.Context, host string) (vcpus, ramMB int, err error) {
	cp, err := p.C.Capacity(ctx, host)
	if err != nil {
		return 0, 0, err
	}
	return cp.VCPUHeadroom, cp.MemoryHeadroomMB, nil
}
