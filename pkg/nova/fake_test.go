package nova

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"

	"github.com/fencedhq/fenced/pkg/clock"
)

// fakeNova is a small in-memory Nova + placement behind httptest: enough of
// the API to check what pkg/nova sends and how it reads the answers.
type fakeNova struct {
	t  *testing.T
	mu sync.Mutex

	svc        map[string]any // one nova-compute on cn1
	server     map[string]any
	migrations []map[string]any
	requests   []recorded
	fail503    int // answer this many GETs with 503 first
	now        func() time.Time
}

type recorded struct {
	Method, Path, Query, Body, Microversion string
}

func newFakeNova(t *testing.T, now func() time.Time) (*fakeNova, *Client, *clock.Fake) {
	t.Helper()
	f := &fakeNova{t: t, now: now,
		svc: map[string]any{"id": "svc-1", "binary": "nova-compute", "host": "cn1", "zone": "nova",
			"status": "enabled", "state": "up", "forced_down": false, "disabled_reason": nil, "updated_at": nil},
		server: map[string]any{"id": "vm-1", "name": "vm", "status": "ACTIVE", "tenant_id": "p",
			"OS-EXT-SRV-ATTR:host": "cn1", "OS-EXT-STS:task_state": nil, "OS-EXT-STS:vm_state": "active", "OS-EXT-STS:power_state": 1},
	}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	pc, err := openstack.NewClient(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	pc.TokenID = "tok"
	compute := &gophercloud.ServiceClient{ProviderClient: pc, Endpoint: srv.URL + "/v2.1/", Type: "compute", Microversion: "2.93"}
	placement := &gophercloud.ServiceClient{ProviderClient: pc, Endpoint: srv.URL + "/placement/", Type: "placement", Microversion: "1.0"}
	fc := clock.NewFake(time.Date(2026, 11, 25, 1, 0, 0, 0, time.UTC))
	c := NewWithServiceClients(Config{Clock: fc, Backoff: time.Millisecond, PollInterval: time.Millisecond,
		ReportInterval: 5 * time.Second}, compute, placement)
	// Wait loops use the clock; keep a fake clock moving in the background.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
				fc.Advance(time.Millisecond)
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
	return f, c, fc
}

func (f *fakeNova) reqs(method, prefix string) []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []recorded
	for _, r := range f.requests {
		if r.Method == method && strings.HasPrefix(r.Path, prefix) {
			out = append(out, r)
		}
	}
	return out
}

