package detection

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fencedhq/fenced/integration/internal/harness"
)

// agentDownReason is how the reason of a host whose compute agent died
// while its execution is healthy begins.
const agentDownReason = "control-plane agent down, execution healthy"

// Scenario 1: the whole host stops executing (nova-compute and libvirtd
// SIGSTOPped). fenced must reach critical before Nova says the compute is
// down. fenced runs in observe mode so that it writes nothing to Nova (a
// force_down would make Nova say `down` at once, and a disable bumps the
// service's updated_at): the two detectors are measured side by side,
// each on its own.
func TestFrozenHost(t *testing.T) {
	tab := newTable("Scenario 1: whole host frozen (SIGSTOP nova-compute and libvirtd), from the freeze",
		"trial", "host", "last heartbeat before the freeze", "fenced warn", "fenced critical", "Nova `down`", "critical / Nova", "fenced's hard_failure")
	var crits, downs []time.Duration
	var ratios []float64
	defer func() {
		tab.print(t)
		if len(ratios) > 0 {
			figure(t, "frozen summary: critical %s, Nova down %s, ratio %.2f–%.2f over %d trials",
				spread(crits), spread(downs), slices.Min(ratios), slices.Max(ratios), len(ratios))
		}
	}()
	for i := 1; i <= trials; i++ {
		victim := computes[(i-1)%len(computes)]
		t.Run(fmt.Sprintf("trial%d-%s", i, victim), func(t *testing.T) {
			cleanWorld(t)
			r := startReplica(t, "observe")
			r.waitWatching(2 * time.Minute)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			before, err := service(ctx, t, victim)
			if err != nil {
				t.Fatal(err)
			}
			t0 := time.Now()
			if err := st.Freeze(victim); err != nil {
				t.Fatal(err)
			}
			hbAge := t0.Sub(before.UpdatedAt)
			var warn, crit, down time.Duration
			var at hostView
			deadline := t0.Add(serviceDownTime + 3*reportInterval + time.Minute)
			for (crit == 0 || down == 0) && time.Now().Before(deadline) {
				if crit == 0 {
					if h, err := r.host(victim); err == nil {
						if warn == 0 && h.Host.State != "normal" {
							warn = time.Since(t0)
						}
						if severe(h.Host.State) {
							crit, at = time.Since(t0), h
						}
					}
				}
				if down == 0 {
					if s, err := service(ctx, t, victim); err == nil && s.State == "down" {
						down = time.Since(t0)
					}
				}
				time.Sleep(250 * time.Millisecond)
			}
			ratio := 0.0
			if crit > 0 && down > 0 {
				ratio = crit.Seconds() / down.Seconds()
				crits, downs, ratios = append(crits, crit), append(downs, down), append(ratios, ratio)
			}
			tab.add(fmt.Sprint(i), victim, secs(hbAge), secs(warn), secs(crit), secs(down), fmt.Sprintf("%.2f", ratio), "`"+at.Verdict.HardFailure+"`")
			figure(t, "frozen trial %d %s: last heartbeat %.1fs before the freeze; fenced warn %.1fs, critical %.1fs (%s: %q); Nova down %.1fs; ratio %.2f",
				i, victim, hbAge.Seconds(), warn.Seconds(), crit.Seconds(), at.Host.State, at.Host.Reason, down.Seconds(), ratio)
			switch {
			case crit == 0:
				t.Fatalf("fenced never reached critical for the frozen %s (Nova down after %s)", victim, secs(down))
			case down == 0:
				t.Fatalf("Nova never said %s down (fenced critical after %s)", victim, secs(crit))
			case crit >= down:
				t.Fatalf("fenced critical after %s, not before Nova's down after %s (ratio %.2f)", secs(crit), secs(down), ratio)
			}
		})
	}
}

// forbidden are the audit actions fenced must never take on a host whose
// agent died while its execution is healthy.
var forbidden = []string{"force_down", "live_migrate", "evacuate", "power_cycle", "power_off", "power_on"}

