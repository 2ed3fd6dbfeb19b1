package bmcsim

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestOnPowerReportsSettledStatesInOrder(t *testing.T) {
	const delay = 80 * time.Millisecond
	sim := New("admin", "pw", delay, "cn1", "cn2")
	var (
		mu  sync.Mutex
		got []string
		at  []time.Duration
	)
	start := time.Now()
	sim.OnPower = func(system, state string) {
		// the hook may call the simulator: it does not run under its lock
		if p := sim.Power(system); p != state && !strings.HasPrefix(p, "Powering") {
			t.Errorf("hook for %s %s while the simulator says %s", system, state, p)
		}
		time.Sleep(20 * time.Millisecond) // a slow hook delays the next call, never reorders it
		mu.Lock()
		got = append(got, system+" "+state)
		at = append(at, time.Since(start))
		mu.Unlock()
	}
	srv := httptest.NewServer(sim.Handler())
	defer srv.Close()
	reset := func(id, rt string) {
		req, _ := http.NewRequest("POST", srv.URL+"/redfish/v1/Systems/"+id+"/Actions/ComputerSystem.Reset",
			strings.NewReader(`{"ResetType":"`+rt+`"}`))
		req.SetBasicAuth("admin", "pw")
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusNoContent {
			t.Fatalf("reset %s %s: %v %v", id, rt, resp, err)
		}
		resp.Body.Close()
	}
	wait := func(n int) []string {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			mu.Lock()
			if len(got) >= n {
				out := slices.Clone(got)
				mu.Unlock()
				return out
			}
			mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("want %d power events, got %v", n, got)
		return nil
	}

	reset("cn1", "On") // already on: nothing changes, nothing reported
	reset("cn1", "ForceOff")
	if ev := wait(1); !slices.Equal(ev, []string{"cn1 Off"}) {
		t.Fatalf("after ForceOff: %v", ev)
	}
	mu.Lock()
	if at[0] < delay {
		t.Fatalf("Off reported after %v, before the power delay %v", at[0], delay)
	}
	mu.Unlock()
	reset("cn1", "On")
	reset("cn2", "PowerCycle")
	ev := wait(4)
	// cn2 goes Off then On; cn1's On lands between or after, never before cn2's Off
	if i, j := slices.Index(ev, "cn2 Off"), slices.Index(ev, "cn2 On"); i < 0 || j < i || !slices.Contains(ev[1:], "cn1 On") {
		t.Fatalf("events %v", ev)
	}
	time.Sleep(3 * delay)
	if ev := wait(4); len(ev) != 4 {
		t.Fatalf("extra events: %v", ev)
	}
	if sim.Power("cn1") != "On" || sim.Power("cn2") != "On" {
		t.Fatalf("final power %s %s", sim.Power("cn1"), sim.Power("cn2"))
	}

	// faults: never-off reports nothing; SetPower reports nothing
	sim.SetFaults("cn1", Faults{NeverOff: true})
	reset("cn1", "ForceOff")
	sim.SetPower("cn2", "Off")
	time.Sleep(3 * delay)
	if ev := wait(4); len(ev) != 4 {
		t.Fatalf("never-off or SetPower reported: %v", ev)
	}
}

func TestNoHookNoTimers(t *testing.T) {
	sim := New("admin", "pw", time.Millisecond, "a")
	sim.mu.Lock()
	sys := sim.systems["a"]
	sim.reset(sys, "ForceOff")
	n := len(sim.powerQ)
	sim.mu.Unlock()
	if n != 0 {
		t.Fatalf("events queued without a hook: %d", n)
	}
	time.Sleep(5 * time.Millisecond)
	if p := sim.Power("a"); p != "Off" {
		t.Fatalf("power %s", p)
	}
}
