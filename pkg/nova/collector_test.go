package nova

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fencedhq/fenced/pkg/signals"
)

func TestCollectorHeartbeatAndControl(t *testing.T) {
	var novaNow time.Time
	f, c, fc := newFakeNova(t, func() time.Time { return novaNow })
	t0 := fc.Now()
	f.mu.Lock()
	f.svc["updated_at"] = t0.Format("2006-01-02T15:04:05.000000")
	f.mu.Unlock()
	col := &Collector{Client: c}
	if _, ok := col.Control("cn1"); ok {
		t.Fatal("control known before any collection")
	}
	fc.Set(t0.Add(45 * time.Second))
	smp, err := col.Collect(context.Background(), fc.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(smp) != 1 || smp[0].Host != "cn1" || smp[0].Signal != signals.HeartbeatLag || smp[0].Value < 30 {
		t.Fatalf("samples %+v: want cn1's heartbeat lag over 30 s", smp)
	}
	ctl, ok := col.Control("cn1")
	if !ok || !ctl.Known {
		t.Fatalf("control %+v %v", ctl, ok)
	}
	if !ctl.HeartbeatKnown || ctl.HeartbeatAge < 45*time.Second || ctl.ReportInterval != 5*time.Second {
		t.Errorf("heartbeat age %s (known %v), report interval %s: want 45 s, 5 s", ctl.HeartbeatAge, ctl.HeartbeatKnown, ctl.ReportInterval)
	}
	if ctl.ServersActive != 1 || len(ctl.ActiveServers) != 1 || ctl.ActiveServers[0] != "vm" {
		t.Errorf("servers active %d %v: want cn1's one ACTIVE server named", ctl.ServersActive, ctl.ActiveServers)
	}
	if q := f.reqs(http.MethodGet, "/v2.1/servers/detail"); len(q) != 1 || !strings.Contains(q[0].Query, "all_tenants") || !strings.Contains(q[0].Query, "status=ACTIVE") {
		t.Errorf("server listings %+v: want one, of every tenant's ACTIVE servers", q)
	}

	// the server stops: the next listing, not before ServersEvery, drops it
	f.mu.Lock()
	f.server["status"] = "SHUTOFF"
	f.mu.Unlock()
	fc.Set(t0.Add(50 * time.Second))
	if _, err := col.Collect(context.Background(), fc.Now()); err != nil {
		t.Fatal(err)
	}
	if ctl, _ := col.Control("cn1"); ctl.ServersActive != 1 {
		t.Errorf("servers listed again after 5 s (ServersEvery 30 s): %d ACTIVE", ctl.ServersActive)
	}
	fc.Set(t0.Add(80 * time.Second))
	if _, err := col.Collect(context.Background(), fc.Now()); err != nil {
		t.Fatal(err)
	}
	if ctl, _ := col.Control("cn1"); ctl.ServersActive != 0 || ctl.ServiceUp != true || ctl.ForcedDown {
		t.Errorf("after the server stopped: %+v; want 0 ACTIVE, up, not forced down", ctl)
	}
}
