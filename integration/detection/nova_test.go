package detection

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/services"
)

// The tests read Nova with plain gophercloud as the stack's admin,
// independent of fenced's adapter.

var (
	novaOnce sync.Once
	novaSC   *gophercloud.ServiceClient
	novaPC   *gophercloud.ProviderClient
	novaErr  error
)

func novaClient(t testing.TB) *gophercloud.ServiceClient {
	t.Helper()
	novaOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		ao := gophercloud.AuthOptions{IdentityEndpoint: os.Getenv("OS_AUTH_URL"), Username: os.Getenv("OS_USERNAME"), Password: os.Getenv("OS_PASSWORD"),
			DomainName: "Default", AllowReauth: true, Scope: &gophercloud.AuthScope{ProjectName: os.Getenv("OS_PROJECT_NAME"), DomainName: "Default"}}
		novaPC, novaErr = openstack.AuthenticatedClient(ctx, ao)
		if novaErr != nil {
			return
		}
		novaSC, novaErr = openstack.NewComputeV2(novaPC, gophercloud.EndpointOpts{Region: "RegionOne"})
		if novaSC != nil {
			novaSC.Microversion = "2.93" // Zed's maximum
		}
	})
	if novaErr != nil {
		t.Fatalf("nova client: %v", novaErr)
	}
	return novaSC
}

// service reads the nova-compute service of host.
func service(ctx context.Context, t testing.TB, host string) (services.Service, error) {
	pages, err := services.List(novaClient(t), services.ListOpts{Binary: "nova-compute", Host: host}).AllPages(ctx)
	if err != nil {
		return services.Service{}, err
	}
	all, err := services.ExtractServices(pages)
	if err != nil {
		return services.Service{}, err
	}
	if len(all) != 1 {
		return services.Service{}, fmt.Errorf("%d nova-compute services on %s", len(all), host)
	}
	return all[0], nil
}

// healthy: up, enabled, not forced down.
func healthy(s services.Service) bool {
	return s.State == "up" && s.Status == "enabled" && !s.ForcedDown
}

func describe(s services.Service) string {
	return fmt.Sprintf("%s state=%s status=%s forced_down=%v reason=%q updated=%s", s.Host, s.State, s.Status, s.ForcedDown,
		s.DisabledReason, s.UpdatedAt.Format(time.TimeOnly))
}

