package nova

import (
	"context"
	"errors"
	"fmt"

	"github.com/fencedhq/fenced/internal/obs"
)

// Errors of the migration calls; test with errors.Is.
var (
	// ErrNotFenced: evacuation asked for while the source is not forced down.
	ErrNotFenced = errors.New("source compute is not forced down")
	// ErrMigrationFailed: the migration ended in error / failed / cancelled.
	ErrMigrationFailed = errors.New("migration failed")
	// ErrNoMigrationRecord: Nova accepted the action but no migration record appeared.
	ErrNoMigrationRecord = errors.New("no migration record appeared")
)

// Migrations lists os-migrations.
func (c *Client) Migrations(ctx context.Context, f MigrationFilter) ([]Migration, error) {
	var out []Migration
	err := c.call(ctx, "list_migrations", f.Host, true, func(ctx context.Context) error {
		var err error
		out, err = listMigrations(ctx, c.compute, f)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("nova: list migrations: %w", err)
	}
	return out, nil
}

func newestID(ms []Migration) int64 {
	var id int64
	for _, m := range ms {
		if m.ID > id {
			id = m.ID
		}
	}
	return id
}

// startMigration runs act and returns the migration record it created.
func (c *Client) startMigration(ctx context.Context, serverID, typ, action string, act func(context.Context) error) (Migration, error) {
	before, err := c.Migrations(ctx, MigrationFilter{InstanceID: serverID, Type: typ})
	if err != nil {
		return Migration{}, err
	}
	seen := newestID(before)
	if err := c.call(ctx, action, "", false, act); err != nil {
		return Migration{}, err
	}
	for i := 0; i < 60; i++ {
		ms, err := c.Migrations(ctx, MigrationFilter{InstanceID: serverID, Type: typ})
		if err != nil {
			return Migration{}, err
		}
		var found *Migration
		for k := range ms {
			if ms[k].ID > seen && (found == nil || ms[k].ID > found.ID) {
				found = &ms[k]
			}
		}
		if found != nil {
			return *found, nil
		}
		select {
		case <-ctx.Done():
			return Migration{}, ctx.Err()
		case <-c.clk.After(c.cfg.PollInterval / 4):
		}
	}
	return Migration{}, ErrNoMigrationRecord
}

// LiveMigrate starts a live migration of serverID to dest ("" lets the
// scheduler choose) with block_migration "auto", and returns the migration
// record to follow with WaitMigration.
func (c *Client) LiveMigrate(ctx context.Context, serverID, dest string) (Migration, error) {
	m, err := c.startMigration(ctx, serverID, "live-migration", "live_migrate", func(ctx context.Context) error {
		return serverAction(ctx, c.compute, serverID, liveMigrateBody(dest), 202)
	})
	if err != nil {
		return Migration{}, fmt.Errorf("nova: live-migrate %s to %q: %w", serverID, dest, err)
	}
	obs.Line(ctx, c.log.Info(), obs.Fields{Component: "nova", VMID: serverID, HostID: m.SourceCompute, Action: "live_migrate"}, 0, "started").Msg("migration started")
	return m, nil
}

// WaitMigration polls m until it is terminal. A failed migration is returned
// with an error wrapping ErrMigrationFailed.
func (c *Client) WaitMigration(ctx context.Context, m Migration) (Migration, error) {
	for {
		ms, err := c.Migrations(ctx, MigrationFilter{InstanceID: m.InstanceID, Type: m.Type})
		if err != nil {
			return m, fmt.Errorf("nova: wait for migration %d: %w", m.ID, err)
		}
		for _, x := range ms {
			if x.ID == m.ID {
				m = x
			}
		}
		if m.Terminal() {
			if !m.Succeeded() {
				return m, fmt.Errorf("nova: migration %d of %s is %s: %w", m.ID, m.InstanceID, m.Status, ErrMigrationFailed)
			}
			return m, nil
		}
		select {
		case <-ctx.Done():
			return m, fmt.Errorf("nova: wait for migration %d (last status %s): %w", m.ID, m.Status, ctx.Err())
		case <-c.clk.After(c.cfg.PollInterval):
		}
	}
}

// AbortMigration aborts a running live migration.
func (c *Client) AbortMigration(ctx context.Context, m Migration) error {
	err := c.call(ctx, "abort_migration", m.SourceCompute, false, func(ctx context.Context) error {
		return abortMigration(ctx, c.compute, m.InstanceID, m.ID)
	})
	if err != nil {
		return fmt.Errorf("nova: abort migration %d of %s: %w", m.ID, m.InstanceID, err)
	}
	return nil
}

// Evacuation is an evacuation under way.
type Evacuation struct {
	Migration   Migration
	ServerID    string
	Source      string
	Dest        string // "" if the scheduler chooses
	PriorStatus string
}

// Evacuate rebuilds serverID elsewhere. It refuses unless the source host's
// nova-compute is forced down (ForceDown first): evacuating from a host that
// may still run the guest risks two copies.
func (c *Client) Evacuate(ctx context.Context, serverID, dest string) (Evacuation, error) {
	srv, err := c.GetServer(ctx, serverID)
	if err != nil {
		return Evacuation{}, fmt.Errorf("nova: evacuate %s: %w", serverID, err)
	}
	svc, err := c.ServiceStatus(ctx, srv.Host)
	if err != nil {
		return Evacuation{}, fmt.Errorf("nova: evacuate %s: %w", serverID, err)
	}
	if !svc.ForcedDown {
		return Evacuation{}, fmt.Errorf("nova: evacuate %s from %s: %w", serverID, srv.Host, ErrNotFenced)
	}
	m, err := c.startMigration(ctx, serverID, "evacuation", "evacuate", func(ctx context.Context) error {
		return serverAction(ctx, c.compute, serverID, evacuateBody(dest), 200)
	})
	if err != nil {
		return Evacuation{}, fmt.Errorf("nova: evacuate %s from %s to %q: %w", serverID, srv.Host, dest, err)
	}
	obs.Line(ctx, c.log.Info(), obs.Fields{Component: "nova", VMID: serverID, HostID: srv.Host, Action: "evacuate"}, 0, "started").Msg("evacuation started")
	return Evacuation{Migration: m, ServerID: serverID, Source: srv.Host, Dest: dest, PriorStatus: srv.Status}, nil
}

// ExpectedStatusAfterEvacuate is the status Nova leaves an evacuated server
// in: at >= 2.95 it is SHUTOFF whatever it was, before that it keeps ACTIVE.
func (c *Client) ExpectedStatusAfterEvacuate(prior string) string {
	if c.atLeast("2.95") || prior == "SHUTOFF" {
		return "SHUTOFF"
	}
	return "ACTIVE"
}

// WaitEvacuation waits until the server runs on another host with no task
// and in the expected status (ACTIVE, or SHUTOFF at >= 2.95). Nova shows
// ACTIVE for a moment while the host is still the source, so the host change
// is part of the condition. With Config.StartAfterEvacuate, a server that was
// ACTIVE and came back SHUTOFF is started and waited for.
func (c *Client) WaitEvacuation(ctx context.Context, ev Evacuation) (Server, error) {
	want := c.ExpectedStatusAfterEvacuate(ev.PriorStatus)
	for {
		ms, err := c.Migrations(ctx, MigrationFilter{InstanceID: ev.ServerID, Type: "evacuation"})
		if err != nil {
			return Server{}, fmt.Errorf("nova: wait for evacuation of %s: %w", ev.ServerID, err)
		}
		for _, m := range ms {
			if m.ID == ev.Migration.ID && m.Terminal() && !m.Succeeded() {
				return Server{}, fmt.Errorf("nova: evacuation %d of %s is %s: %w", m.ID, ev.ServerID, m.Status, ErrMigrationFailed)
			}
		}
		srv, err := c.GetServer(ctx, ev.ServerID)
		if err != nil {
			return Server{}, fmt.Errorf("nova: wait for evacuation of %s: %w", ev.ServerID, err)
		}
		if srv.Status == "ERROR" {
			return srv, fmt.Errorf("nova: evacuation of %s: server in ERROR on %s: %w", ev.ServerID, srv.Host, ErrMigrationFailed)
		}
		moved := srv.Host != ev.Source && (ev.Dest == "" || srv.Host == ev.Dest)
		if moved && srv.TaskState == "" && srv.Status == want {
			if want == "SHUTOFF" && ev.PriorStatus == "ACTIVE" && c.cfg.StartAfterEvacuate {
				if err := c.StartServer(ctx, ev.ServerID); err != nil {
					return srv, err
				}
				ev.PriorStatus = "SHUTOFF" // now wait for ACTIVE
				want = "ACTIVE"
				continue
			}
			return srv, nil
		}
		select {
		case <-ctx.Done():
			return srv, fmt.Errorf("nova: wait for evacuation of %s (now %s on %s, task %q): %w", ev.ServerID, srv.Status, srv.Host, srv.TaskState, ctx.Err())
		case <-c.clk.After(c.cfg.PollInterval):
		}
	}
}