// Scenario 2: only nova-compute dies (SIGKILL); libvirtd and the servers
// are fine. fenced runs in auto mode, so a wrong verdict would act: it must
// never force the compute down, migrate or evacuate its servers, or touch
// its power, and its verdict must say agent failure.
func TestAgentDown(t *testing.T) {
	const victim = "cn2"
	tab := newTable("Scenario 2: nova-compute SIGKILLed only (libvirtd and servers fine), fenced in auto mode, from the kill",
		"trial", "host", "fenced warn", "`agent_down` in the verdict", "Nova service disabled by fenced", "Nova `down`", "watched until", "states seen", "irreversible actions")
	var downs []time.Duration
	defer func() {
		tab.print(t)
		if len(downs) > 0 {
			figure(t, "agent-down summary: Nova down %s over %d trials", spread(downs), len(downs))
		}
	}()
	for i := 1; i <= trials; i++ {
		t.Run(fmt.Sprintf("trial%d-%s", i, victim), func(t *testing.T) {
			w := cleanWorld(t)
			ids := w.bootOn(victim, 2)
			r := startReplica(t, "auto")
			r.waitWatching(2 * time.Minute)
			ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
			defer cancel()
			mark := bmc.mark()
			ps, err := st.Status(victim)
			if err != nil || ps["nova-compute"].PID == 0 || ps["libvirtd"].State != "running" {
				t.Fatalf("processes of %s: %+v, %v", victim, ps, err)
			}
			t0 := time.Now()
			if err := syscall.Kill(ps["nova-compute"].PID, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			var warn, agent, reason, disabled, down time.Duration
			var agentText, reasonText string
			var violations []string
			states := map[string]bool{}
			violate := func(format string, args ...any) {
				v := fmt.Sprintf("%.1fs: ", time.Since(t0).Seconds()) + fmt.Sprintf(format, args...)
				if !slices.Contains(violations, v) {
					violations = append(violations, v)
				}
			}
			forcedSeen := false
			// watch until Nova has said down for 20 s (fenced must not act on
			// Nova's down either), at most 4 minutes
			deadline := t0.Add(4 * time.Minute)
			for time.Now().Before(deadline) && (down == 0 || time.Since(t0) < down+20*time.Second) {
				if h, err := r.host(victim); err == nil {
					states[h.Host.State] = true
					if warn == 0 && h.Host.State != "normal" {
						warn = time.Since(t0)
					}
					if agent == 0 && h.Verdict.AgentDown != "" {
						agent, agentText = time.Since(t0), h.Verdict.AgentDown
					}
					if reason == 0 && strings.HasPrefix(h.Host.Reason, agentDownReason) {
						reason, reasonText = time.Since(t0), h.Host.Reason
					}
					if severe(h.Host.State) {
						violate("fenced state %s: %s", h.Host.State, h.Host.Reason)
					}
				}
				if s, err := service(ctx, t, victim); err == nil {
					if s.ForcedDown && !forcedSeen {
						forcedSeen = true
						violate("Nova service forced down")
					}
					if disabled == 0 && s.Status == "disabled" && strings.HasPrefix(s.DisabledReason, "fenced") {
						disabled = time.Since(t0)
					}
					if down == 0 && s.State == "down" {
						down = time.Since(t0)
					}
				}
				if p, err := bmc.power(victim); err == nil && p != "On" {
					violate("BMC power %s", p)
				}
				time.Sleep(400 * time.Millisecond)
			}
			watched := time.Since(t0)
			// the record: fenced's audit, the BMC's resets, Nova's migrations
			recs, err := r.audit()
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range recs {
				if a.HostID == victim && slices.Contains(forbidden, a.Action) {
					violate("audit: %s", a)
				}
			}
			if rs := bmc.resets(victim, mark); len(rs) > 0 {
				violate("BMC resets %v", rs)
			}
			migs, err := migrationsFrom(ctx, t, victim, t0)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range migs {
				violate("Nova %s migration %d of %s to %s (%s)", m.MigrationType, m.ID, m.InstanceUUID, m.DestCompute, m.Status)
			}
			for _, id := range ids {
				if s, err := server(ctx, t, id); err != nil || s.Host != victim || s.Status != "ACTIVE" {
					violate("server %s moved or stopped: %v %v", id, s, err)
				}
			}
			if down > 0 {
				downs = append(downs, down)
			}
			irreversible := "none"
			if len(violations) > 0 {
				irreversible = strings.Join(violations, "; ")
			}
			var seen []string
			for s := range states {
				seen = append(seen, s)
			}
			slices.Sort(seen)
			tab.add(fmt.Sprint(i), victim, secs(warn), secs(agent), secs(disabled), secs(down), secs(watched), strings.Join(seen, ", "), irreversible)
			figure(t, "agent-down trial %d %s: fenced warn %.1fs, agent_down %.1fs (%q), reason %.1fs (%q), disabled by fenced %.1fs; Nova down %.1fs; watched %.1fs; states %v; irreversible: %s",
				i, victim, warn.Seconds(), agent.Seconds(), agentText, reason.Seconds(), reasonText, disabled.Seconds(), down.Seconds(), watched.Seconds(), seen, irreversible)
			if len(violations) > 0 {
				t.Errorf("fenced acted irreversibly on %s, whose libvirtd and servers were fine:\n  %s\naudit:\n%s", victim, strings.Join(violations, "\n  "), dumpAudit(recs, victim))
			}
			if agent == 0 {
				t.Errorf("the verdict of %s never said agent_down", victim)
			}
			if reason == 0 {
				t.Errorf("the reason of %s never began %q", victim, agentDownReason)
			}
			if down == 0 {
				t.Errorf("Nova never said %s down within %s", victim, secs(watched))
			}
		})
	}
}

func dumpAudit(recs []auditRecord, host string) string {
	var b strings.Builder
	for _, a := range recs {
		if a.HostID == host {
			b.WriteString("  " + a.String() + "\n")
		}
	}
	return b.String()
}

// grayQuota and grayPeriod throttle libvirtd (cgroup v1 CPU bandwidth):
// grayQuota µs of CPU per grayPeriod µs for all its threads, together with
// a busy loop in the same cgroup that stands for the guests eating the
// host: the loop spends the quota early in each period and libvirtd's
// answer waits for the next one. The period is not a divisor of the 2 s
// tick: with 1 s every probe lands at the same phase of the period and
// waits the same time (one run: 70–90 ms for minutes); with 950 ms the
// phase drifts by 100 ms a probe and the waits spread over the period.
const (
	grayQuota  = 10000
	grayPeriod = 950000
)

// Scenario 3: a gray failure. libvirtd starves (CPU quota) while
// nova-compute keeps heartbeating: fenced must reach warn or critical, and
// Nova says `up` throughout.
func TestGrayFailure(t *testing.T) {
	const victim = "cn3"
	tab := newTable(fmt.Sprintf("Scenario 3: gray failure, libvirtd of the host under a CPU quota of %d µs per %d µs with a busy loop beside it, from the quota", grayQuota, grayPeriod),
		"trial", "host", "fenced warn", "fenced critical", "libvirt p95 at warn", "highest p95 seen", "Nova polls", "Nova `up` in all")
	var warns []time.Duration
	defer func() {
		tab.print(t)
		if len(warns) > 0 {
			figure(t, "gray summary: warn %s over %d trials", spread(warns), len(warns))
		}
	}()
	for i := 1; i <= trials; i++ {
		t.Run(fmt.Sprintf("trial%d-%s", i, victim), func(t *testing.T) {
			cleanWorld(t)
			r := startReplica(t, "approve")
			r.waitWatching(2 * time.Minute)
			ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
			defer cancel()
			ps, err := st.Status(victim)
			if err != nil || ps["libvirtd"].PID == 0 {
				t.Fatalf("processes of %s: %+v, %v", victim, ps, err)
			}
			t0 := time.Now()
			starve(t, ps["libvirtd"].PID, grayQuota, grayPeriod)
			var warn, crit time.Duration
			var p95AtWarn, p95Max float64
			polls, up := 0, 0
			var notUp []string
			deadline := t0.Add(4 * time.Minute)
			// watch until 20 s after warn (does it go further?), at most 4 minutes
			for time.Now().Before(deadline) && (warn == 0 || time.Since(t0) < warn+20*time.Second) {
				if h, err := r.host(victim); err == nil {
					p95, _ := h.value("libvirt_latency_p95_ms")
					p95Max = max(p95Max, p95)
					if warn == 0 && h.Host.State != "normal" {
						warn, p95AtWarn = time.Since(t0), p95
					}
					if crit == 0 && severe(h.Host.State) {
						crit = time.Since(t0)
					}
				}
				if s, err := service(ctx, t, victim); err == nil {
					polls++
					// a force_down is fenced's own write (critical), not Nova's view of the heartbeat
					if s.State == "up" || s.ForcedDown {
						up++
					} else {
						notUp = append(notUp, fmt.Sprintf("%.1fs %s", time.Since(t0).Seconds(), describe(s)))
					}
				}
				time.Sleep(400 * time.Millisecond)
			}
			if crit > 0 {
				if h, err := r.host(victim); err == nil && h.Host.State == "awaiting_approval" {
					if _, err := r.cli("abort", victim, "--reason", "detection test: gray failure measured"); err != nil {
						t.Log(err)
					}
				}
			}
			if warn > 0 {
				warns = append(warns, warn)
			}
			tab.add(fmt.Sprint(i), victim, secs(warn), secs(crit), fmt.Sprintf("%.0f ms", p95AtWarn), fmt.Sprintf("%.0f ms", p95Max), fmt.Sprint(polls), fmt.Sprint(up == polls))
			figure(t, "gray trial %d %s: fenced warn %.1fs (libvirt p95 %.0f ms), critical %.1fs; highest p95 %.0f ms; Nova up in %d of %d polls",
				i, victim, warn.Seconds(), p95AtWarn, crit.Seconds(), p95Max, up, polls)
			if warn == 0 {
				t.Errorf("fenced never left normal for %s with a starved libvirtd (highest libvirt p95 %.0f ms)", victim, p95Max)
			}
			if p95Max <= 500 {
				t.Errorf("the quota did not push libvirt's p95 over 500 ms (highest %.0f ms): not the gray failure this scenario is about", p95Max)
			}
			if len(notUp) > 0 {
				t.Errorf("Nova did not say %s up throughout (%d of %d polls): %s", victim, polls-up, polls, strings.Join(notUp, "; "))
			}
		})
	}
}

// starve puts every thread of pid, and a busy loop beside it, in a cgroup
// v1 cpu group limited to quota µs per period µs; it is undone when the
// test ends (the loop killed, pid back in the root group, the group
// removed).
func starve(t *testing.T, pid, quota, period int) {
	t.Helper()
	root := harness.CgroupV1()
	if root == "" {
		t.Fatal("no cgroup v1 cpu controller: cannot starve libvirtd")
	}
	cg := filepath.Join(root, fmt.Sprintf("fenced-detection-%d-%d", os.Getpid(), pid))
	if err := os.MkdirAll(cg, 0o755); err != nil {
		t.Fatalf("create cgroup: %v", err)
	}
	loop := exec.Command("/bin/sh", "-c", "while :; do :; done")
	loop.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	t.Cleanup(func() {
		if loop.Process != nil {
			_ = loop.Process.Kill()
			_ = loop.Wait()
		}
		_ = os.WriteFile(filepath.Join(root, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644)
		for i := 0; i < 50 && os.Remove(cg) != nil; i++ {
			time.Sleep(50 * time.Millisecond)
		}
	})
	write := func(f, v string) {
		if err := os.WriteFile(filepath.Join(cg, f), []byte(v), 0o644); err != nil {
			t.Fatalf("cgroup %s: %v", f, err)
		}
	}
	write("cpu.cfs_period_us", strconv.Itoa(period))
	write("cpu.cfs_quota_us", strconv.Itoa(quota))
	if err := loop.Start(); err != nil {
		t.Fatalf("busy loop: %v", err)
	}
	write("cgroup.procs", strconv.Itoa(loop.Process.Pid))
	write("cgroup.procs", strconv.Itoa(pid))
}
