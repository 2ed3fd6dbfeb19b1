package openstack

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"

	"github.com/fencedhq/fenced/pkg/nova"
)

// The stack runs report_interval 5 s and service_down_time 20 s.
const reportInterval = 5 * time.Second

func newNova(t *testing.T, ctx context.Context) *nova.Client {
	t.Helper()
	c, err := nova.New(ctx, nova.Config{ReportInterval: reportInterval, PollInterval: 500 * time.Millisecond})
	if err != nil {
		t.Fatalf("nova.New: %v", err)
	}
	if c.Microversion() != "2.93" { // Zed's maximum, below fenced's ceiling
		t.Fatalf("pinned microversion %s, want 2.93", c.Microversion())
	}
	return c
}

// admin is a plain gophercloud client for what fenced itself never does
// (booting and deleting test servers).
func admin(t *testing.T, ctx context.Context) *gophercloud.ServiceClient {
	t.Helper()
	ao := gophercloud.AuthOptions{IdentityEndpoint: os.Getenv("OS_AUTH_URL"), Username: "admin", Password: os.Getenv("OS_PASSWORD"),
		DomainName: "Default", Scope: &gophercloud.AuthScope{ProjectName: "admin", DomainName: "Default"}}
	pc, err := openstack.AuthenticatedClient(ctx, ao)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := openstack.NewComputeV2(pc, gophercloud.EndpointOpts{Region: "RegionOne"})
	if err != nil {
		t.Fatal(err)
	}
	sc.Microversion = "2.93"
	return sc
}

