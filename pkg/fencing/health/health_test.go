package health

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/fencedhq/fenced/pkg/clock"
	"github.com/fencedhq/fenced/pkg/fencing"
	"github.com/fencedhq/fenced/pkg/fencing/redfish"
	"github.com/fencedhq/fenced/pkg/fencing/redfish/bmcsim"
)

// bmc serves one simulated BMC with one system: each host gets a BMC of its
// own, as in a real fleet.
func bmc(t *testing.T, system string) (*bmcsim.Sim, string) {
	t.Helper()
	s := bmcsim.New("admin", "s3cret", 10*time.Millisecond, system)
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return s, srv.URL
}

type changes struct {
	mu  sync.Mutex
	got []string
}

func (c *changes) on(host string, ok bool, why string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got = append(c.got, fmt.Sprintf("%s ok=%v %s", host, ok, why))
}

func (c *changes) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.got
	c.got = nil
	sort.Strings(out)
	return out
}

func TestChecksAgainstSimulatedBMCs(t *testing.T) {
	good, goodURL := bmc(t, "sys-good")
	auth, authURL := bmc(t, "sys-auth")
	hang, hangURL := bmc(t, "sys-hang")
	auth.SetFaults("sys-auth", bmcsim.Faults{AuthFail: true})
	hang.SetFaults("sys-hang", bmcsim.Faults{Hang: true})
	dead := httptest.NewServer(nil)
	deadURL := dead.URL
	dead.Close()

	targets := map[string]redfish.Target{}
	for h, ep := range map[string][2]string{"cmp-good": {goodURL, "sys-good"}, "cmp-auth": {authURL, "sys-auth"},
		"cmp-hang": {hangURL, "sys-hang"}, "cmp-dead": {deadURL, ""}} {
		targets[h] = redfish.Target{Host: h, Endpoint: ep[0], SystemID: ep[1], Username: "admin", Password: "s3cret"}
	}
	f, err := redfish.New(redfish.Config{Targets: targets, Attempt: 5 * time.Second, Deadline: 30 * time.Second,
		Backoff: 10 * time.Millisecond, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	var ch changes
	c, err := New(Config{BMC: f, Timeout: 300 * time.Millisecond, OnChange: ch.on, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	hosts := []string{"cmp-good", "cmp-auth", "cmp-hang", "cmp-dead"}
	res := c.CheckNow(context.Background(), hosts...)
	if len(res) != 4 {
		t.Fatalf("%d results", len(res))
	}
	for i, r := range res {
		if r.Host != hosts[i] || r.At.IsZero() {
			t.Fatalf("result %d: %+v", i, r)
		}
	}
	if r := res[0]; !r.OK || r.PowerState != fencing.On || r.Error != "" {
		t.Errorf("healthy BMC: %+v", r)
	}
	if r := res[1]; r.OK || r.Error != "BMC refused the credentials" || r.PowerState != fencing.Unknown {
		t.Errorf("auth-fail BMC: %+v", r)
	}
	if r := res[2]; r.OK || r.Error != "BMC unreachable: no answer within 300ms" || r.Latency > 3*time.Second {
		t.Errorf("hung BMC (the check timeout must bound it, not the 5s attempt): %+v", r)
	}
	// connection refused is retried until the timeout; the reason is the
	// last attempt's error (or, rarely, the timeout cut an attempt short)
	if r := res[3]; r.OK || !strings.HasPrefix(r.Error, "BMC unreachable: ") || strings.Contains(r.Error, "redfish:") ||
		!strings.Contains(r.Error, "connection refused") && r.Error != "BMC unreachable: no answer within 300ms" {
		t.Errorf("dead BMC: %+v", r)
	}
	want := []string{"cmp-auth ok=false BMC refused the credentials", "cmp-dead ok=false " + res[3].Error,
		"cmp-hang ok=false BMC unreachable: no answer within 300ms"}
	if got := ch.take(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("OnChange after the first round:\n got %q\nwant %q", got, want)
	}
	u := c.Unfenceable()
	if len(u) != 3 || u["cmp-auth"] != "BMC refused the credentials" || u["cmp-hang"] == "" || u["cmp-dead"] == "" {
		t.Fatalf("Unfenceable: %v", u)
	}

	// still broken: no repeated notification
	c.CheckNow(context.Background(), "cmp-auth")
	if got := ch.take(); len(got) != 0 {
		t.Fatalf("a host still unfenceable was reported again: %q", got)
	}

	// repaired: fenceable again, reported once
	auth.SetFaults("sys-auth", bmcsim.Faults{})
	hang.SetFaults("sys-hang", bmcsim.Faults{})
	res = c.CheckNow(context.Background(), hosts...)
	if !res[1].OK || !res[2].OK {
		t.Fatalf("repaired BMCs: %+v", res)
	}
	if got := ch.take(); strings.Join(got, "|") != "cmp-auth ok=true |cmp-hang ok=true " {
		t.Fatalf("OnChange after the repair: %q", got)
	}
	if u := c.Unfenceable(); len(u) != 1 || u["cmp-dead"] == "" {
		t.Fatalf("Unfenceable after the repair: %v", u)
	}

	// a healthy host that breaks is reported
	good.SetFaults("sys-good", bmcsim.Faults{AuthFail: true})
	c.CheckNow(context.Background(), "cmp-good")
	if got := ch.take(); strings.Join(got, "|") != "cmp-good ok=false BMC refused the credentials" {
		t.Fatalf("OnChange when a healthy BMC breaks: %q", got)
	}
}

// stater is a fake BMC client.
type stater func(ctx context.Context, host string) (fencing.PowerState, error)

func (s stater) PowerState(ctx context.Context, host string) (fencing.PowerState, error) {
	return s(ctx, host)
}

func TestRunChecksAtOnceThenEveryIntervalAndBoundsParallelism(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 1, 15, 1, 0, 0, 0, time.UTC))
	var calls, inFlight, maxInFlight atomic.Int64
	release := make(chan struct{})
	bmc := stater(func(ctx context.Context, host string) (fencing.PowerState, error) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			m := maxInFlight.Load()
			if n <= m || maxInFlight.CompareAndSwap(m, n) {
				break
			}
		}
		calls.Add(1)
		<-release
		return fencing.On, nil
	})
	hosts := []string{"a", "b", "c", "d", "e"}
	c, err := New(Config{BMC: bmc, Hosts: hosts, Interval: time.Minute, Parallel: 2, Clock: clk, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()

	waitFor(t, "two checks in flight", func() bool { return inFlight.Load() == 2 })
	time.Sleep(20 * time.Millisecond) // a third check, were it allowed, would start now
	if n := inFlight.Load(); n != 2 {
		t.Fatalf("%d checks in flight, want at most 2", n)
	}
	close(release)
	waitFor(t, "the first round", func() bool { return calls.Load() == 5 })
	time.Sleep(20 * time.Millisecond)
	if n := calls.Load(); n != 5 {
		t.Fatalf("%d checks before the interval passed", n)
	}
	if m := maxInFlight.Load(); m != 2 {
		t.Fatalf("at most %d checks ran at once, want 2", m)
	}
	// the next round waits for the interval on the injected clock
	waitFor(t, "the second round", func() bool { clk.Advance(10 * time.Second); return calls.Load() == 10 })
	if got := clk.Now().Sub(time.Date(2026, 1, 15, 1, 0, 0, 0, time.UTC)); got < time.Minute {
		t.Fatalf("second round after %s, want after the 1m interval", got)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop when its context ended")
	}
}

func TestTimeoutRunsOnTheInjectedClock(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 1, 15, 1, 0, 0, 0, time.UTC))
	bmc := stater(func(ctx context.Context, _ string) (fencing.PowerState, error) {
		<-ctx.Done()
		return fencing.Unknown, fmt.Errorf("redfish: power_state x: %w: %v", fencing.ErrUnreachable, ctx.Err())
	})
	var ch changes
	c, _ := New(Config{BMC: bmc, Timeout: 10 * time.Second, Clock: clk, OnChange: ch.on, Log: zerolog.Nop()})
	out := make(chan []Result, 1)
	go func() { out <- c.CheckNow(context.Background(), "cmp-001") }()
	var res []Result
	waitFor(t, "the check to time out", func() bool {
		select {
		case res = <-out:
			return true
		default:
			clk.Advance(time.Second)
			return false
		}
	})
	if r := res[0]; r.OK || r.Error != "BMC unreachable: no answer within 10s" || r.Latency < 10*time.Second {
		t.Fatalf("%+v", r)
	}
	if got := ch.take(); len(got) != 1 || got[0] != "cmp-001 ok=false BMC unreachable: no answer within 10s" {
		t.Fatalf("OnChange: %q", got)
	}
}

