package redfish

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/fencedhq/fenced/internal/metrics"
	"github.com/fencedhq/fenced/pkg/clock"
	"github.com/fencedhq/fenced/pkg/fencing"
	"github.com/fencedhq/fenced/pkg/fencing/redfish/bmcsim"
)

func sim(t *testing.T) (*bmcsim.Sim, *httptest.Server) {
	t.Helper()
	s := bmcsim.New("admin", "s3cret", 50*time.Millisecond, "cmp-017", "cmp-018")
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return s, srv
}

func fencer(t *testing.T, targets map[string]Target, mod ...func(*Config)) *Fencer {
	t.Helper()
	cfg := Config{Targets: targets, Attempt: 300 * time.Millisecond, Deadline: 2 * time.Second, Backoff: 20 * time.Millisecond,
		VerifyTimeout: time.Second, Poll: 20 * time.Millisecond, Log: zerolog.Nop()}
	for _, m := range mod {
		m(&cfg)
	}
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func target(url string) map[string]Target {
	return map[string]Target{"cmp-017": {Host: "cmp-017", Endpoint: url, SystemID: "cmp-017", Username: "admin", Password: "s3cret"}}
}

func TestPowerCycleIsVerified(t *testing.T) {
	s, srv := sim(t)
	reg := prometheus.NewRegistry()
	f := fencer(t, target(srv.URL), func(c *Config) { c.Metrics = reg })
	if err := f.PowerCycle(context.Background(), "cmp-017"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.PowerState(context.Background(), "cmp-099"); err == nil {
		t.Fatal("a host without a BMC has a power state")
	}
	m, err := metrics.Text(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`fenced_redfish_operation_duration_seconds_count{operation="power_cycle",outcome="ok"} 1`,
		`fenced_redfish_operation_duration_seconds_count{operation="power_off",outcome="ok"} 1`,
		`fenced_redfish_operation_duration_seconds_count{operation="power_state",outcome="error"} 1`,
		`fenced_redfish_requests_total{code="200",method="GET"}`, `fenced_redfish_requests_total{code="204",method="POST"} 2`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s:\n%s", want, m)
		}
	}
	if got := strings.Join(s.Resets("cmp-017"), ","); got != "ForceOff,On" {
		t.Fatalf("resets %s, want ForceOff then On", got)
	}
	if s.Power("cmp-017") != "On" || len(s.Resets("cmp-018")) != 0 {
		t.Fatal("wrong system touched or not back on")
	}
	for _, mode := range []string{"ForceRestart", "PowerCycle"} {
		f := fencer(t, target(srv.URL), func(c *Config) { c.Cycle = mode })
		if err := f.PowerCycle(context.Background(), "cmp-017"); err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
	}
	if _, err := New(Config{Cycle: "Nmi"}); err == nil {
		t.Fatal("unknown cycle mode accepted")
	}
}

func TestAlreadyOffConflictIsSuccess(t *testing.T) {
	s, srv := sim(t)
	s.SetPower("cmp-017", "Off")
	s.SetFaults("cmp-017", bmcsim.Faults{Conflict409: true})
	if err := fencer(t, target(srv.URL)).PowerOff(context.Background(), "cmp-017"); err != nil {
		t.Fatalf("ForceOff on an off host answered 409 and must count as success: %v", err)
	}
}

func TestUnreachableIsNeverOff(t *testing.T) {
	_, srv := sim(t)
	url := srv.URL
	srv.Close()
	f := fencer(t, target(url), func(c *Config) { c.Deadline = 300 * time.Millisecond })
	ps, err := f.PowerState(context.Background(), "cmp-017")
	if !errors.Is(err, fencing.ErrUnreachable) || ps != fencing.Unknown {
		t.Fatalf("state %s err %v: an unreachable BMC must give Unknown and ErrUnreachable", ps, err)
	}
	if err := f.PowerOff(context.Background(), "cmp-017"); !errors.Is(err, fencing.ErrUnreachable) {
		t.Fatalf("power off through a dead BMC: %v", err)
	}
}

func TestNeverOffNeedsHuman(t *testing.T) {
	s, srv := sim(t)
	s.SetFaults("cmp-017", bmcsim.Faults{NeverOff: true})
	err := fencer(t, target(srv.URL), func(c *Config) { c.VerifyTimeout = 300 * time.Millisecond }).PowerOff(context.Background(), "cmp-017")
	if !errors.Is(err, fencing.ErrNeedsHuman) {
		t.Fatalf("accepted but never off: %v", err)
	}
}

func TestSlowAndHangingBMC(t *testing.T) {
	s, srv := sim(t)
	s.SetFaults("cmp-017", bmcsim.Faults{Slow: 100 * time.Millisecond})
	if err := fencer(t, target(srv.URL)).PowerOff(context.Background(), "cmp-017"); err != nil {
		t.Fatalf("slow BMC within the attempt timeout: %v", err)
	}
	s.SetFaults("cmp-017", bmcsim.Faults{Hang: true})
	start := time.Now()
	err := fencer(t, target(srv.URL), func(c *Config) { c.Deadline = 800 * time.Millisecond }).PowerOn(context.Background(), "cmp-017")
	if !errors.Is(err, fencing.ErrUnreachable) {
		t.Fatalf("hanging BMC: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("a hanging BMC held the call for %s", d)
	}
}

func TestServerErrorsAreRetried(t *testing.T) {
	s, srv := sim(t)
	s.SetFaults("cmp-017", bmcsim.Faults{Fail5xx: 2})
	if err := fencer(t, target(srv.URL)).PowerOff(context.Background(), "cmp-017"); err != nil {
		t.Fatalf("two 503s then success: %v", err)
	}
	if s.Power("cmp-017") != "Off" {
		t.Fatal("not off")
	}
}

func TestExpiredSessionLogsInAgain(t *testing.T) {
	s, srv := sim(t)
	f := fencer(t, target(srv.URL))
	if _, err := f.PowerState(context.Background(), "cmp-017"); err != nil {
		t.Fatal(err)
	}
	s.ExpireSessions()
	if err := f.PowerOff(context.Background(), "cmp-017"); err != nil {
		t.Fatalf("after the session expired: %v", err)
	}
	if s.Logins() != 2 {
		t.Fatalf("%d logins, want 2 (one re-login)", s.Logins())
	}
}

func TestWrongCredentialsFailFast(t *testing.T) {
	s, srv := sim(t)
	tg := target(srv.URL)
	bad := tg["cmp-017"]
	bad.Password = "wrong"
	tg["cmp-017"] = bad
	start := time.Now()
	err := fencer(t, tg, func(c *Config) { c.Deadline = 10 * time.Second }).PowerOff(context.Background(), "cmp-017")
	if !errors.Is(err, fencing.ErrAuth) {
		t.Fatalf("wrong password: %v", err)
	}
	if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "wrong") {
		t.Fatalf("the error shows a password: %v", err)
	}
	if s.Logins() > 2 || time.Since(start) > 3*time.Second {
		t.Fatalf("%d logins in %s: a retry storm", s.Logins(), time.Since(start))
	}
	if len(s.Resets("cmp-017")) != 0 {
		t.Fatal("reset without valid credentials")
	}
}

func TestTLSWithCABundleOrInsecure(t *testing.T) {
	s := bmcsim.New("admin", "s3cret", 20*time.Millisecond, "cmp-017")
	srv := httptest.NewTLSServer(s.Handler())
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	with := func(mod func(*Target)) map[string]Target {
		tg := target(srv.URL)
		x := tg["cmp-017"]
		mod(&x)
		tg["cmp-017"] = x
		return tg
	}
	if err := fencer(t, with(func(x *Target) { x.CAFile = ca })).PowerOff(context.Background(), "cmp-017"); err != nil {
		t.Fatalf("with the CA bundle: %v", err)
	}
	if _, err := fencer(t, with(func(*Target) {}), func(c *Config) { c.Deadline = 200 * time.Millisecond }).PowerState(context.Background(), "cmp-017"); err == nil {
		t.Fatal("an unknown certificate was accepted without the CA bundle")
	}
	var logs strings.Builder
	f := fencer(t, with(func(x *Target) { x.Insecure = true; x.BasicAuth = true }), func(c *Config) { c.Log = zerolog.New(&logs) })
	if err := f.PowerOn(context.Background(), "cmp-017"); err != nil {
		t.Fatalf("insecure + basic auth: %v", err)
	}
	if !strings.Contains(logs.String(), "insecure") {
		t.Fatal("insecure TLS must be logged as a warning")
	}
	if _, err := fencer(t, target(srv.URL)).PowerState(context.Background(), "nope"); !errors.Is(err, fencing.ErrUnknownHost) {
		t.Fatalf("unknown host: %v", err)
	}
}

// An auth-fail fault is about one system: the BMC's other systems answer.
func TestAuthFailFaultIsPerSystem(t *testing.T) {
	s, srv := sim(t)
	s.SetFaults("cmp-018", bmcsim.Faults{AuthFail: true})
	targets := map[string]Target{
		"cmp-017": {Host: "cmp-017", Endpoint: srv.URL, SystemID: "cmp-017", Username: "admin", Password: "s3cret"},
		"cmp-018": {Host: "cmp-018", Endpoint: srv.URL, SystemID: "cmp-018", Username: "admin", Password: "s3cret"},
	}
	f := fencer(t, targets)
	if err := f.PowerOff(context.Background(), "cmp-017"); err != nil {
		t.Fatalf("cmp-017 has no fault but: %v", err)
	}
	if err := f.PowerOff(context.Background(), "cmp-018"); !errors.Is(err, fencing.ErrAuth) {
		t.Fatalf("cmp-018 with auth-fail: %v, want ErrAuth", err)
	}
	if s.Power("cmp-017") != "Off" || s.Power("cmp-018") != "On" || len(s.Resets("cmp-018")) != 0 {
		t.Fatalf("power cmp-017 %s, cmp-018 %s (resets %v)", s.Power("cmp-017"), s.Power("cmp-018"), s.Resets("cmp-018"))
	}
}

// A BMC that does not offer the configured reset type fails at once with
// ErrUnsupported: no request is retried, no reset is sent.
func TestUnofferedResetTypeIsUnsupported(t *testing.T) {
	s, srv := sim(t)
	s.ResetTypes = []string{"On", "ForceOff", "ForceRestart"}
	start := time.Now()
	f := fencer(t, target(srv.URL), func(c *Config) { c.Cycle = "PowerCycle"; c.Deadline = 5 * time.Second })
	err := f.PowerCycle(context.Background(), "cmp-017")
	if !errors.Is(err, fencing.ErrUnsupported) {
		t.Fatalf("PowerCycle not offered: %v, want ErrUnsupported", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("an unsupported reset type took %s: it was retried", d)
	}
	if r := s.Resets("cmp-017"); len(r) != 0 {
		t.Fatalf("resets sent: %v", r)
	}
}

// recordingClock is the real clock that remembers every wait asked of it.
type recordingClock struct {
	clock.Real
	mu    sync.Mutex
	waits []time.Duration
}

func (c *recordingClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	c.waits = append(c.waits, d)
	c.mu.Unlock()
	return c.Real.After(d)
}

// 5xx answers are retried after a delay that doubles from Backoff.
func TestRetryBackoffDoubles(t *testing.T) {
	s, srv := sim(t)
	s.SetFaults("cmp-017", bmcsim.Faults{Fail5xx: 4})
	clk := &recordingClock{}
	f := fencer(t, target(srv.URL), func(c *Config) { c.Backoff = 10 * time.Millisecond; c.Clock = clk })
	if _, err := f.PowerState(context.Background(), "cmp-017"); err != nil {
		t.Fatalf("four 503s then success within the deadline: %v", err)
	}
	clk.mu.Lock()
	defer clk.mu.Unlock()
	want := []time.Duration{10 * time.Millisecond, 20 * time.Millisecond, 40 * time.Millisecond, 80 * time.Millisecond}
	if fmt.Sprint(clk.waits) != fmt.Sprint(want) {
		t.Fatalf("waits between attempts %v, want %v", clk.waits, want)
	}
}

// TestLookupReadsOnlyTheTargetSystem: on a chassis of many systems, one of
// them hung, every other system's power state is read in two requests (the
// collection's links, then the system), not one per member: a hung blade
// does not make its neighbours unfenceable. The GETs are counted.
func TestLookupReadsOnlyTheTargetSystem(t *testing.T) {
	ids := make([]string, 101)
	for i := range ids {
		ids[i] = fmt.Sprintf("blade-%03d", i)
	}
	s := bmcsim.New("admin", "s3cret", 20*time.Millisecond, ids...)
	s.SetFaults("blade-050", bmcsim.Faults{Hang: true})
	var gets atomic.Int64
	h := s.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/redfish/v1/Systems") {
			gets.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	targets := map[string]Target{}
	for _, id := range []string{"blade-007", "blade-099"} {
		targets[id] = Target{Host: id, Endpoint: srv.URL, SystemID: id, Username: "admin", Password: "s3cret"}
	}
	f := fencer(t, targets)
	for _, id := range []string{"blade-007", "blade-099"} {
		gets.Store(0)
		ps, err := f.PowerState(context.Background(), id)
		if err != nil || ps != fencing.On {
			t.Fatalf("%s beside a hung blade: %v %v", id, ps, err)
		}
		if n := gets.Load(); n != 2 {
			t.Errorf("%s: %d GETs under /Systems, want 2 (the collection, the system)", id, n)
		}
	}
}
