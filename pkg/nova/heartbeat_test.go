package nova

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2/openstack/utils"
)

// updated_at bumped by fenced's own PUT is not a heartbeat; a later genuine
// heartbeat is.
func TestHeartbeatLagIgnoresOwnWrites(t *testing.T) {
	var novaNow time.Time
	f, c, fc := newFakeNova(t, func() time.Time { return novaNow })
	ctx := context.Background()
	t0 := fc.Now()
	f.mu.Lock()
	f.svc["updated_at"] = t0.Format("2006-01-02T15:04:05.000000")
	f.mu.Unlock()

	s, err := c.ServiceStatus(ctx, "cn1")
	if err != nil {
		t.Fatal(err)
	}
	if !s.LastHeartbeat.Equal(t0) || !s.LagKnown {
		t.Fatalf("first look: %+v", s)
	}
	// 40 s later (the compute died), fenced disables it: updated_at jumps.
	fc.Set(t0.Add(40 * time.Second))
	novaNow = fc.Now()
	s, err = c.Disable(ctx, "cn1", "heartbeat lag")
	if err != nil {
		t.Fatal(err)
	}
	if !s.UpdatedAt.After(t0.Add(30*time.Second)) || !s.LastHeartbeat.Equal(t0) {
		t.Fatalf("after Disable: updated_at %v, last heartbeat %v (want it to stay %v)", s.UpdatedAt, s.LastHeartbeat, t0)
	}
	if !s.FencedByUs() || !strings.HasPrefix(s.DisabledReason, "fenced: ") {
		t.Fatalf("reason %q", s.DisabledReason)
	}
	s, _ = c.ServiceStatus(ctx, "cn1")
	// lag = now - t0 - report_interval(5 s) >= 35 s; the fake clock may have moved a little.
	if s.HeartbeatLag < 35*time.Second || !s.LagCritical {
		t.Fatalf("lag %v critical %v, want >= 35 s and critical", s.HeartbeatLag, s.LagCritical)
	}
	// the compute comes back: a real heartbeat resets the lag
	hb := fc.Now().Add(2 * time.Second)
	f.mu.Lock()
	f.svc["updated_at"] = hb.Format("2006-01-02T15:04:05.000000")
	f.mu.Unlock()
	s, _ = c.ServiceStatus(ctx, "cn1")
	if !s.LastHeartbeat.Equal(hb) || s.LagCritical {
		t.Fatalf("after a genuine heartbeat: %+v", s)
	}
	samples, err := c.HeartbeatSamples(ctx)
	if err != nil || len(samples) != 1 || samples[0].Host != "cn1" || samples[0].Value > 1 {
		t.Fatalf("samples %+v, %v", samples, err)
	}
}

// A null updated_at (compute never heartbeat) is unknown, not infinitely late.
func TestHeartbeatNullIsUnknown(t *testing.T) {
	_, c, _ := newFakeNova(t, time.Now)
	s, err := c.ServiceStatus(context.Background(), "cn1")
	if err != nil {
		t.Fatal(err)
	}
	if s.LagKnown || s.LagCritical || !s.UpdatedAt.IsZero() {
		t.Fatalf("%+v", s)
	}
	if _, err := c.ServiceStatus(context.Background(), "cn9"); err == nil || !strings.Contains(err.Error(), "cn9") {
		t.Fatalf("unknown host: %v", err)
	}
}

func TestRetryIdempotentOnly(t *testing.T) {
	f, c, _ := newFakeNova(t, time.Now)
	f.fail503 = 2
	if _, err := c.ServiceStatus(context.Background(), "cn1"); err != nil {
		t.Fatalf("GET with two 503s then 200: %v", err)
	}
	f.fail503 = 5
	if _, err := c.ServiceStatus(context.Background(), "cn1"); err == nil || !Retryable(err) {
		t.Fatalf("GET after 3 attempts of 503: %v", err)
	}
	if n := len(f.reqs("GET", "/v2.1/os-services")); n != 6 {
		t.Fatalf("%d GETs, want 3+3", n)
	}
}

func TestPickMicroversion(t *testing.T) {
	for _, tc := range []struct {
		maxMin int
		want   string
		err    bool
	}{{93, "2.93", false}, {95, "2.95", false}, {100, "2.95", false}, {52, "", true}} {
		got, err := pickMicroversion(utils.SupportedMicroversions{MinMajor: 2, MinMinor: 1, MaxMajor: 2, MaxMinor: tc.maxMin})
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("max 2.%d: %q, %v; want %q", tc.maxMin, got, err, tc.want)
		}
	}
}