// unfence puts host back in service in Nova (enabled, not forced down).
// Nova refuses to un-force a host whose evacuation records are still
// `done` (its restarted nova-compute completes them), so it retries until
// ctx ends.
func unfence(ctx context.Context, t testing.TB, host string) error {
	sc := novaClient(t)
	for {
		s, err := service(ctx, t, host)
		if err == nil && s.Status == "enabled" && !s.ForcedDown {
			return nil
		}
		if err == nil {
			// forced_down=false cannot go through services.UpdateOpts (omitempty)
			_, err = sc.Put(ctx, sc.ServiceURL("os-services", s.ID), map[string]any{"status": "enabled", "forced_down": false}, nil,
				&gophercloud.RequestOpts{OkCodes: []int{http.StatusOK}})
			if err == nil {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("unfence %s: %w", host, err)
		case <-time.After(2 * time.Second):
		}
	}
}

func server(ctx context.Context, t testing.TB, id string) (*servers.Server, error) {
	return servers.Get(ctx, novaClient(t), id).Extract()
}

// serversOn lists the servers Nova places on host (all projects).
func serversOn(ctx context.Context, t testing.TB, host string) ([]servers.Server, error) {
	pages, err := servers.List(novaClient(t), servers.ListOpts{AllTenants: true, Host: host}).AllPages(ctx)
	if err != nil {
		return nil, err
	}
	return servers.ExtractServers(pages)
}

// settled: ACTIVE with no task running.
func settled(s *servers.Server) bool { return s.Status == "ACTIVE" && s.TaskState == "" }

// activeElsewhere: every server ACTIVE, settled, on a host other than from.
func activeElsewhere(ctx context.Context, t testing.TB, ids []string, from string) bool {
	for _, id := range ids {
		s, err := server(ctx, t, id)
		if err != nil || !settled(s) || s.Host == from || s.Host == "" {
			return false
		}
	}
	return true
}

// bootOn boots n m1.tiny servers on host and waits until they are ACTIVE
// there; the world deletes them when the trial ends.
func (w *world) bootOn(host string, n int) []string {
	t := w.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sc := novaClient(t)
	var ids []string
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("det-%s-%d-%d", host, time.Now().UnixNano()%1e6, i)
		s, err := servers.Create(ctx, sc, servers.CreateOpts{Name: name, FlavorRef: st.Flavor, ImageRef: st.ImageID,
			Networks: "none", AvailabilityZone: "nova:" + host}, nil).Extract()
		if err != nil {
			t.Fatalf("boot %s on %s: %v", name, host, err)
		}
		ids = append(ids, s.ID)
		w.servers = append(w.servers, s.ID)
	}
	for _, id := range ids {
		for {
			s, err := server(ctx, t, id)
			if err == nil && settled(s) && s.Host == host {
				break
			}
			if err == nil && s.Status == "ERROR" {
				t.Fatalf("server %s went to ERROR: %+v", id, s.Fault)
			}
			if ctx.Err() != nil {
				t.Fatalf("server %s not ACTIVE on %s: %+v, %v", id, host, s, err)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	return ids
}

// deleteServers deletes servers and waits until Nova no longer has them.
func deleteServers(ctx context.Context, t testing.TB, ids []string) error {
	sc := novaClient(t)
	for _, id := range ids {
		if err := servers.Delete(ctx, sc, id).ExtractErr(); err != nil && !gophercloud.ResponseCodeIs(err, http.StatusNotFound) {
			return fmt.Errorf("delete %s: %w", id, err)
		}
	}
	for _, id := range ids {
		for {
			_, err := server(ctx, t, id)
			if gophercloud.ResponseCodeIs(err, http.StatusNotFound) {
				break
			}
			if ctx.Err() != nil {
				return fmt.Errorf("server %s still there: %v", id, err)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	return nil
}

// migration is what the tests read of an os-migrations record.
type migration struct {
	ID            int       `json:"id"`
	InstanceUUID  string    `json:"instance_uuid"`
	MigrationType string    `json:"migration_type"`
	Status        string    `json:"status"`
	SourceCompute string    `json:"source_compute"`
	DestCompute   string    `json:"dest_compute"`
	CreatedAt     time.Time `json:"-"`
	Created       string    `json:"created_at"`
}

// migrationsFrom lists the migrations (live, evacuation, any) out of host
// created at or after since.
func migrationsFrom(ctx context.Context, t testing.TB, host string, since time.Time) ([]migration, error) {
	sc := novaClient(t)
	var body struct {
		Migrations []migration `json:"migrations"`
	}
	_, err := sc.Get(ctx, sc.ServiceURL("os-migrations")+"?source_compute="+host, &body, nil)
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, m := range body.Migrations {
		at, err := time.Parse("2006-01-02T15:04:05.000000", m.Created)
		if err != nil {
			at, err = time.Parse(time.RFC3339, m.Created)
		}
		if err != nil {
			return nil, fmt.Errorf("migration %d created_at %q: %w", m.ID, m.Created, err)
		}
		m.CreatedAt = at
		// Nova's timestamps are UTC without a zone; allow a little skew
		if m.SourceCompute == host && !at.Before(since.UTC().Add(-5*time.Second)) {
			out = append(out, m)
		}
	}
	return out, nil
}

// waitComputes waits until every compute is up, enabled and not forced down.
func waitComputes(ctx context.Context, t testing.TB) error {
	var last []string
	for {
		last = last[:0]
		ok := true
		for _, h := range computes {
			s, err := service(ctx, t, h)
			if err != nil {
				ok = false
				last = append(last, h+": "+err.Error())
				continue
			}
			if !healthy(s) {
				ok = false
			}
			last = append(last, describe(s))
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("computes not all up and enabled: %s", strings.Join(last, "; "))
		case <-time.After(time.Second):
		}
	}
}

// world is one trial's use of the shared world: it records the servers the
// trial booted and, when the trial ends, puts everything back.
type world struct {
	t       *testing.T
	servers []string
}

// cleanWorld checks every compute is healthy before a trial and registers
// the restoration for its end: powered on, thawed, started, enabled and not
// forced down, up, the trial's servers deleted. Call it before starting a
// replica, so the replica stops before the restoration runs.
func cleanWorld(t *testing.T) *world {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := waitComputes(ctx, t); err != nil {
		t.Fatalf("world not clean at the start: %v", err)
	}
	w := &world{t: t}
	t.Cleanup(w.restore)
	return w
}

func (w *world) restore() {
	t := w.t
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var errs []error
	for _, h := range computes {
		p, err := bmc.power(h)
		if err == nil && p != "On" && p != "PoweringOn" {
			err = bmc.reset(h, "On")
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("power %s: %w", h, err))
		}
	}
	for _, h := range computes {
		for {
			p, err := bmc.power(h)
			if err == nil && p == "On" {
				break
			}
			if ctx.Err() != nil {
				errs = append(errs, fmt.Errorf("%s not powered on: %s %v", h, p, err))
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if err := st.Thaw(h); err != nil {
			errs = append(errs, err)
		}
		if err := st.Start(h); err != nil {
			errs = append(errs, err)
		}
	}
	for _, h := range computes {
		if err := unfence(ctx, t, h); err != nil {
			errs = append(errs, err)
		}
	}
	if err := waitComputes(ctx, t); err != nil {
		errs = append(errs, err)
	}
	for _, h := range computes {
		if err := clearDisabledTrait(ctx, t, h); err != nil {
			errs = append(errs, err)
		}
	}
	if err := deleteServers(ctx, t, w.servers); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		t.Errorf("restoring the world: %v", err)
	}
}

var (
	placementOnce sync.Once
	placementSC   *gophercloud.ServiceClient
	placementErr  error
)

// disabledTrait reports whether placement still marks host's resource
// provider COMPUTE_STATUS_DISABLED (the scheduler then never picks it).
func disabledTrait(ctx context.Context, t testing.TB, host string) (bool, error) {
	novaClient(t)
	placementOnce.Do(func() {
		placementSC, placementErr = openstack.NewPlacementV1(novaPC, gophercloud.EndpointOpts{Region: "RegionOne"})
		if placementSC != nil {
			placementSC.Microversion = "1.6" // traits
		}
	})
	if placementErr != nil {
		return false, placementErr
	}
	var rps struct {
		ResourceProviders []struct {
			UUID string `json:"uuid"`
		} `json:"resource_providers"`
	}
	if _, err := placementSC.Get(ctx, placementSC.ServiceURL("resource_providers")+"?name="+host, &rps, nil); err != nil {
		return false, err
	}
	if len(rps.ResourceProviders) != 1 {
		return false, fmt.Errorf("placement: %d resource providers named %s", len(rps.ResourceProviders), host)
	}
	var tr struct {
		Traits []string `json:"traits"`
	}
	if _, err := placementSC.Get(ctx, placementSC.ServiceURL("resource_providers", rps.ResourceProviders[0].UUID, "traits"), &tr, nil); err != nil {
		return false, err
	}
	return slices.Contains(tr.Traits, "COMPUTE_STATUS_DISABLED"), nil
}

// clearDisabledTrait makes sure placement no longer marks host disabled. A
// compute enabled while Nova saw it down (restarted after a disable by
// fenced or Masakari) keeps the COMPUTE_STATUS_DISABLED trait until its
// next periodic resource update, up to a minute later, and every boot
// aimed at it fails with NoValidHost meanwhile; a disable and an enable
// of the compute, now up, sync the trait at once.
func clearDisabledTrait(ctx context.Context, t testing.TB, host string) error {
	has, err := disabledTrait(ctx, t, host)
	if err != nil || !has {
		return err
	}
	s, err := service(ctx, t, host)
	if err != nil {
		return err
	}
	sc := novaClient(t)
	for _, status := range []string{"disabled", "enabled"} {
		if _, err := sc.Put(ctx, sc.ServiceURL("os-services", s.ID), map[string]any{"status": status}, nil,
			&gophercloud.RequestOpts{OkCodes: []int{http.StatusOK}}); err != nil {
			return fmt.Errorf("%s: sync the disabled trait (%s): %w", host, status, err)
		}
	}
	for {
		has, err := disabledTrait(ctx, t, host)
		if err == nil && !has {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: placement still marks it COMPUTE_STATUS_DISABLED: %v", host, err)
		case <-time.After(time.Second):
		}
	}
}