func TestStoppingRunChangesNothing(t *testing.T) {
	started := make(chan struct{}, 1)
	bmc := stater(func(ctx context.Context, _ string) (fencing.PowerState, error) {
		started <- struct{}{}
		<-ctx.Done()
		return fencing.Unknown, fmt.Errorf("%w: %v", fencing.ErrUnreachable, ctx.Err())
	})
	var ch changes
	c, _ := New(Config{BMC: bmc, Hosts: []string{"cmp-001"}, Timeout: time.Hour, OnChange: ch.on, Log: zerolog.Nop()})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	<-started
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop")
	}
	if u := c.Unfenceable(); len(u) != 0 {
		t.Fatalf("a check the caller canceled marked the host unfenceable: %v", u)
	}
	if got := ch.take(); len(got) != 0 {
		t.Fatalf("OnChange after a canceled check: %q", got)
	}
}

func TestLogFields(t *testing.T) {
	var buf bytes.Buffer
	bmc := stater(func(context.Context, string) (fencing.PowerState, error) {
		return fencing.Unknown, fmt.Errorf("redfish: power_state cmp-001: %w (HTTP 401)", fencing.ErrAuth)
	})
	c, _ := New(Config{BMC: bmc, Log: zerolog.New(&buf)})
	c.CheckNow(context.Background(), "cmp-001")
	var line map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["message"] == "fence path check" {
			line = m
		}
	}
	if line == nil || line["component"] != "fence-check" || line["host_id"] != "cmp-001" || line["outcome"] != "auth_refused" ||
		line["rpc_latency_ms"] == nil || line["level"] != "warn" {
		t.Fatalf("log line %v in\n%s", line, buf.String())
	}
}

