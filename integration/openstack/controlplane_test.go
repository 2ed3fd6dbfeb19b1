package openstack

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/fencedhq/fenced/pkg/nova"
)

// figure logs a measured figure and appends it to $FENCED_NOVA_FIGURES.
func figure(t *testing.T, line string) {
	t.Helper()
	t.Log("FIGURE " + line)
	if f := os.Getenv("FENCED_NOVA_FIGURES"); f != "" {
		if fh, err := os.OpenFile(f, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
			_, _ = fmt.Fprintf(fh, "%s %s\n", time.Now().UTC().Format(time.RFC3339), line)
			fh.Close()
		}
	}
}

// waitFreshHeartbeat waits until host's last heartbeat is under 2 s old, so
// Nova keeps calling it "up" for most of service_down_time after a freeze.
func waitFreshHeartbeat(t *testing.T, ctx context.Context, c *nova.Client, host string) nova.Service {
	t.Helper()
	deadline := time.Now().Add(3 * reportInterval)
	for {
		st, err := c.ServiceStatus(ctx, host)
		if err == nil && st.Up && !st.ForcedDown && time.Since(st.LastHeartbeat) < 2*time.Second {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no fresh heartbeat: %+v, %v", host, st, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// The playbook's control plane against the real Nova, with frozen computes:
//
//	(a) cn1 frozen (SIGSTOP): ForceDown(true) then Disable returns at once,
//	    since Nova, seeing the service down, does not call the compute;
//	(c) Evacuate through the adapter from the forced-down cn1 lands the
//	    server ACTIVE on cn2, and repeating it evacuates nothing;
//	(b) cn2 frozen while Nova still says it is up: Disable returns within
//	    DisableTimeout (nova-api itself waits 60 s on the compute) and the
//	    service reads disabled, without the read-back passing for a heartbeat.
func TestControlPlaneFrozenCompute(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, sc := newNova(t, ctx), admin(t, ctx)
	cp := &nova.ControlPlane{C: c}
	s := boot(t, ctx, sc, c, "cp-victim", "cn1")
	t.Cleanup(func() {
		// leave both computes as found: running, not forced down, enabled
		bg, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		for _, h := range []string{"cn2", "cn1"} {
			computeCtl(t, "thaw", h)
		}
		// cn1 restarts so that its init_host cleans up the evacuated server
		// and moves the evacuation record from done to completed: Nova
		// refuses to un-force a host while done records remain (400).
		computeCtl(t, "stop", "cn1")
		computeCtl(t, "start", "cn1")
		for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(time.Second) {
			ms, err := c.Migrations(bg, nova.MigrationFilter{Host: "cn1", Type: "evacuation"})
			left := err != nil
			for _, m := range ms {
				left = left || m.Status == "done"
			}
			if !left {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("evacuation record still done after cn1's restart: %+v, %v", ms, err)
				break
			}
		}
		for _, h := range []string{"cn1", "cn2"} {
			if err := cp.ForceDown(bg, h, false); err != nil {
				t.Errorf("restore %s: un-force: %v", h, err)
			}
			if err := cp.Enable(bg, h); err != nil {
				t.Errorf("restore %s: enable: %v", h, err)
			}
			st := waitFreshHeartbeat(t, bg, c, h)
			t.Logf("restored %s: %+v", h, st)
		}
	})

	on1, err := cp.Servers(ctx, "cn1")
	if err != nil || len(on1) != 1 || on1[0].ID != s.ID || on1[0].VCPUs != 1 || on1[0].RAMMB != 512 || !on1[0].Running || !on1[0].Evacuable {
		t.Fatalf("Servers(cn1) = %+v, %v; want the m1.tiny server, running, evacuable", on1, err)
	}

	// (a) frozen cn1: force down first, then disable
	waitFreshHeartbeat(t, ctx, c, "cn1")
	computeCtl(t, "freeze", "cn1")
	start := time.Now()
	if err := cp.ForceDown(ctx, "cn1", true); err != nil {
		t.Fatal(err)
	}
	forced := time.Since(start)
	if err := cp.Disable(ctx, "cn1", "frozen"); err != nil {
		t.Fatal(err)
	}
	both := time.Since(start)
	st, err := c.ServiceStatus(ctx, "cn1")
	if err != nil || st.Enabled || st.DisabledReason != "fenced: frozen" || !st.ForcedDown || st.Up {
		t.Fatalf("cn1 after ForceDown+Disable: %+v, %v", st, err)
	}
	if both > 2*time.Second {
		t.Fatalf("ForceDown+Disable on a frozen compute took %v, want well under 5 s", both)
	}
	figure(t, fmt.Sprintf("controlplane: frozen cn1: ForceDown %.2fs, then Disable %.2fs, total %.2fs",
		forced.Seconds(), (both-forced).Seconds(), both.Seconds()))

	// (c) evacuate through the adapter
	start = time.Now()
	if err := cp.Evacuate(ctx, s.ID, "cn2"); err != nil {
		t.Fatalf("Evacuate: %v", err)
	}
	took := time.Since(start)
	got, err := c.GetServer(ctx, s.ID)
	if err != nil || got.Host != "cn2" || got.Status != "ACTIVE" || got.TaskState != "" {
		t.Fatalf("after Evacuate: %+v, %v", got, err)
	}
	if err := cp.Evacuate(ctx, s.ID, "cn2"); err != nil {
		t.Fatalf("repeated Evacuate: %v", err)
	}
	ms, err := c.Migrations(ctx, nova.MigrationFilter{InstanceID: s.ID, Type: "evacuation"})
	if err != nil || len(ms) != 1 || ms[0].DestCompute != "cn2" || !ms[0].Succeeded() {
		t.Fatalf("evacuation records %+v, %v: want exactly one, done, to cn2", ms, err)
	}
	if m, ok, err := cp.MigrationSince(ctx, s.ID, "evacuation", start); err != nil || !ok || m.ID != ms[0].ID {
		t.Fatalf("MigrationSince(start) = %+v, %v, %v", m, ok, err)
	}
	figure(t, fmt.Sprintf("controlplane: evacuate cn1 -> cn2 through the adapter %.1fs", took.Seconds()))

	// (b) frozen cn2 that Nova still reports up: the disable RPC hangs
	waitFreshHeartbeat(t, ctx, c, "cn2")
	computeCtl(t, "freeze", "cn2")
	time.Sleep(500 * time.Millisecond) // a heartbeat already on its way lands
	before, err := c.ServiceStatus(ctx, "cn2")
	if err != nil || !before.Up {
		t.Fatalf("cn2 just frozen: %+v, %v; want Nova to still say up", before, err)
	}
	start = time.Now()
	err = cp.Disable(ctx, "cn2", "frozen, still up in Nova")
	took = time.Since(start)
	if err != nil {
		t.Fatalf("Disable of frozen, up cn2: %v (after %v)", err, took)
	}
	bound := nova.DefaultDisableTimeout
	if took > bound+2*time.Second {
		t.Fatalf("Disable took %v, want within the %v bound", took, bound)
	}
	st, err = c.ServiceStatus(ctx, "cn2")
	if err != nil || st.Enabled || st.DisabledReason != "fenced: frozen, still up in Nova" {
		t.Fatalf("cn2 after Disable: %+v, %v", st, err)
	}
	if !st.LastHeartbeat.Equal(before.LastHeartbeat) || !st.UpdatedAt.After(before.LastHeartbeat) {
		t.Fatalf("read-back updated_at %v taken for a heartbeat: last heartbeat %v, was %v", st.UpdatedAt, st.LastHeartbeat, before.LastHeartbeat)
	}
	figure(t, fmt.Sprintf("controlplane: frozen cn2 still up in Nova: Disable %.2fs (bound %v, PUT timed out: %v)",
		took.Seconds(), bound, took >= bound))
	if took < bound {
		t.Logf("the PUT did not hang: Nova answered in %v", took)
	}
}
