package nova

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"

	"github.com/fencedhq/fenced/pkg/clock"
)

// cpFake puts in front of fakeNova what the control-plane adapter needs
// beyond it: a second compute (cn2), the server list with embedded flavors,
// host aggregates, glance images, a service PUT that hangs the way nova-api
// does while it waits on a frozen compute, and evacuations and live
// migrations that stay under way until the test ends them. State lives in
// fakeNova and is guarded by its mutex.
type cpFake struct {
	*fakeNova
	srv *httptest.Server
	fc  *clock.Fake

	// hangPUT makes the service PUT hang until the client gives up; with
	// hangSaves the change is saved first (nova-api saves before its RPC to
	// the compute), without it nothing is saved.
	hangPUT, hangSaves bool
	hung               int
	slowEvac, slowLM   bool
	extraServers       []map[string]any
	aggregates         []any
	images             map[string]map[string]any
}

func newCPFake(t *testing.T) *cpFake {
	t.Helper()
	cf := &cpFake{images: map[string]map[string]any{}}
	f, _, fc := newFakeNova(t, func() time.Time { return cf.fc.Now() })
	cf.fakeNova, cf.fc = f, fc
	cf.srv = httptest.NewServer(cf)
	t.Cleanup(cf.srv.Close)
	return cf
}

