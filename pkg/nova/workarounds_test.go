package nova

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/services"
)

// Gap 1: forced_down=false must reach Nova (gophercloud drops it).
func TestForceDownFalseIsSent(t *testing.T) {
	f, c, _ := newFakeNova(t, time.Now)
	// what gophercloud alone would send
	m, _ := services.UpdateOpts{ForcedDown: false}.ToServiceUpdateMap()
	if _, ok := m["forced_down"]; ok {
		t.Log("gophercloud now sends forced_down=false; workaround 1 may be dropped")
	}
	if _, err := c.ForceDown(context.Background(), "cn1", true); err != nil {
		t.Fatal(err)
	}
	svc, err := c.ForceDown(context.Background(), "cn1", false)
	if err != nil {
		t.Fatal(err)
	}
	puts := f.reqs("PUT", "/v2.1/os-services/svc-1")
	if len(puts) != 2 || puts[1].Body != `{"forced_down":false}` {
		t.Fatalf("PUT bodies %+v, want the second to be {\"forced_down\":false}", puts)
	}
	if svc.ForcedDown {
		t.Fatal("service still forced down after ForceDown(false)")
	}
}

// Gap 2: live-migrate sends block_migration "auto"; no destination sends host null.
func TestLiveMigrateBody(t *testing.T) {
	f, c, _ := newFakeNova(t, time.Now)
	ctx := context.Background()
	m, err := c.LiveMigrate(ctx, "vm-1", "cn2")
	if err != nil {
		t.Fatal(err)
	}
	if m.ID != 1 || m.Type != "live-migration" || m.DestCompute != "cn2" {
		t.Fatalf("migration record %+v", m)
	}
	done, err := c.WaitMigration(ctx, m)
	if err != nil || done.Status != "completed" {
		t.Fatalf("WaitMigration = %+v, %v", done, err)
	}
	if _, err := c.LiveMigrate(ctx, "vm-1", ""); err != nil {
		t.Fatal(err)
	}
	posts := f.reqs("POST", "/v2.1/servers/vm-1/action")
	var b0, b1 map[string]map[string]any
	_ = json.Unmarshal([]byte(posts[0].Body), &b0)
	_ = json.Unmarshal([]byte(posts[1].Body), &b1)
	if b0["os-migrateLive"]["block_migration"] != "auto" || b0["os-migrateLive"]["host"] != "cn2" {
		t.Fatalf("body %s", posts[0].Body)
	}
	if h, ok := b1["os-migrateLive"]["host"]; !ok || h != nil {
		t.Fatalf("scheduler-chosen live migration body %s, want host null", posts[1].Body)
	}
	ms, err := c.Migrations(ctx, MigrationFilter{InstanceID: "vm-1"})
	if err != nil || len(ms) != 2 || ms[1].DestCompute != "" {
		t.Fatalf("Migrations = %+v, %v (null dest_compute must read as \"\")", ms, err)
	}
}

// Gaps 3 and 4: evacuate without onSharedStorage, empty 200 is success; and
// never before force_down.
func TestEvacuateBodyAndEmpty200(t *testing.T) {
	f, c, _ := newFakeNova(t, time.Now)
	ctx := context.Background()
	if _, err := c.Evacuate(ctx, "vm-1", "cn2"); !errors.Is(err, ErrNotFenced) {
		t.Fatalf("Evacuate before ForceDown: %v, want ErrNotFenced", err)
	}
	if len(f.reqs("POST", "/v2.1/servers/vm-1/action")) != 0 {
		t.Fatal("an evacuation was sent before force_down")
	}
	if _, err := c.ForceDown(ctx, "cn1", true); err != nil {
		t.Fatal(err)
	}
	ev, err := c.Evacuate(ctx, "vm-1", "cn2")
	if err != nil {
		t.Fatalf("Evacuate: %v", err)
	}
	body := f.reqs("POST", "/v2.1/servers/vm-1/action")[0].Body
	if body != `{"evacuate":{"host":"cn2"}}` {
		t.Fatalf("evacuate body %s", body)
	}
	srv, err := c.WaitEvacuation(ctx, ev)
	if err != nil || srv.Host != "cn2" || srv.Status != "ACTIVE" {
		t.Fatalf("WaitEvacuation = %+v, %v", srv, err)
	}
}

