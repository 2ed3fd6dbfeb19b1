package production

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"libvirt.org/go/libvirt"
)

// TestHarness checks the world without fenced: a libvirtd answers beside
// each compute at the URI fenced probes, a server lands on the host it is
// aimed at, freeze/thaw stop and resume a compute, and the BMC's power is
// the compute's: Off (through the Redfish API) kills nova-compute and
// libvirtd and Nova reports the host down; On (through Debian's redfishtool
// when present) starts them and Nova reports it up again.
func TestHarness(t *testing.T) {
	w := newWorld(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	for _, h := range computes {
		if n := libvirtDomains(t, st.LibvirtURI(h)); n < 1 {
			t.Fatalf("libvirtd of %s lists %d domains, want the test driver's default", h, n)
		}
	}
	ids := w.bootOn("cn1", 1)
	on1, err := serversOn(ctx, t, "cn1")
	if err != nil || len(on1) != 1 || on1[0].ID != ids[0] {
		t.Fatalf("servers on cn1: %+v, %v", on1, err)
	}

	// freeze / thaw
	if err := st.Freeze("cn1"); err != nil {
		t.Fatal(err)
	}
	expectProcs(t, "cn1", "stopped")
	if err := st.Thaw("cn1"); err != nil {
		t.Fatal(err)
	}
	expectProcs(t, "cn1", "running")

	// power off through the BMC: the hook kills the compute
	before, err := service(ctx, t, "cn1")
	if err != nil || !healthy(before) {
		t.Fatalf("cn1 before: %s, %v", describe(before), err)
	}
	mark := bmc.mark()
	off := time.Now()
	if err := bmc.reset("cn1", "ForceOff"); err != nil {
		t.Fatal(err)
	}
	waitPower(t, "cn1", "Off", 30*time.Second)
	poweredOff := time.Since(off)
	waitFor(t, "the power hook to kill cn1", 20*time.Second, func() bool {
		return procsAre("cn1", "dead")
	})
	killed := time.Since(off)
	var down time.Duration
	waitFor(t, "Nova to report cn1 down", serviceDownTime+3*reportInterval+30*time.Second, func() bool {
		s, err := service(ctx, t, "cn1")
		if err == nil && s.State == "down" {
			down = time.Since(off)
			return true
		}
		return false
	})
	if s, _ := service(ctx, t, "cn2"); s.State != "up" {
		t.Fatalf("cn2 went down with cn1: %s", describe(s))
	}

	// power on: the hook starts libvirtd, then nova-compute
	on := time.Now()
	if err := powerOn("cn1"); err != nil {
		t.Fatal(err)
	}
	waitPower(t, "cn1", "On", 30*time.Second)
	waitFor(t, "the power hook to start cn1", 60*time.Second, func() bool { return procsAre("cn1", "running") })
	started := time.Since(on)
	var up time.Duration
	waitFor(t, "Nova to report cn1 up", 120*time.Second, func() bool {
		s, err := service(ctx, t, "cn1")
		if err == nil && s.State == "up" && s.UpdatedAt.After(before.UpdatedAt) {
			up = time.Since(on)
			return true
		}
		return false
	})
	if n := libvirtDomains(t, st.LibvirtURI("cn1")); n < 1 {
		t.Fatalf("libvirtd of cn1 after power on: %d domains", n)
	}
	if r := bmc.resets("cn1", mark); len(r) != 2 || r[0] != "ForceOff" || r[1] != "On" {
		t.Fatalf("BMC resets of cn1: %v", r)
	}
	hooks := bmc.hookRuns(mark)
	if len(hooks) != 2 || !strings.HasPrefix(hooks[0], "power-hook cn1 Off: ok") || !strings.HasPrefix(hooks[1], "power-hook cn1 On: ok") {
		t.Fatalf("power hook runs: %q", hooks)
	}
	line := fmt.Sprintf("harness: ForceOff -> BMC Off %.1fs, compute killed %.1fs, Nova down %.1fs; On -> compute running %.1fs, Nova up %.1fs",
		poweredOff.Seconds(), killed.Seconds(), down.Seconds(), started.Seconds(), up.Seconds())
	t.Log(line)
	fmt.Println("integration/production: " + line)
}

// libvirtDomains lists the domains of a libvirtd with the libvirt bindings
// fenced's probe uses.
func libvirtDomains(t *testing.T, uri string) int {
	t.Helper()
	c, err := libvirt.NewConnect(uri)
	if err != nil {
		t.Fatalf("connect %s: %v", uri, err)
	}
	defer c.Close()
	doms, err := c.ListAllDomains(0)
	if err != nil {
		t.Fatalf("list domains at %s: %v", uri, err)
	}
	for _, d := range doms {
		d.Free()
	}
	return len(doms)
}

// powerOn turns a system on with redfishtool, the outside client, when it is
// installed; otherwise through the Redfish API.
func powerOn(system string) error {
	if _, err := exec.LookPath("redfishtool"); err != nil {
		return bmc.reset(system, "On")
	}
	host := strings.TrimPrefix(bmc.url, "http://")
	out, err := exec.Command("redfishtool", "-r", host, "-u", bmcUser, "-p", bmcPassword, "-S", "Never",
		"Systems", "-I", system, "reset", "On").CombinedOutput()
	if err != nil {
		return fmt.Errorf("redfishtool reset On: %v\n%s", err, out)
	}
	return nil
}

func waitPower(t *testing.T, system, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		p, err := bmc.power(system)
		if err == nil && p == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s power %q (%v), want %s within %s", system, p, err, want, timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// procsAre reports whether nova-compute and libvirtd of host are both in state.
func procsAre(host, state string) bool {
	ps, err := st.Status(host)
	if err != nil || len(ps) != 2 {
		return false
	}
	for _, p := range ps {
		if p.State != state {
			return false
		}
	}
	return true
}

func expectProcs(t *testing.T, host, state string) {
	t.Helper()
	if !procsAre(host, state) {
		ps, err := st.Status(host)
		t.Fatalf("processes of %s: %+v %v, want all %s", host, ps, err, state)
	}
}

func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