// client is a fresh Client on the fake, as a new leader would build one.
func (cf *cpFake) client(t *testing.T) (*Client, *gophercloud.ServiceClient) {
	t.Helper()
	pc, err := openstack.NewClient(cf.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	pc.TokenID = "tok"
	u := cf.srv.URL
	compute := &gophercloud.ServiceClient{ProviderClient: pc, Endpoint: u + "/v2.1/", Type: "compute", Microversion: "2.93"}
	placement := &gophercloud.ServiceClient{ProviderClient: pc, Endpoint: u + "/placement/", Type: "placement", Microversion: "1.0"}
	image := &gophercloud.ServiceClient{ProviderClient: pc, Endpoint: u + "/image/", ResourceBase: u + "/image/v2/", Type: "image"}
	c := NewWithServiceClients(Config{Clock: cf.fc, Backoff: time.Millisecond, PollInterval: time.Millisecond,
		ReportInterval: 5 * time.Second}, compute, placement)
	return c, image
}

func (cf *cpFake) record(r *http.Request, body []byte) {
	cf.requests = append(cf.requests, recorded{r.Method, r.URL.Path, r.URL.RawQuery, string(body), r.Header.Get("OpenStack-API-Version")})
}

func (cf *cpFake) hungPUTs() int {
	cf.mu.Lock()
	defer cf.mu.Unlock()
	return cf.hung
}

func (cf *cpFake) countActions(action string) int {
	n := 0
	for _, r := range cf.reqs("POST", "/v2.1/servers/vm-1/action") {
		if strings.Contains(r.Body, `"`+action+`"`) {
			n++
		}
	}
	return n
}

func (cf *cpFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	js := func(v any) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
	cf.mu.Lock()
	switch p := r.URL.Path; {
	case r.Method == http.MethodPut && p == "/v2.1/os-services/svc-1" && cf.hangPUT:
		cf.record(r, body)
		cf.hung++
		if cf.hangSaves {
			var in map[string]any
			_ = json.Unmarshal(body, &in)
			for k, v := range in {
				cf.svc[k] = v
			}
			cf.svc["updated_at"] = cf.now().UTC().Format("2006-01-02T15:04:05.000000")
		}
		cf.mu.Unlock()
		select { // nova-api waiting on the compute's RPC answer
		case <-r.Context().Done():
		case <-time.After(20 * time.Second):
		}
		return
	case r.Method == http.MethodGet && p == "/v2.1/os-services":
		cf.record(r, body)
		cn2 := map[string]any{"id": "svc-2", "binary": "nova-compute", "host": "cn2", "zone": "nova", "status": "enabled",
			"state": "up", "forced_down": false, "disabled_reason": nil, "updated_at": cf.now().UTC().Format("2006-01-02T15:04:05.000000")}
		js(map[string]any{"services": []any{cf.svc, cn2}})
	case r.Method == http.MethodGet && p == "/v2.1/servers/detail":
		cf.record(r, body)
		var out []any
		for _, s := range append([]map[string]any{cf.server}, cf.extraServers...) {
			if s["OS-EXT-SRV-ATTR:host"] == r.URL.Query().Get("host") {
				out = append(out, s)
			}
		}
		js(map[string]any{"servers": out})
	case r.Method == http.MethodGet && p == "/v2.1/os-aggregates":
		cf.record(r, body)
		js(map[string]any{"aggregates": cf.aggregates})
	case r.Method == http.MethodGet && strings.HasPrefix(p, "/image/v2/images/"):
		cf.record(r, body)
		img, ok := cf.images[strings.TrimPrefix(p, "/image/v2/images/")]
		if !ok {
			http.Error(w, "no such image", 404)
		} else {
			js(img)
		}
	case r.Method == http.MethodPost && p == "/v2.1/servers/vm-1/action" && cf.slowEvac && bytes.Contains(body, []byte(`"evacuate"`)):
		// accepted: task_state first, then the migration record, as nova-api does
		cf.record(r, body)
		var in map[string]map[string]any
		_ = json.Unmarshal(body, &in)
		dest, _ := in["evacuate"]["host"].(string)
		cf.server["OS-EXT-STS:task_state"] = "rebuilding"
		cf.server["status"] = "REBUILD"
		cf.migrations = append(cf.migrations, map[string]any{"id": len(cf.migrations) + 1, "instance_uuid": "vm-1",
			"migration_type": "evacuation", "status": "accepted", "source_compute": "cn1", "dest_compute": nullable(dest)})
		w.WriteHeader(200)
	case r.Method == http.MethodPost && p == "/v2.1/servers/vm-1/action" && cf.slowLM && bytes.Contains(body, []byte(`"os-migrateLive"`)):
		cf.record(r, body)
		cf.server["OS-EXT-STS:task_state"] = "migrating"
		cf.server["status"] = "MIGRATING"
		cf.migrations = append(cf.migrations, map[string]any{"id": len(cf.migrations) + 1, "instance_uuid": "vm-1",
			"migration_type": "live-migration", "status": "preparing", "source_compute": "cn1", "dest_compute": "cn2"})
		w.WriteHeader(202)
	default:
		cf.mu.Unlock()
		cf.fakeNova.ServeHTTP(w, r)
		return
	}
	cf.mu.Unlock()
}

// finishEvacuation ends the pending evacuation on its destination.
func (cf *cpFake) finishEvacuation() {
	cf.mu.Lock()
	defer cf.mu.Unlock()
	for _, m := range cf.migrations {
		if m["migration_type"] == "evacuation" && m["status"] == "accepted" {
			m["status"] = "done"
			cf.server["OS-EXT-SRV-ATTR:host"] = m["dest_compute"]
			cf.server["OS-EXT-STS:task_state"] = nil
			cf.server["status"] = "ACTIVE"
		}
	}
}

// failEvacuation ends the pending evacuation in failure: the server stays
// on the source, in ERROR.
func (cf *cpFake) failEvacuation() {
	cf.mu.Lock()
	defer cf.mu.Unlock()
	for _, m := range cf.migrations {
		if m["migration_type"] == "evacuation" && m["status"] == "accepted" {
			m["status"] = "failed"
			cf.server["OS-EXT-STS:task_state"] = nil
			cf.server["OS-EXT-STS:vm_state"] = "error"
			cf.server["status"] = "ERROR"
		}
	}
}

const novaTS = "2006-01-02T15:04:05.000000"

// Disable of a compute Nova still thinks up, whose PUT hangs (nova-api saved
// the status, then waits on the frozen compute): Disable returns within the
// bound, sends one PUT, succeeds by reading the service back, and the
// updated_at of that read-back is not taken for a heartbeat.
func TestControlPlaneDisableBoundedReadBack(t *testing.T) {
	cf := newCPFake(t)
	c, _ := cf.client(t)
	cp := &ControlPlane{C: c, DisableTimeout: 300 * time.Millisecond}
	ctx := context.Background()
	t0 := cf.fc.Now()
	cf.mu.Lock()
	cf.svc["updated_at"] = t0.Format(novaTS)
	cf.mu.Unlock()
	if s, err := c.ServiceStatus(ctx, "cn1"); err != nil || !s.LastHeartbeat.Equal(t0) {
		t.Fatalf("first look: %+v, %v", s, err)
	}
	cf.fc.Set(t0.Add(40 * time.Second)) // frozen 40 s; Nova's state still "up"
	cf.mu.Lock()
	cf.hangPUT, cf.hangSaves = true, true
	cf.mu.Unlock()

	start := time.Now()
	err := cp.Disable(ctx, "cn1", "heartbeat lag")
	took := time.Since(start)
	if err != nil {
		t.Fatalf("Disable: %v", err)
	}
	if took < 300*time.Millisecond || took > 2*time.Second {
		t.Fatalf("Disable took %v; want the 300 ms PUT bound and a quick read-back", took)
	}
	if cf.hungPUTs() != 1 || len(cf.reqs("PUT", "/v2.1/os-services/")) != 1 {
		t.Fatalf("%d hung PUTs, %d PUTs: want exactly one, no retry", cf.hungPUTs(), len(cf.reqs("PUT", "/v2.1/os-services/")))
	}
	s, err := c.ServiceStatus(ctx, "cn1")
	if err != nil {
		t.Fatal(err)
	}
	if s.Enabled || s.DisabledReason != "fenced: heartbeat lag" {
		t.Fatalf("service after Disable: %+v", s)
	}
	if !s.UpdatedAt.After(t0.Add(30*time.Second)) || !s.LastHeartbeat.Equal(t0) || !s.LagCritical {
		t.Fatalf("read-back updated_at %v taken for a heartbeat: last heartbeat %v (want %v), critical %v",
			s.UpdatedAt, s.LastHeartbeat, t0, s.LagCritical)
	}

	// already disabled with this reason: no PUT at all
	if err := cp.Disable(ctx, "cn1", "heartbeat lag"); err != nil || cf.hungPUTs() != 1 {
		t.Fatalf("repeat Disable: %v, %d hung PUTs", err, cf.hungPUTs())
	}
	// Enable is bounded the same way
	start = time.Now()
	if err := cp.Enable(ctx, "cn1"); err != nil || time.Since(start) > 2*time.Second {
		t.Fatalf("Enable: %v after %v", err, time.Since(start))
	}
	if s, _ := c.ServiceStatus(ctx, "cn1"); !s.Enabled || !s.LastHeartbeat.Equal(t0) {
		t.Fatalf("after Enable: %+v", s)
	}

	// a PUT that hangs before Nova saved anything is not confirmed
	cf.mu.Lock()
	cf.hangSaves = false
	cf.mu.Unlock()
	start = time.Now()
	if err := cp.Disable(ctx, "cn1", "again"); !errors.Is(err, ErrNotConfirmed) || time.Since(start) > 2*time.Second {
		t.Fatalf("Disable with nothing saved: %v after %v, want ErrNotConfirmed within the bound", err, time.Since(start))
	}
}

// Nova's disabled_reason is at most 255 characters.
func TestControlPlaneDisableReasonCut(t *testing.T) {
	cf := newCPFake(t)
	c, _ := cf.client(t)
	cp := &ControlPlane{C: c}
	if err := cp.Disable(context.Background(), "cn1", strings.Repeat("é", 300)); err != nil {
		t.Fatal(err)
	}
	puts := cf.reqs("PUT", "/v2.1/os-services/svc-1")
	var in map[string]string
	if len(puts) != 1 || json.Unmarshal([]byte(puts[0].Body), &in) != nil {
		t.Fatalf("PUTs %+v", puts)
	}
	if n := utf8.RuneCountInString(in["disabled_reason"]); n != 255 || !strings.HasPrefix(in["disabled_reason"], ReasonPrefix) {
		t.Fatalf("disabled_reason of %d characters: %q", n, in["disabled_reason"])
	}
}

// A new leader asking to evacuate a server whose evacuation the previous
// leader started waits for that one: Nova sees exactly one evacuate action,
// and a later repeat is a no-op.
func TestControlPlaneEvacuateWaitsForRunningEvacuation(t *testing.T) {
	cf := newCPFake(t)
	cf.slowEvac = true
	ctx := context.Background()
	cA, _ := cf.client(t)
	a := &ControlPlane{C: cA}
	if err := a.ForceDown(ctx, "cn1", true); err != nil {
		t.Fatal(err)
	}
	// leader A starts the evacuation and loses its deadline (leadership) midway
	actx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	err := a.Evacuate(actx, "vm-1", "cn2")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("leader A: %v, want its deadline", err)
	}
	if n := cf.countActions("evacuate"); n != 1 {
		t.Fatalf("%d evacuate actions after leader A", n)
	}

	// leader B repeats the step (its placer picked cn3): it must follow A's
	cB, _ := cf.client(t)
	b := &ControlPlane{C: cB}
	done := make(chan error, 1)
	go func() { done <- b.Evacuate(ctx, "vm-1", "cn3") }()
	select {
	case err := <-done:
		t.Fatalf("leader B returned before the evacuation finished: %v", err)
	case <-time.After(150 * time.Millisecond):
	}
	cf.finishEvacuation()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("leader B: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("leader B still waiting after the evacuation finished")
	}
	if n := cf.countActions("evacuate"); n != 1 {
		t.Fatalf("%d evacuate actions, want exactly 1", n)
	}
	// and once more, with the server ACTIVE on cn2 (not forced down)
	if err := b.Evacuate(ctx, "vm-1", "cn3"); err != nil {
		t.Fatalf("repeat after completion: %v", err)
	}
	if n := cf.countActions("evacuate"); n != 1 {
		t.Fatalf("%d evacuate actions after the repeat, want exactly 1", n)
	}
}