// At >= 2.95 an evacuated server comes back SHUTOFF; WaitEvacuation expects
// that, and StartAfterEvacuate powers it on.
func TestEvacuateStoppedAt295(t *testing.T) {
	for _, start := range []bool{false, true} {
		f, c, _ := newFakeNova(t, time.Now)
		c.compute.Microversion = "2.95"
		c.cfg.StartAfterEvacuate = start
		ctx := context.Background()
		if _, err := c.ForceDown(ctx, "cn1", true); err != nil {
			t.Fatal(err)
		}
		ev, err := c.Evacuate(ctx, "vm-1", "cn2")
		if err != nil {
			t.Fatal(err)
		}
		srv, err := c.WaitEvacuation(ctx, ev)
		if err != nil {
			t.Fatal(err)
		}
		want, wantPower := "SHUTOFF", "SHUTDOWN"
		if start {
			want, wantPower = "ACTIVE", "RUNNING"
		}
		if srv.Status != want || srv.PowerState != wantPower || srv.Host != "cn2" {
			t.Fatalf("start=%v: server %+v, want %s/%s on cn2", start, srv, want, wantPower)
		}
		starts := 0
		for _, r := range f.reqs("POST", "/v2.1/servers/vm-1/action") {
			if strings.Contains(r.Body, "os-start") {
				starts++
			}
		}
		if (starts == 1) != start {
			t.Fatalf("start=%v: %d os-start calls", start, starts)
		}
	}
}

// Gap 5: capacity fields come from os-hypervisors at 2.87, ratios from placement.
func TestCapacity(t *testing.T) {
	f, c, _ := newFakeNova(t, time.Now)
	got, err := c.Capacity(context.Background(), "cn1")
	if err != nil {
		t.Fatal(err)
	}
	if hv := f.reqs("GET", "/v2.1/os-hypervisors/detail"); len(hv) != 1 || hv[0].Microversion != "compute 2.87" {
		t.Fatalf("hypervisor call %+v, want microversion 2.87", hv)
	}
	// C = 10-2 = 8, V = 12 -> r1 1.5; headroom 8*4-12 = 20; memory (16896-512)*1.5-6144 = 18432
	if got.Source != "placement" || got.PhysicalVCPUs != 8 || got.VCPUsAllocated != 12 || got.R1 != 1.5 ||
		got.VCPUHeadroom != 20 || got.MemoryHeadroomMB != 18432 || got.HypervisorID != "rp-1" {
		t.Fatalf("Capacity = %+v", got)
	}
	c.placement = nil
	got, err = c.Capacity(context.Background(), "cn1")
	if err != nil || got.Source != "hypervisor" || got.PhysicalVCPUs != 8 || got.VCPUsAllocated != 6 || got.R1 != 0.75 {
		t.Fatalf("hypervisor fallback = %+v, %v", got, err)
	}
	if _, err := c.Capacity(context.Background(), "cn9"); !errors.Is(err, ErrNoHypervisor) {
		t.Fatalf("unknown host: %v", err)
	}
}

// Gap 6: abort is DELETE /servers/{id}/migrations/{id}.
func TestAbortMigration(t *testing.T) {
	f, c, _ := newFakeNova(t, time.Now)
	if err := c.AbortMigration(context.Background(), Migration{ID: 7, InstanceID: "vm-1"}); err != nil {
		t.Fatal(err)
	}
	if d := f.reqs("DELETE", "/v2.1/servers/vm-1/migrations/7"); len(d) != 1 {
		t.Fatalf("DELETE calls %+v", d)
	}
}