type retryable struct{ err error }

func (r *retryable) Error() string { return r.err.Error() }
func (r *retryable) Unwrap() error { return r.err }

func TestReason(t *testing.T) {
	refused := &retryable{fmt.Errorf("%w: %v", fencing.ErrUnreachable,
		errors.New(`Post "https://10.0.0.17/redfish/v1/SessionService/Sessions": dial tcp 10.0.0.17:443: connect: connection refused`))}
	for _, c := range []struct {
		err      error
		timedOut bool
		want     string
	}{
		{fmt.Errorf("redfish: power_state h: %w", fmt.Errorf("%w (HTTP 401)", fencing.ErrAuth)), false, "BMC refused the credentials"},
		{fmt.Errorf("redfish: power_state h: gave up after 3 attempts: %w", refused), false,
			"BMC unreachable: dial tcp 10.0.0.17:443: connect: connection refused"},
		{fmt.Errorf("redfish: power_state h: gave up after 3 attempts: %w", refused), true,
			"BMC unreachable: dial tcp 10.0.0.17:443: connect: connection refused"},
		{fmt.Errorf("redfish: power_state h: gave up after 3 attempts: %w", &retryable{fmt.Errorf("%w: %v", fencing.ErrUnreachable,
			errors.New(`Get "https://10.0.0.17/redfish/v1/Systems/1": context canceled`))}), true, "BMC unreachable: no answer within 10s"},
		{fmt.Errorf("redfish: h: %w", fencing.ErrUnknownHost), false, "no BMC configured for the host"},
		{errors.New(`redfish: h: system "x" not found on the BMC`), false, `BMC error: system "x" not found on the BMC`},
		{errors.New("redfish: power_state h: gave up after 9 attempts: BMC answered HTTP 503: busy"), true,
			"BMC check timed out after 10s: BMC answered HTTP 503: busy"},
	} {
		if got := Reason(c.err, c.timedOut, 10*time.Second); got != c.want {
			t.Errorf("Reason(%v, %v) = %q, want %q", c.err, c.timedOut, got, c.want)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