// The evacuation a previous leader started fails: the new leader, which was
// waiting for it, reports that failure and does not start another.
func TestControlPlaneAdoptedEvacuationFails(t *testing.T) {
	cf := newCPFake(t)
	cf.slowEvac = true
	ctx := context.Background()
	c, _ := cf.client(t)
	cp := &ControlPlane{C: c}
	if err := cp.ForceDown(ctx, "cn1", true); err != nil {
		t.Fatal(err)
	}
	actx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	_ = cp.Evacuate(actx, "vm-1", "cn2")
	cancel()
	done := make(chan error, 1)
	go func() { done <- cp.Evacuate(ctx, "vm-1", "cn2") }()
	time.Sleep(100 * time.Millisecond)
	cf.failEvacuation()
	select {
	case err := <-done:
		if !errors.Is(err, ErrMigrationFailed) {
			t.Fatalf("adopted evacuation failed: %v, want ErrMigrationFailed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("still waiting after the evacuation failed")
	}
	if n := cf.countActions("evacuate"); n != 1 {
		t.Fatalf("%d evacuate actions, want 1", n)
	}
}

// Evacuation from a forced-down host to dest, waited for until ACTIVE there.
func TestControlPlaneEvacuate(t *testing.T) {
	cf := newCPFake(t)
	c, _ := cf.client(t)
	cp := &ControlPlane{C: c}
	ctx := context.Background()
	if err := cp.Evacuate(ctx, "vm-1", "cn2"); !errors.Is(err, ErrNotFenced) {
		t.Fatalf("Evacuate from an unfenced host: %v, want ErrNotFenced", err)
	}
	if err := cp.ForceDown(ctx, "cn1", true); err != nil {
		t.Fatal(err)
	}
	if err := cp.Evacuate(ctx, "vm-1", "cn2"); err != nil {
		t.Fatal(err)
	}
	s, _ := c.GetServer(ctx, "vm-1")
	if s.Host != "cn2" || s.Status != "ACTIVE" || cf.countActions("evacuate") != 1 {
		t.Fatalf("after Evacuate: %+v, %d evacuate actions", s, cf.countActions("evacuate"))
	}
}

// LiveMigrate whose context expires aborts the migration.
func TestControlPlaneLiveMigrateAbortsOnDeadline(t *testing.T) {
	cf := newCPFake(t)
	cf.slowLM = true
	c, _ := cf.client(t)
	cp := &ControlPlane{C: c}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := cp.LiveMigrate(ctx, "vm-1", "cn2")
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "aborted") {
		t.Fatalf("LiveMigrate past its deadline: %v", err)
	}
	if d := cf.reqs("DELETE", "/v2.1/servers/vm-1/migrations/1"); len(d) != 1 {
		t.Fatalf("abort requests %+v, want one DELETE of migration 1", d)
	}
	// a new leader follows the migration still under way instead of starting one
	ctx2, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	_ = cp.LiveMigrate(ctx2, "vm-1", "cn2")
	if n := cf.countActions("os-migrateLive"); n != 1 {
		t.Fatalf("%d live-migrate actions, want 1", n)
	}
}

func TestControlPlaneLiveMigrate(t *testing.T) {
	cf := newCPFake(t)
	c, _ := cf.client(t)
	if err := (&ControlPlane{C: c}).LiveMigrate(context.Background(), "vm-1", "cn2"); err != nil {
		t.Fatal(err)
	}
	if n := cf.countActions("os-migrateLive"); n != 1 {
		t.Fatalf("%d live-migrate actions", n)
	}
}

func (cf *cpFake) fleet() {
	cf.mu.Lock()
	defer cf.mu.Unlock()
	cf.server["flavor"] = map[string]any{"vcpus": 2, "ram": 4096, "disk": 10, "original_name": "m1.small",
		"extra_specs": map[string]any{"evacuable": "True"}}
	cf.server["image"] = map[string]any{"id": "img-1"}
	srv := func(id, host, img string, vcpus, ram int, power int, status string) map[string]any {
		return map[string]any{"id": id, "name": id, "status": status, "tenant_id": "p", "OS-EXT-SRV-ATTR:host": host,
			"OS-EXT-STS:task_state": nil, "OS-EXT-STS:vm_state": "active", "OS-EXT-STS:power_state": power,
			"image": map[string]any{"id": img}, "flavor": map[string]any{"vcpus": vcpus, "ram": ram, "original_name": "x", "extra_specs": map[string]any{}}}
	}
	cf.extraServers = []map[string]any{
		srv("vm-2", "cn1", "img-2", 4, 8192, 4, "SHUTOFF"),
		srv("vm-3", "cn1", "img-3", 1, 512, 1, "ACTIVE"),
		srv("vm-4", "cn2", "img-2", 8, 16384, 1, "ACTIVE"),
	}
	cf.extraServers[1]["image"] = "" // booted from a volume
	cf.images["img-1"] = map[string]any{"id": "img-1", "name": "a", "status": "active"}
	cf.images["img-2"] = map[string]any{"id": "img-2", "name": "b", "status": "active", "evacuable": "true"}
	cf.aggregates = []any{
		map[string]any{"id": 1, "name": "ha", "hosts": []any{"cn2"}, "metadata": map[string]any{"ha": "on"}},
		map[string]any{"id": 2, "name": "rack1", "hosts": []any{"cn1", "cn2"}, "metadata": map[string]any{"rack": "1"}},
	}
}

// Servers carries flavor sizes and power state; the evacuable filter works
// on the flavor extra spec, the image property and the aggregate metadata.
func TestControlPlaneServersAndEvacuable(t *testing.T) {
	cf := newCPFake(t)
	cf.fleet()
	c, image := cf.client(t)
	ctx := context.Background()
	type want struct {
		vcpus, ram int
		running    bool
	}
	sizes := map[string]want{"vm-1": {2, 4096, true}, "vm-2": {4, 8192, false}, "vm-3": {1, 512, true}}
	evac := func(f Evacuable) map[string]bool {
		t.Helper()
		ss, err := (&ControlPlane{C: c, Image: image, Evacuable: f}).Servers(ctx, "cn1")
		if err != nil {
			t.Fatalf("Servers with %+v: %v", f, err)
		}
		if len(ss) != 3 {
			t.Fatalf("servers on cn1: %+v", ss)
		}
		out := map[string]bool{}
		for _, s := range ss {
			w, ok := sizes[s.ID]
			if !ok || s.VCPUs != w.vcpus || s.RAMMB != w.ram || s.Running != w.running {
				t.Fatalf("server %+v, want %+v", s, w)
			}
			out[s.ID] = s.Evacuable
		}
		return out
	}
	check := func(name string, got map[string]bool, yes ...string) {
		t.Helper()
		for _, id := range []string{"vm-1", "vm-2", "vm-3"} {
			w := false
			for _, y := range yes {
				w = w || y == id
			}
			if got[id] != w {
				t.Errorf("%s: %s evacuable %v, want %v (%v)", name, id, got[id], w, got)
			}
		}
	}
	check("no filter", evac(Evacuable{}), "vm-1", "vm-2", "vm-3")
	check("flavor extra spec", evac(Evacuable{FlavorExtraSpec: "evacuable=true"}), "vm-1")
	before := len(cf.reqs("GET", "/image/"))
	check("image property", evac(Evacuable{ImageProperty: "evacuable=true"}), "vm-2")
	if n := len(cf.reqs("GET", "/image/")) - before; n != 2 {
		t.Errorf("%d glance GETs, want 2 (img-1, img-2; vm-3 has no image)", n)
	}
	check("either", evac(Evacuable{FlavorExtraSpec: "evacuable=true", ImageProperty: "evacuable=true"}), "vm-1", "vm-2")
	check("aggregate of another host", evac(Evacuable{AggregateMetadata: "ha=on"}))
	check("aggregate of cn1", evac(Evacuable{AggregateMetadata: "rack=1"}), "vm-1", "vm-2", "vm-3")

	// a group's own filter replaces the fleet's for its hosts
	var asked []string
	perGroup := &ControlPlane{C: c, Image: image, Evacuable: Evacuable{FlavorExtraSpec: "evacuable=true"},
		EvacuableFor: func(h string) Evacuable { asked = append(asked, h); return Evacuable{ImageProperty: "evacuable=true"} }}
	ss, err := perGroup.Servers(ctx, "cn1")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, s := range ss {
		got[s.ID] = s.Evacuable
	}
	check("the group's filter", got, "vm-2")
	if strings.Join(asked, ",") != "cn1" {
		t.Errorf("EvacuableFor asked for %v, want cn1", asked)
	}

	if _, err := (&ControlPlane{C: c, Evacuable: Evacuable{FlavorExtraSpec: "evacuable"}}).Servers(ctx, "cn1"); err == nil {
		t.Error("a filter that is not key=value was accepted")
	}
	if _, err := (&ControlPlane{C: c, Evacuable: Evacuable{ImageProperty: "evacuable=true"}}).Servers(ctx, "cn1"); !errors.Is(err, ErrNoImageService) {
		t.Errorf("image filter without glance: %v", err)
	}
}

// MigrationSince finds the newest record of the type created after the
// intent, allowing for clock skew.
func TestControlPlaneMigrationSince(t *testing.T) {
	cf := newCPFake(t)
	c, _ := cf.client(t)
	cp := &ControlPlane{C: c}
	since := time.Date(2026, 11, 25, 2, 0, 0, 0, time.UTC)
	mig := func(id int, typ string, at time.Time) map[string]any {
		return map[string]any{"id": id, "instance_uuid": "vm-1", "migration_type": typ, "status": "done",
			"source_compute": "cn1", "dest_compute": "cn2", "created_at": at.Format(novaTS), "updated_at": at.Format(novaTS)}
	}
	cf.mu.Lock()
	cf.migrations = []map[string]any{
		mig(1, "evacuation", since.Add(-time.Hour)),
		mig(2, "evacuation", since.Add(-3*time.Second)), // Nova's clock a little behind
		mig(3, "live-migration", since.Add(time.Second)),
	}
	cf.mu.Unlock()
	ctx := context.Background()
	m, ok, err := cp.MigrationSince(ctx, "vm-1", "evacuation", since)
	if err != nil || !ok || m.ID != 2 {
		t.Fatalf("evacuation since: %+v, %v, %v", m, ok, err)
	}
	if m, ok, err := cp.MigrationSince(ctx, "vm-1", "evacuation", since.Add(time.Minute)); err != nil || ok {
		t.Fatalf("nothing after: %+v, %v, %v", m, ok, err)
	}
	if m, ok, _ := cp.MigrationSince(ctx, "vm-1", "live-migration", since); !ok || m.ID != 3 {
		t.Fatalf("live migration since: %+v, %v", m, ok)
	}
}

func TestControlPlaneHeadroom(t *testing.T) {
	cf := newCPFake(t)
	c, _ := cf.client(t)
	v, m, err := (&ControlPlane{C: c}).Headroom(context.Background(), "cn1")
	// fake placement: VCPU (10-2)*4 - 12 = 20; MEMORY_MB (16896-512)*1.5 - 6144 = 18432
	if err != nil || v != 20 || m != 18432 {
		t.Fatalf("Headroom = %d vCPU, %d MB, %v", v, m, err)
	}
}