// boot creates a server (on host if given) and waits for ACTIVE.
func boot(t *testing.T, ctx context.Context, sc *gophercloud.ServiceClient, c *nova.Client, name, host string) nova.Server {
	t.Helper()
	opts := servers.CreateOpts{Name: name, FlavorRef: "1", ImageRef: imageID, Networks: "none"}
	if host != "" {
		opts.AvailabilityZone = "nova:" + host
	}
	s, err := servers.Create(ctx, sc, opts, nil).Extract()
	if err != nil {
		t.Fatalf("boot %s: %v", name, err)
	}
	t.Cleanup(func() {
		// wait until Nova has it no more, so its placement allocation does not
		// spill into the next test's capacity figures
		dctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		_ = servers.Delete(dctx, sc, s.ID).ExtractErr()
		for dctx.Err() == nil {
			if err := servers.Get(dctx, sc, s.ID).Err; gophercloud.ResponseCodeIs(err, http.StatusNotFound) {
				return
			}
			time.Sleep(300 * time.Millisecond)
		}
		t.Logf("server %s (%s) still there 60 s after its delete", name, s.ID)
	})
	deadline := time.Now().Add(120 * time.Second)
	for {
		got, err := c.GetServer(ctx, s.ID)
		if err == nil && got.Status == "ACTIVE" && got.TaskState == "" {
			return got
		}
		if err == nil && got.Status == "ERROR" {
			t.Fatalf("server %s went to ERROR", name)
		}
		if time.Now().After(deadline) {
			t.Fatalf("server %s not ACTIVE after 120 s (%+v, %v)", name, got, err)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func computeCtl(t *testing.T, action, host string) {
	t.Helper()
	if out, err := exec.Command(compCtl, action, host).CombinedOutput(); err != nil {
		t.Fatalf("compute-ctl %s %s: %v\n%s", action, host, err, out)
	}
}

func other(h string) string {
	if h == "cn1" {
		return "cn2"
	}
	return "cn1"
}

// Disable freezes scheduling: no new server lands on the host; Enable undoes it.
func TestDisableFreezesScheduling(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, sc := newNova(t, ctx), admin(t, ctx)

	svc, err := c.Disable(ctx, "cn1", "divergence warn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = c.Enable(context.Background(), "cn1") })
	if svc.Enabled || svc.DisabledReason != "fenced: divergence warn" || !svc.FencedByUs() {
		t.Fatalf("after Disable: %+v", svc)
	}
	before, err := c.Capacity(ctx, "cn2")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		s := boot(t, ctx, sc, c, fmt.Sprintf("freeze-%d", i), "")
		if s.Host != "cn2" {
			t.Fatalf("server %s landed on %s although cn1 is disabled", s.ID, s.Host)
		}
		if s.PowerState != "RUNNING" {
			t.Fatalf("power state %s", s.PowerState)
		}
	}
	on1, err := c.ServersOnHost(ctx, "cn1")
	if err != nil || len(on1) != 0 {
		t.Fatalf("servers on disabled cn1: %+v, %v", on1, err)
	}
	on2, err := c.ServersOnHost(ctx, "cn2")
	if err != nil || len(on2) < 3 {
		t.Fatalf("servers on cn2: %d, %v", len(on2), err)
	}
	after, err := c.Capacity(ctx, "cn2")
	if err != nil {
		t.Fatal(err)
	}
	if after.Source != "placement" || after.VCPUsAllocated != before.VCPUsAllocated+3 || after.PhysicalVCPUs != 10 ||
		after.R1 != float64(after.VCPUsAllocated)/10 || after.VCPUHeadroom != int(10*after.VCPURatio)-after.VCPUsAllocated {
		t.Fatalf("capacity before %+v after %+v", before, after)
	}
	t.Logf("cn2 capacity: C=%d V=%d r1=%.2f ratio=%.1f vCPU headroom=%d memory headroom=%d MB",
		after.PhysicalVCPUs, after.VCPUsAllocated, after.R1, after.VCPURatio, after.VCPUHeadroom, after.MemoryHeadroomMB)

	svc, err = c.Enable(ctx, "cn1")
	if err != nil || !svc.Enabled {
		t.Fatalf("Enable: %+v, %v", svc, err)
	}
	s := boot(t, ctx, sc, c, "after-enable", "") // the emptier cn1 wins the weighers
	if s.Host != "cn1" {
		t.Fatalf("server landed on %s after Enable, want the empty cn1", s.Host)
	}
}

// Live migration to a destination fenced chooses, followed to completion.
func TestLiveMigrate(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, sc := newNova(t, ctx), admin(t, ctx)
	s := boot(t, ctx, sc, c, "lm", "cn1")

	// Evacuation is refused while the source is not fenced.
	if _, err := c.Evacuate(ctx, s.ID, "cn2"); !errors.Is(err, nova.ErrNotFenced) {
		t.Fatalf("Evacuate from a live, unfenced host: %v", err)
	}
	start := time.Now()
	m, err := c.LiveMigrate(ctx, s.ID, "cn2")
	if err != nil {
		t.Fatal(err)
	}
	if m.SourceCompute != "cn1" || m.Type != "live-migration" {
		t.Fatalf("migration %+v", m)
	}
	m, err = c.WaitMigration(ctx, m)
	if err != nil || m.Status != "completed" || m.DestCompute != "cn2" {
		t.Fatalf("WaitMigration: %+v, %v", m, err)
	}
	t.Logf("live migration cn1 -> cn2 completed in %.1fs", time.Since(start).Seconds())
	got, err := c.GetServer(ctx, s.ID)
	if err != nil || got.Host != "cn2" || got.Status != "ACTIVE" {
		t.Fatalf("after live migration: %+v, %v", got, err)
	}
	on2, _ := c.ServersOnHost(ctx, "cn2")
	found := false
	for _, x := range on2 {
		found = found || x.ID == s.ID
	}
	if !found {
		t.Fatal("migrated server not listed on cn2")
	}
}

// A killed nova-compute: fenced's heartbeat-lag signal against Nova's own
// "down"; then fence (force_down) and evacuate to the other host; recover.
func TestKilledComputeHeartbeatFenceEvacuate(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	c, sc := newNova(t, ctx), admin(t, ctx)
	s := boot(t, ctx, sc, c, "victim", "cn1")
	t.Cleanup(func() {
		// leave cn1 as found: running, not forced down, enabled
		bg := context.Background()
		if st, err := c.ServiceStatus(bg, "cn1"); err == nil && !st.Up && !st.ForcedDown {
			computeCtl(t, "start", "cn1")
		}
		_, _ = c.ForceDown(bg, "cn1", false)
		_, _ = c.Enable(bg, "cn1")
	})

	// a fresh heartbeat first
	st, err := c.ServiceStatus(ctx, "cn1")
	if err != nil || !st.Up || !st.LagKnown || st.LagCritical {
		t.Fatalf("cn1 before the kill: %+v, %v", st, err)
	}
	computeCtl(t, "kill", "cn1")
	killed := time.Now()
	var novaDown, signal time.Duration
	var lastHB time.Time
	for signal == 0 {
		st, err := c.ServiceStatus(ctx, "cn1")
		if err != nil {
			t.Fatal(err)
		}
		el := time.Since(killed)
		if novaDown == 0 && !st.Up {
			novaDown = el
			lastHB = st.LastHeartbeat
			// what the playbook does on warn: freeze scheduling. This PUT bumps
			// updated_at; the signal must not take it for a heartbeat.
			d, err := c.Disable(ctx, "cn1", "heartbeat lag")
			if err != nil {
				t.Fatal(err)
			}
			if !d.UpdatedAt.After(lastHB) || !d.LastHeartbeat.Equal(lastHB) {
				t.Fatalf("own write taken as heartbeat: updated_at %v, last heartbeat %v (was %v)", d.UpdatedAt, d.LastHeartbeat, lastHB)
			}
		}
		if st.LagCritical {
			signal = el
			if novaDown != 0 && !st.LastHeartbeat.Equal(lastHB) {
				t.Fatalf("last heartbeat moved from %v to %v after the kill", lastHB, st.LastHeartbeat)
			}
		}
		if el > 150*time.Second {
			t.Fatalf("no signal after %v (nova down at %v): %+v", el, novaDown, st)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if novaDown == 0 {
		t.Fatalf("heartbeat-lag signal (%v) crossed before Nova reported down", signal)
	}
	t.Logf("FIGURE heartbeat: Nova reports down %.1fs after SIGKILL; heartbeat_lag_s > 30 s at %.1fs; ratio signal/nova = %.2f",
		novaDown.Seconds(), signal.Seconds(), signal.Seconds()/novaDown.Seconds())
	if f := os.Getenv("FENCED_NOVA_FIGURES"); f != "" {
		line := fmt.Sprintf("%s nova_down_s=%.1f signal_s=%.1f ratio=%.2f\n", time.Now().UTC().Format(time.RFC3339), novaDown.Seconds(), signal.Seconds(), signal.Seconds()/novaDown.Seconds())
		if fh, err := os.OpenFile(f, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
			_, _ = fh.WriteString(line)
			fh.Close()
		}
	}

	// fence in the control plane, then evacuate
	fd, err := c.ForceDown(ctx, "cn1", true)
	if err != nil || !fd.ForcedDown || fd.Up {
		t.Fatalf("ForceDown: %+v, %v", fd, err)
	}
	start := time.Now()
	ev, err := c.Evacuate(ctx, s.ID, "cn2")
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.WaitEvacuation(ctx, ev)
	if err != nil || got.Host != "cn2" || got.Status != c.ExpectedStatusAfterEvacuate("ACTIVE") {
		t.Fatalf("WaitEvacuation: %+v, %v", got, err)
	}
	t.Logf("evacuation cn1 -> cn2 in %.1fs", time.Since(start).Seconds())
	ms, err := c.Migrations(ctx, nova.MigrationFilter{InstanceID: s.ID, Type: "evacuation"})
	if err != nil || len(ms) != 1 || ms[0].SourceCompute != "cn1" || ms[0].DestCompute != "cn2" || !ms[0].Succeeded() {
		t.Fatalf("evacuation record %+v, %v", ms, err)
	}

	// recovery: the compute comes back, heartbeats, fenced un-forces and enables
	computeCtl(t, "start", "cn1")
	deadline := time.Now().Add(120 * time.Second)
	for {
		st, err := c.ServiceStatus(ctx, "cn1")
		if err == nil && st.LastHeartbeat.After(lastHB.Add(time.Second)) && !st.LagCritical {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cn1 never heartbeat again: %+v, %v", st, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if st, err := c.ForceDown(ctx, "cn1", false); err != nil || st.ForcedDown {
		t.Fatalf("ForceDown(false): %+v, %v", st, err)
	}
	st, err = c.Enable(ctx, "cn1")
	if err != nil || !st.Enabled || !st.Up || strings.HasPrefix(st.DisabledReason, "fenced") {
		t.Fatalf("after recovery: %+v, %v", st, err)
	}
}
