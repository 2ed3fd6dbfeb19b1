package nova

// Every gophercloud v2.15.0 gap fenced hits lives in this file, each with a
// test in workarounds_test.go:
//
//  1. services.UpdateOpts{ForcedDown: false} is dropped by omitempty, so
//     un-forcing a service needs a raw {"forced_down": false}.
//  2. servers.LiveMigrateOpts cannot express block_migration "auto" (a *bool
//     with omitempty), and Nova requires the key: 400 "'block_migration' is a
//     required property".
//  3. servers.EvacuateOpts always sends onSharedStorage, rejected at >= 2.14.
//  4. servers.Evacuate decodes the response, which is an empty 200 at >= 2.14:
//     an EOF error although Nova accepted the evacuation.
//  5. hypervisors.Hypervisor vcpus / memory_mb decode to 0 at >= 2.88 (the
//     fields were removed); that one call is made at 2.87.
//  6. os-migrations: a null dest_compute and null timestamps are decoded
//     leniently here, and abort (DELETE /servers/{id}/migrations/{id}, 2.24)
//     has no gophercloud call.

import (
	"context"
	"net/url"
	"strconv"
	"time"

	"github.com/gophercloud/gophercloud/v2"
)

// rawBody is sent as-is where gophercloud's option structs cannot say what
// Nova needs.
type rawBody map[string]any

func (b rawBody) ToServiceUpdateMap() (map[string]any, error) { return b, nil }
func (b rawBody) ToLiveMigrateMap() (map[string]any, error)   { return b, nil }
func (b rawBody) ToEvacuateMap() (map[string]any, error)      { return b, nil }

// forcedDownBody (gap 1) carries forced_down even when it is false.
func forcedDownBody(down bool) rawBody { return rawBody{"forced_down": down} }

// liveMigrateBody (gap 2): block_migration "auto" (>= 2.25); a null host lets
// the scheduler choose.
func liveMigrateBody(dest string) rawBody {
	var host any
	if dest != "" {
		host = dest
	}
	return rawBody{"os-migrateLive": map[string]any{"host": host, "block_migration": "auto"}}
}

// evacuateBody (gap 3): no onSharedStorage, no adminPass.
func evacuateBody(dest string) rawBody {
	inner := map[string]any{}
	if dest != "" {
		inner["host"] = dest
	}
	return rawBody{"evacuate": inner}
}

// serverAction posts a server action and ignores the (possibly empty) body
// (gap 4).
func serverAction(ctx context.Context, sc *gophercloud.ServiceClient, serverID string, body rawBody, okCodes ...int) error {
	resp, err := sc.Post(ctx, sc.ServiceURL("servers", serverID, "action"), map[string]any(body), nil,
		&gophercloud.RequestOpts{OkCodes: okCodes})
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	return err
}

// hypervisor is os-hypervisors/detail at 2.87 (gap 5).
type hypervisor struct {
	ID                 string `json:"id"`
	HypervisorHostname string `json:"hypervisor_hostname"`
	State              string `json:"state"`
	Status             string `json:"status"`
	VCPUs              int    `json:"vcpus"`
	VCPUsUsed          int    `json:"vcpus_used"`
	MemoryMB           int    `json:"memory_mb"`
	MemoryMBUsed       int    `json:"memory_mb_used"`
	Service            struct {
		Host string `json:"host"`
	} `json:"service"`
}

func listHypervisors287(ctx context.Context, compute *gophercloud.ServiceClient) ([]hypervisor, error) {
	sc := *compute
	sc.Microversion = hypervisorMicroversion
	var body struct {
		Hypervisors []hypervisor `json:"hypervisors"`
	}
	resp, err := sc.Get(ctx, sc.ServiceURL("os-hypervisors", "detail"), &body, nil)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	return body.Hypervisors, err
}

// Migration is one os-migrations record.
type Migration struct {
	ID            int64
	UUID          string
	InstanceID    string
	Type          string // live-migration, evacuation, migration, resize
	Status        string
	SourceCompute string
	DestCompute   string // "" while Nova has not chosen (null)
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// Terminal reports whether the migration has finished, well or badly.
func (m Migration) Terminal() bool {
	switch m.Status {
	case "completed", "done", "error", "failed", "cancelled", "aborted":
		return true
	}
	return false
}

// Succeeded reports whether the migration ended well. An evacuation is "done"
// until the source compute comes back and cleans up ("completed").
func (m Migration) Succeeded() bool { return m.Status == "completed" || m.Status == "done" }

type rawMigration struct {
	ID            int64   `json:"id"`
	UUID          string  `json:"uuid"`
	InstanceUUID  string  `json:"instance_uuid"`
	MigrationType string  `json:"migration_type"`
	Status        string  `json:"status"`
	SourceCompute *string `json:"source_compute"`
	DestCompute   *string `json:"dest_compute"`
	CreatedAt     *string `json:"created_at"`
	UpdatedAt     *string `json:"updated_at"`
}

func novaTime(s *string) time.Time {
	if s == nil {
		return time.Time{}
	}
	for _, layout := range []string{"2006-01-02T15:04:05.999999", time.RFC3339Nano, "2006-01-02T15:04:05.999999-07:00"} {
		if t, err := time.Parse(layout, *s); err == nil {
			return t.UTC()
		}
	}
	return time.Time{}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// MigrationFilter narrows Migrations. Empty fields do not filter.
type MigrationFilter struct {
	InstanceID string
	Host       string
	Type       string
}

func listMigrations(ctx context.Context, compute *gophercloud.ServiceClient, f MigrationFilter) ([]Migration, error) {
	q := url.Values{}
	if f.InstanceID != "" {
		q.Set("instance_uuid", f.InstanceID)
	}
	if f.Host != "" {
		q.Set("host", f.Host)
	}
	if f.Type != "" {
		q.Set("migration_type", f.Type)
	}
	u := compute.ServiceURL("os-migrations")
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var body struct {
		Migrations []rawMigration `json:"migrations"`
	}
	resp, err := compute.Get(ctx, u, &body, nil)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		return nil, err
	}
	out := make([]Migration, 0, len(body.Migrations))
	for _, m := range body.Migrations {
		out = append(out, Migration{ID: m.ID, UUID: m.UUID, InstanceID: m.InstanceUUID, Type: m.MigrationType,
			Status: m.Status, SourceCompute: deref(m.SourceCompute), DestCompute: deref(m.DestCompute),
			CreatedAt: novaTime(m.CreatedAt), UpdatedAt: novaTime(m.UpdatedAt)})
	}
	return out, nil
}

// abortMigration is DELETE /servers/{id}/migrations/{migration id} (2.24).
func abortMigration(ctx context.Context, compute *gophercloud.ServiceClient, serverID string, migrationID int64) error {
	resp, err := compute.Delete(ctx, compute.ServiceURL("servers", serverID, "migrations", strconv.FormatInt(migrationID, 10)),
		&gophercloud.RequestOpts{OkCodes: []int{202}})
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	return err
}