func (f *fakeNova) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, recorded{r.Method, r.URL.Path, r.URL.RawQuery, string(body), r.Header.Get("OpenStack-API-Version")})
	if r.Method == http.MethodGet && f.fail503 > 0 {
		f.fail503--
		http.Error(w, `{"error":"busy"}`, http.StatusServiceUnavailable)
		return
	}
	js := func(code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(v)
	}
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/v2.1/os-services":
		js(200, map[string]any{"services": []any{f.svc}})
	case r.Method == http.MethodPut && r.URL.Path == "/v2.1/os-services/svc-1":
		var in map[string]any
		if err := json.Unmarshal(body, &in); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		for k, v := range in {
			if k == "status" || k == "disabled_reason" || k == "forced_down" {
				f.svc[k] = v
			}
		}
		if fd, ok := in["forced_down"].(bool); ok && fd {
			f.svc["state"] = "down"
		}
		f.svc["updated_at"] = f.now().UTC().Format("2006-01-02T15:04:05.000000")
		js(200, map[string]any{"service": f.svc})
	case r.Method == http.MethodGet && r.URL.Path == "/v2.1/servers/detail":
		out := []any{}
		if st := r.URL.Query().Get("status"); st == "" || st == f.server["status"] {
			out = append(out, f.server)
		}
		js(200, map[string]any{"servers": out})
	case r.Method == http.MethodGet && r.URL.Path == "/v2.1/servers/vm-1":
		js(200, map[string]any{"server": f.server})
	case r.Method == http.MethodPost && r.URL.Path == "/v2.1/servers/vm-1/action":
		var in map[string]map[string]any
		_ = json.Unmarshal(body, &in)
		switch {
		case in["os-migrateLive"] != nil:
			if _, ok := in["os-migrateLive"]["block_migration"]; !ok {
				js(400, map[string]any{"badRequest": map[string]any{"message": "'block_migration' is a required property"}})
				return
			}
			dest, _ := in["os-migrateLive"]["host"].(string)
			f.migrations = append(f.migrations, map[string]any{"id": len(f.migrations) + 1, "instance_uuid": "vm-1",
				"migration_type": "live-migration", "status": "running", "source_compute": "cn1", "dest_compute": nullable(dest)})
			w.WriteHeader(202)
		case in["evacuate"] != nil:
			if _, ok := in["evacuate"]["onSharedStorage"]; ok {
				js(400, map[string]any{"badRequest": map[string]any{"message": "Additional properties are not allowed ('onSharedStorage' was unexpected)"}})
				return
			}
			dest, _ := in["evacuate"]["host"].(string)
			f.migrations = append(f.migrations, map[string]any{"id": len(f.migrations) + 1, "instance_uuid": "vm-1",
				"migration_type": "evacuation", "status": "done", "source_compute": "cn1", "dest_compute": nullable(dest)})
			f.server["OS-EXT-SRV-ATTR:host"] = dest
			if r.Header.Get("OpenStack-API-Version") >= "compute 2.95" {
				f.server["status"] = "SHUTOFF"
				f.server["OS-EXT-STS:power_state"] = 4
			}
			w.WriteHeader(200) // empty body, as Nova >= 2.14
		case strings.Contains(string(body), `"os-start"`):
			f.server["status"] = "ACTIVE"
			f.server["OS-EXT-STS:power_state"] = 1
			w.WriteHeader(202)
		default:
			http.Error(w, "unknown action", 400)
		}
	case r.Method == http.MethodGet && r.URL.Path == "/v2.1/os-migrations":
		var out []any
		for _, m := range f.migrations {
			if t := r.URL.Query().Get("migration_type"); t == "" || m["migration_type"] == t {
				out = append(out, m)
			}
		}
		// the live migration finishes after being seen once
		for _, m := range f.migrations {
			if m["status"] == "running" {
				m["status"] = "completed"
			}
		}
		js(200, map[string]any{"migrations": out})
	case r.Method == http.MethodDelete && strings.HasPrefix(r.URL.Path, "/v2.1/servers/vm-1/migrations/"):
		w.WriteHeader(202)
	case r.Method == http.MethodGet && r.URL.Path == "/v2.1/os-hypervisors/detail":
		hv := map[string]any{"id": "rp-1", "hypervisor_hostname": "cn1.node", "state": "up", "status": "enabled",
			"service": map[string]any{"host": "cn1", "id": "svc-1"}}
		if r.Header.Get("OpenStack-API-Version") <= "compute 2.87" {
			hv["vcpus"], hv["vcpus_used"], hv["memory_mb"], hv["memory_mb_used"] = 8, 6, 16384, 4096
		}
		js(200, map[string]any{"hypervisors": []any{hv}})
	case r.Method == http.MethodGet && r.URL.Path == "/placement/resource_providers/rp-1/inventories":
		js(200, map[string]any{"resource_provider_generation": 3, "inventories": map[string]any{
			"VCPU":      map[string]any{"total": 10, "reserved": 2, "allocation_ratio": 4.0, "min_unit": 1, "max_unit": 10, "step_size": 1},
			"MEMORY_MB": map[string]any{"total": 16896, "reserved": 512, "allocation_ratio": 1.5, "min_unit": 1, "max_unit": 16896, "step_size": 1}}})
	case r.Method == http.MethodGet && r.URL.Path == "/placement/resource_providers/rp-1/usages":
		js(200, map[string]any{"resource_provider_generation": 3, "usages": map[string]any{"VCPU": 12, "MEMORY_MB": 6144}})
	default:
		http.Error(w, "fake nova: no route "+r.Method+" "+r.URL.Path, 404)
	}
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}
