package nova

import (
	"context"
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
}
