// Package redfish checks the BMC simulator with an outside client, Debian's
// redfishtool, and measures fencing through it with the gofish fencer.
package redfish

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/fencedhq/fenced/integration/internal/harness"
	"github.com/fencedhq/fenced/pkg/fencing/redfish"
	"github.com/fencedhq/fenced/pkg/fencing/redfish/bmcsim"
)

func redfishtool(t *testing.T, args ...string) (string, int) {
	t.Helper()
	out, err := exec.Command("redfishtool", args...).CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("redfishtool: %v", err)
	}
	return string(out), code
}

func TestRedfishtoolAgainstTheSimulator(t *testing.T) {
	if _, err := exec.LookPath("redfishtool"); err != nil {
		t.Fatal("redfishtool not found: install Debian's redfishtool (make deps does)")
	}
	bin := harness.Fenced(t)
	for _, tc := range []struct {
		name   string
		tls    bool
		scheme string
		auth   []string
	}{
		{"http, session auth", false, "Never", []string{"-A", "Session"}},
		{"https self-signed, basic auth", true, "Always", []string{"-A", "Basic"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port := harness.FreePort(t)
			args := []string{"lab", "bmc", "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--systems", "3", "--power-delay", "500ms"}
			if tc.tls {
				args = append(args, "--tls")
			}
			harness.Start(t, "env", append([]string{"FENCED_BMC_PASSWORD=pw", bin}, args...)...)
			base := []string{"-r", fmt.Sprintf("127.0.0.1:%d", port), "-u", "admin", "-p", "pw", "-S", tc.scheme}
			base = append(base, tc.auth...)
			var out string
			var code int
			for i := 0; i < 50; i++ { // wait for the listener
				if out, code = redfishtool(t, append(base, "Systems", "list")...); code == 0 {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if code != 0 || !strings.Contains(out, `"/redfish/v1/Systems/lab-002"`) {
				t.Fatalf("Systems list: rc %d\n%s", code, out)
			}
			power := func() string {
				out, code := redfishtool(t, append(base, "-P", "PowerState", "Systems", "-I", "lab-002")...)
				var v struct{ PowerState string }
				if code != 0 || json.Unmarshal([]byte(out), &v) != nil {
					t.Fatalf("PowerState: rc %d\n%s", code, out)
				}
				return v.PowerState
			}
			if p := power(); p != "On" {
				t.Fatalf("power %s, want On", p)
			}
			if out, code := redfishtool(t, append(base, "Systems", "-I", "lab-002", "reset", "ForceOff")...); code != 0 {
				t.Fatalf("reset ForceOff: rc %d\n%s", code, out)
			}
			deadline := time.Now().Add(10 * time.Second)
			for power() != "Off" {
				if time.Now().After(deadline) {
					t.Fatal("never read Off after ForceOff")
				}
				time.Sleep(200 * time.Millisecond)
			}
			// a reset type the BMC does not list is refused by the client (rc 8)
			if _, code := redfishtool(t, append(base, "Systems", "-I", "lab-002", "reset", "Nmi")...); code == 0 {
				t.Fatal("Nmi accepted")
			}
			// wrong password: rc 5
			bad := slices.Clone(base)
			bad[5] = "wrong"
			if _, code := redfishtool(t, append(bad, "Systems", "list")...); code != 5 {
				t.Fatalf("wrong password: rc %d, want 5", code)
			}
		})
	}
}

// TestConcurrentFencesAndTimeToVerifiedOff fences 100 hosts at once, each
// behind its own simulated BMC whose power takes 2 s to change, and reports
// the time from the fence call to a verified Off (p50, p99). See docs/redfish.md.
func TestConcurrentFencesAndTimeToVerifiedOff(t *testing.T) {
	const n = 100
	targets := map[string]redfish.Target{}
	sims := map[string]*bmcsim.Sim{}
	for i := 0; i < n; i++ {
		host := fmt.Sprintf("cmp-%03d", i)
		s := bmcsim.New("admin", "pw", 2*time.Second, host)
		srv := httptest.NewServer(s.Handler())
		t.Cleanup(srv.Close)
		sims[host] = s
		targets[host] = redfish.Target{Host: host, Endpoint: srv.URL, SystemID: host, Username: "admin", Password: "pw"}
	}
	f, err := redfish.New(redfish.Config{Targets: targets, Poll: 100 * time.Millisecond, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var times []time.Duration
	var errs []error
	var wg sync.WaitGroup
	for host := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			err := f.PowerOff(context.Background(), host)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			times = append(times, time.Since(start))
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d of %d fences failed, first: %v", len(errs), n, errs[0])
	}
	for host, s := range sims {
		if s.Power(host) != "Off" || len(s.Resets(host)) != 1 {
			t.Fatalf("%s: power %s after %v", host, s.Power(host), s.Resets(host))
		}
	}
	slices.Sort(times)
	p := func(q float64) time.Duration { return times[min(len(times)-1, int(q*float64(len(times))))] }
	msg := fmt.Sprintf("%d concurrent fences, power delay 2 s: fence → verified Off p50 %s, p99 %s, max %s, errors 0",
		n, p(0.5).Round(time.Millisecond), p(0.99).Round(time.Millisecond), times[len(times)-1].Round(time.Millisecond))
	t.Log(msg)
	if os.Getenv("FENCED_BENCH_OUT") != "" {
		_ = os.WriteFile(os.Getenv("FENCED_BENCH_OUT"), []byte(msg+"\n"), 0o644)
	}
	if p(0.5) < 2*time.Second {
		t.Fatalf("verified Off in %s: faster than the BMC's power change", p(0.5))
	}
}
