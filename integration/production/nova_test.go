package production

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/services"
)

// The tests talk to Nova with plain gophercloud as the admin of the stack,
// independent of fenced's own adapter.

var (
	novaOnce sync.Once
	novaSC   *gophercloud.ServiceClient
	novaErr  error
)

func novaClient(t testing.TB) *gophercloud.ServiceClient {
	t.Helper()
	novaOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		ao := gophercloud.AuthOptions{IdentityEndpoint: os.Getenv("OS_AUTH_URL"), Username: os.Getenv("OS_USERNAME"), Password: os.Getenv("OS_PASSWORD"),
			DomainName: "Default", AllowReauth: true, Scope: &gophercloud.AuthScope{ProjectName: os.Getenv("OS_PROJECT_NAME"), DomainName: "Default"}}
		pc, err := openstack.AuthenticatedClient(ctx, ao)
		if err != nil {
			novaErr = err
			return
		}
		novaSC, novaErr = openstack.NewComputeV2(pc, gophercloud.EndpointOpts{Region: "RegionOne"})
		if novaSC != nil {
			novaSC.Microversion = "2.93" // Zed's maximum: service UUIDs, forced_down, host filter
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

// unfence puts host back in service in Nova (enabled, not forced down),
// whatever fenced left behind.
func unfence(ctx context.Context, t testing.TB, host string) error {
	s, err := service(ctx, t, host)
	if err != nil {
		return err
	}
	if s.Status == "enabled" && !s.ForcedDown {
		return nil
	}
	sc := novaClient(t)
	// forced_down=false cannot go through services.UpdateOpts (omitempty)
	_, err = sc.Put(ctx, sc.ServiceURL("os-services", s.ID), map[string]any{"status": "enabled", "forced_down": false}, nil,
		&gophercloud.RequestOpts{OkCodes: []int{http.StatusOK}})
	return err
}

// server reads one server.
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

// bootOn boots n m1.tiny servers on host and waits until they are ACTIVE
// there. The world deletes them when the test ends.
func (w *world) bootOn(host string, n int) []string {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sc := novaClient(w.t)
	var ids []string
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("%s-%s-%d", strings.ToLower(w.short), host, i)
		s, err := servers.Create(ctx, sc, servers.CreateOpts{Name: name, FlavorRef: st.Flavor, ImageRef: st.ImageID,
			Networks: "none", AvailabilityZone: "nova:" + host}, nil).Extract()
		if err != nil {
			w.t.Fatalf("boot %s on %s: %v", name, host, err)
		}
		w.servers = append(w.servers, s.ID)
		ids = append(ids, s.ID)
	}
	for _, id := range ids {
		for {
			s, err := server(ctx, w.t, id)
			if err == nil && settled(s) && s.Host == host {
				break
			}
			if err == nil && s.Status == "ERROR" {
				w.t.Fatalf("server %s went to ERROR: %+v", id, s.Fault)
			}
			if ctx.Err() != nil {
				w.t.Fatalf("server %s not ACTIVE on %s: %+v, %v", id, host, s, err)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	w.t.Logf("%d servers ACTIVE on %s", n, host)
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

// world is one test's use of the shared world: it records the servers the
// test booted and, when the test ends, puts everything back.
type world struct {
	t       *testing.T
	short   string
	servers []string
	mark    int // BMC log position at the start
}

// newWorld checks the world is clean and registers its restoration; call it
// first in a test, before starting replicas, so they stop before it runs.
func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{t: t, short: shortName(t.Name()), mark: bmc.mark()}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := waitComputes(ctx, t); err != nil {
		t.Fatalf("world not clean at the start: %v", err)
	}
	t.Cleanup(w.restore)
	return w
}

func (w *world) restore() {
	t := w.t
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var errs []error
	for _, h := range computes {
		// power: back on through the BMC (the hook starts the compute)
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
		// a frozen compute thaws; a dead one starts
		if err := st.Thaw(h); err != nil {
			errs = append(errs, err)
		}
		if err := st.Start(h); err != nil {
			errs = append(errs, err)
		}
		if err := unfence(ctx, t, h); err != nil {
			errs = append(errs, fmt.Errorf("unfence %s: %w", h, err))
		}
	}
	if err := waitComputes(ctx, t); err != nil {
		errs = append(errs, err)
	}
	if err := deleteServers(ctx, t, w.servers); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		t.Errorf("restoring the world: %v", err)
	}
}

func shortName(name string) string {
	name = strings.TrimPrefix(name, "Test")
	if i := strings.IndexByte(name, '/'); i >= 0 {
		name = name[:i]
	}
	if len(name) > 24 {
		name = name[:24]
	}
	return name
}
