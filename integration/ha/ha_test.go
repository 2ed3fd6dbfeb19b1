// Package ha tests fenced as an HA service: three `fenced run` replicas as
// separate processes on a real three-member etcd cluster (Debian's
// etcd-server), acting on one shared lab world (`fenced lab serve`) that
// records every action and which replica asked for it.
package ha

import (
	"strings"
	"syscall"
	"testing"
	"time"
)

const victim = "lab-007"

// restored waits until the victim was powered off (evacuated, powered on) and is back in service.
func (w *world) restored(timeout time.Duration) {
	w.t.Helper()
	deadline := time.Now().Add(timeout)
	w.waitFor(victim+" powered off", timeout, func() bool {
		a, _ := w.actions()
		return count(a, victim, "power_off") > 0
	})
	w.waitFor(victim+" restored", time.Until(deadline), func() bool {
		s := w.hostState(victim)
		return s == "restored" || s == "normal"
	})
}

func TestKillLeaderBetweenIntentAndOutcome(t *testing.T) {
	t.Parallel()
	w := startWorld(t, labOpts{starveAfter: 3 * time.Second})
	// the leader writes the power-off intent, then waits 3 s for the BMC to answer
	var leader string
	w.waitFor("a power-off intent without outcome", 120*time.Second, func() bool {
		p, err := w.pending()
		for _, in := range p {
			if err == nil && in.Host == victim && in.Action == "power_off" {
				leader = w.leader()
				return leader != ""
			}
		}
		return false
	})
	w.signal(leader, syscall.SIGKILL)
	t.Logf("killed leader %s in the middle of the power off", leader)
	w.waitFor("a new leader", 30*time.Second, func() bool { l := w.leader(); return l != "" && l != leader })
	w.restored(90 * time.Second)
	w.waitFor("no intent left without outcome", 30*time.Second, func() bool { p, err := w.pending(); return err == nil && len(p) == 0 })
	actions, _ := w.actions()
	if n := count(actions, victim, "power_off"); n != 1 {
		t.Fatalf("%d power-offs of %s, want exactly 1: %+v", n, victim, actions)
	}
	if n := count(actions, victim, "power_on"); n != 1 {
		t.Fatalf("%d power-ons of %s, want exactly 1: %+v", n, victim, actions)
	}
}

func TestPausedLeaderCannotActWithAStaleToken(t *testing.T) {
	t.Parallel()
	w := startWorld(t, labOpts{starveAfter: 10 * time.Second})
	var old string
	w.waitFor("a leader", 30*time.Second, func() bool { old = w.leader(); return old != "" })
	// a starved controller: SIGSTOP longer than the session TTL
	w.signal(old, syscall.SIGSTOP)
	stopped := time.Now()
	w.waitFor("another leader while the old one is stopped", 30*time.Second, func() bool { l := w.leader(); return l != "" && l != old })
	for time.Since(stopped) < 8*time.Second {
		time.Sleep(100 * time.Millisecond)
	}
	resumed := time.Now()
	w.signal(old, syscall.SIGCONT)
	w.restored(120 * time.Second)
	actions, _ := w.actions()
	for _, a := range actions {
		if a.Replica == old && a.At.After(resumed) {
			t.Fatalf("the resumed replica %s acted with its stale token: %+v", old, a)
		}
	}
	if n := count(actions, victim, "power_off"); n != 1 {
		t.Fatalf("%d power-offs, want 1", n)
	}
	if out := w.replicas[old].Output(); !strings.Contains(out, "leadership ended") {
		t.Fatalf("the resumed replica does not say it stepped down:\n%s", tail(out, 20))
	}
}

func TestLoseOneEtcdMember(t *testing.T) {
	t.Parallel()
	w := startWorld(t, labOpts{starveAfter: 3 * time.Second})
	// a replica that knows it leads (its campaign returned): the election
	// key alone can be written an instant before quorum goes, and then no
	// replica ever led to stop leading
	w.waitFor("a replica leading", 30*time.Second, func() bool {
		for _, p := range w.replicas {
			if strings.Contains(p.Output(), "elected leader") {
				return true
			}
		}
		return false
	})
	w.etcd.kill(0)
	t.Log("killed etcd member n1")
	w.restored(150 * time.Second)
	actions, _ := w.actions()
	if n := count(actions, victim, "power_off"); n != 1 {
		t.Fatalf("%d power-offs with one etcd member down, want 1", n)
	}
}

func TestLoseQuorumThenRecover(t *testing.T) {
	t.Parallel()
	w := startWorld(t, labOpts{starveAfter: 3 * time.Second})
	// a replica that knows it leads (its campaign returned): the election
	// key alone can be written an instant before quorum goes, and then no
	// replica ever led to stop leading
	w.waitFor("a replica leading", 30*time.Second, func() bool {
		for _, p := range w.replicas {
			if strings.Contains(p.Output(), "elected leader") {
				return true
			}
		}
		return false
	})
	w.etcd.kill(0)
	w.etcd.kill(1)
	lost := time.Now()
	t.Log("killed etcd members n1 and n2: no quorum")
	// keep quorum away 10 s past the time the victim would have been powered off
	time.Sleep(time.Until(w.onset.Add(powerOffAfter + 10*time.Second)))
	recovered := time.Now()
	actions, _ := w.actions()
	for _, a := range actions {
		if a.At.After(lost.Add(3*time.Second)) && a.At.Before(recovered) {
			t.Fatalf("acted without quorum: %+v", a)
		}
	}
	logged := false
	for _, p := range w.replicas {
		logged = logged || strings.Contains(p.Output(), "leadership ended")
	}
	if !logged {
		t.Fatal("no replica logged that it stopped leading when quorum was lost")
	}
	w.etcd.restart(0)
	w.etcd.restart(1)
	w.waitFor("a leader after quorum returns", 60*time.Second, func() bool { return w.leader() != "" })
	w.restored(120 * time.Second)
	actions, _ = w.actions()
	if n := count(actions, victim, "power_off"); n != 1 {
		t.Fatalf("%d power-offs, want 1", n)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
