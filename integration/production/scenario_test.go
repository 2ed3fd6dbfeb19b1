package production

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fencedhq/fenced/integration/internal/harness"
	"github.com/fencedhq/fenced/integration/internal/otelcol"
	"github.com/fencedhq/fenced/pkg/lease"
)

const victim = "cn1"

// An incident in approve mode, end to end: servers on cn1; cn1 stops
// executing (nova-compute and libvirtd SIGSTOPped); fenced fences it in Nova
// (forced down, disabled "fenced: …"), waits for carol's approval, closes the
// live-migration gate (libvirt does not answer), powers cn1 off through the
// BMC (the hook kills its processes), evacuates every server to another
// compute, powers it on (the hook starts them), restores and, after the hold,
// returns it to normal; the audit chain verifies and holds it all.
func TestApproveFrozenComputeEvacuateRestore(t *testing.T) {
	runIncident(t, incident{mode: "approve"})
}

// The same incident in auto mode, with the leader killed (SIGKILL) between
// writing the power-off intent and recording its outcome, once the BMC has
// accepted the reset: the other replica takes over, reconciles the intent
// against the BMC instead of powering off again (exactly one power-off
// reset), and finishes the evacuation.
func TestAutoKillLeaderBetweenPowerOffIntentAndOutcome(t *testing.T) {
	runIncident(t, incident{mode: "auto", killLeader: true})
}

type incident struct {
	mode       string // approve or auto
	killLeader bool
}

func runIncident(t *testing.T, in incident) {
	w := newWorld(t)
	// the approve run exports its spans to a real OpenTelemetry Collector
	var col *otelcol.Collector
	var otlp string
	if in.mode == "approve" {
		col = otelcol.Start(t)
		otlp = col.HTTPEndpoint()
	}
	f := newTracedFleet(t, in.mode, otlp, "r1", "r2")
	victims := w.bootOn(victim, 3)
	f.start("r1")
	f.start("r2")
	f.waitLeader(60*time.Second, "")
	for _, h := range computes {
		f.waitState(h, 2*time.Minute, "normal")
	}
	mark := bmc.mark()

	// (2) cn1 stops executing
	t0 := time.Now()
	if err := st.Freeze(victim); err != nil {
		t.Fatal(err)
	}
	t.Logf("froze %s (nova-compute and libvirtd SIGSTOPped)", victim)
	tl := watch(t, t0, f, victims)

	// (3) critical; fenced in Nova
	f.waitState(victim, 4*time.Minute, "critical", "awaiting_approval", "fenced", "rebooting")
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	waitFor(t, victim+" forced down and disabled by fenced", 90*time.Second, func() bool {
		s, err := service(ctx, t, victim)
		return err == nil && s.ForcedDown && s.Status == "disabled" && strings.HasPrefix(s.DisabledReason, "fenced: ")
	})
	tl.seen("forced_down")
	for _, h := range computes[1:] {
		if s, err := service(ctx, t, h); err != nil || !healthy(s) {
			t.Fatalf("%s touched while only %s is frozen: %s, %v", h, victim, describe(s), err)
		}
	}

	// (5) approval
	if in.mode == "approve" {
		f.waitState(victim, 3*time.Minute, "awaiting_approval")
		if p, err := bmc.power(victim); err != nil || p != "On" {
			t.Fatalf("power %s (%v) before the approval: nothing irreversible may happen yet", p, err)
		}
		if r := bmc.resets(victim, mark); len(r) != 0 {
			t.Fatalf("BMC resets before the approval: %v", r)
		}
		if out, err := f.cli("approve", victim, "--reason", "production test: frozen hypervisor"); err != nil {
			t.Fatal(err)
		} else {
			t.Logf("fenced approve %s: %s", victim, strings.TrimSpace(out))
		}
	}

	// the kill: the leader between the power-off intent and its outcome
	var intent lease.Intent // the power-off intent the killed leader left
	if in.killLeader {
		var old string
		// the intent is written and the BMC took the reset; the outcome waits
		// for the power to read Off (bmcPowerDelay)
		waitFor(t, "a power-off intent for "+victim+" without outcome, the reset accepted", 4*time.Minute, func() bool {
			if powerOffs(bmc.resets(victim, mark)) == 0 {
				return false
			}
			p, err := f.pending()
			if err != nil {
				return false
			}
			for _, i := range p {
				if i.Host == victim && strings.Contains(i.Action, "power") {
					intent, old = i, f.leader()
					return old != ""
				}
			}
			return false
		})
		f.kill(old)
		t.Logf("killed leader %s (SIGKILL) %.1fs after the freeze: intent %s %s %s pending, BMC resets %v, power %s",
			old, time.Since(t0).Seconds(), intent.ID, intent.Action, intent.Host, bmc.resets(victim, mark), must(bmc.power(victim)))
		nl := f.waitLeader(60*time.Second, old)
		t.Logf("%s leads after %.1fs", nl, time.Since(t0).Seconds())
	}

	// (6) the BMC reads Off; the hook killed the compute
	waitPower(t, victim, "Off", 4*time.Minute)
	tl.seen("power_off")
	waitFor(t, "the power hook to kill "+victim, 30*time.Second, func() bool { return procsAre(victim, "dead") })

	// (7) every server of cn1 ACTIVE elsewhere
	waitFor(t, "the servers of "+victim+" ACTIVE on other computes", 4*time.Minute, func() bool { return evacuated(ctx, t, victims) })
	tl.seen("evacuated")

	// (8) power back on: the hook starts libvirtd and nova-compute
	waitPower(t, victim, "On", 4*time.Minute)
	waitFor(t, "the power hook to start "+victim, 60*time.Second, func() bool { return procsAre(victim, "running") })

	// (9) restored, then normal after the hold; cn1 back in service in Nova
	f.waitState(victim, 4*time.Minute, "restored", "normal")
	tl.seen("restored")
	f.waitState(victim, 2*time.Minute, "normal")
	tl.seen("normal")
	waitFor(t, victim+" enabled, not forced down, up", 90*time.Second, func() bool {
		s, err := service(ctx, t, victim)
		return err == nil && healthy(s)
	})
	tl.stop()
	tl.report(fmt.Sprintf("%s mode%s", in.mode, map[bool]string{true: ", leader killed mid power-off", false: ""}[in.killLeader]))

	// the BMC: one power-off of the victim, nothing on the others
	resets := bmc.resets(victim, mark)
	if n := powerOffs(resets); n != 1 {
		t.Errorf("%d power-off resets of %s, want exactly 1: %v", n, victim, resets)
	}
	for _, h := range computes[1:] {
		if r := bmc.resets(h, mark); len(r) != 0 {
			t.Errorf("BMC resets of %s, which was healthy: %v", h, r)
		}
	}

	// (10) the audit
	if out, err := f.cliAt(f.anyUp(), viewerToken, "audit", "verify"); err != nil {
		t.Fatalf("audit verify: %v", err)
	} else if !strings.Contains(out, "signed (keys") || strings.Contains(out, "not checked") {
		t.Fatalf("audit verify did not check signatures: %s", out)
	} else {
		t.Logf("fenced audit verify: %s", strings.TrimSpace(out))
	}
	recs, err := f.audit()
	if err != nil {
		t.Fatal(err)
	}
	// every action fenced took on the victim, with its request id and an "ok"
	// outcome: in Nova (disable, force_down, evacuate of each server, and the
	// unfence: force_down_off, enable) and at the BMC (power_off, power_on)
	done := map[string]int{}
	evacuatedVMs := map[string]bool{}
	var gate, approved, reconciled bool
	for _, r := range recs {
		if r.HostID != victim {
			continue
		}
		a := strings.ToLower(r.Action)
		if (r.Component == "migration-gate" || strings.Contains(a, "gate")) && strings.Contains(strings.ToLower(r.Outcome+" "+r.Detail), "closed") {
			gate = true
		}
		if r.RequestID == intent.ID && r.Outcome == "reconciled_done" {
			reconciled = true
		}
		if strings.Contains(a, "approve") && r.Operator == operatorName && r.Outcome == "ok" {
			approved = true
		}
		// a new leader that finds an intent done at the BMC records reconciled_done
		if r.RequestID != "" && (r.Outcome == "ok" || r.Outcome == "reconciled_done") {
			done[r.Action]++
			if r.Action == "evacuate" {
				evacuatedVMs[r.VMID] = true
			}
		}
	}
	var missing []string
	if !gate {
		missing = append(missing, "(4) the live-migration gate closed for "+victim)
	}
	if in.killLeader && !reconciled {
		missing = append(missing, "the killed leader's intent "+intent.ID+" reconciled as done by the new leader")
	}
	if in.mode == "approve" && !approved {
		missing = append(missing, "the approval by "+operatorName)
	}
	for _, a := range []string{"disable", "force_down", "power_off", "power_on", "force_down_off", "enable"} {
		if done[a] == 0 {
			missing = append(missing, a+" with a request id and outcome ok")
		}
	}
	for _, id := range victims {
		if !evacuatedVMs[id] {
			missing = append(missing, "the evacuation of "+id)
		}
	}
	if len(missing) > 0 {
		t.Errorf("the audit lacks %s:\n%s", strings.Join(missing, "; "), dumpAudit(t, recs))
	}
	if n := f.hooks.about(victim); n == 0 {
		t.Errorf("no webhook about %s", victim)
	} else if link := `"url":"` + consoleURL + `/hosts/` + victim + `"`; f.hooks.count(link) != n {
		t.Errorf("%d of %d webhooks about %s link its incident view (%s)", f.hooks.count(link), n, victim, link)
	}
	if col != nil {
		checkTrace(t, col, f, recs, victims)
	}
}

func must(s string, err error) string {
	if err != nil {
		return err.Error()
	}
	return s
}

// evacuated: every server ACTIVE, settled, on another host than the victim.
func evacuated(ctx context.Context, t *testing.T, ids []string) bool {
	for _, id := range ids {
		s, err := server(ctx, t, id)
		if err != nil || !settled(s) || s.Host == victim || s.Host == "" {
			return false
		}
	}
	return true
}

// timeline watches an incident from the freeze and keeps when each
// milestone was first seen.
type timeline struct {
	tb     testing.TB
	t0     time.Time
	mu     sync.Mutex
	at     map[string]time.Duration
	cancel context.CancelFunc
	done   chan struct{}
}

func watch(t *testing.T, t0 time.Time, f *fleet, victims []string) *timeline {
	ctx, cancel := context.WithCancel(context.Background())
	tl := &timeline{tb: t, t0: t0, at: map[string]time.Duration{}, cancel: cancel, done: make(chan struct{})}
	seen := tl.seen
	go func() {
		defer close(tl.done)
		for ctx.Err() == nil {
			if s, err := service(ctx, t, victim); err == nil {
				if s.State == "down" {
					seen("nova_down")
				}
				if s.ForcedDown {
					seen("forced_down")
				}
			}
			if p, err := bmc.power(victim); err == nil && p == "Off" {
				seen("power_off")
			}
			if evacuated(ctx, t, victims) {
				seen("evacuated")
			}
			if h, err := f.state(victim); err == nil && (h.State != "normal" || tl.has("restored")) {
				seen(h.State) // normal counts once the host was restored
			}
			select {
			case <-ctx.Done():
			case <-time.After(500 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(tl.stop)
	return tl
}

// seen keeps the first time a milestone was seen.
func (tl *timeline) seen(name string) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if _, ok := tl.at[name]; !ok {
		tl.at[name] = time.Since(tl.t0)
	}
}

func (tl *timeline) has(name string) bool {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	_, ok := tl.at[name]
	return ok
}

func (tl *timeline) stop() {
	tl.cancel()
	<-tl.done
}

func (tl *timeline) report(label string) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	get := func(k string) string {
		if d, ok := tl.at[k]; ok {
			return fmt.Sprintf("%.1fs", d.Seconds())
		}
		return "-"
	}
	line := fmt.Sprintf("incident (%s), from the freeze: Nova down %s, forced_down %s, power off verified %s, servers ACTIVE elsewhere %s, restored %s, normal %s",
		label, get("nova_down"), get("forced_down"), get("power_off"), get("evacuated"), get("restored"), get("normal"))
	fmt.Println("integration/production: " + line)
	if tb := tl.tb; tb != nil {
		tb.Log(line)
	}
}

// A healthy but noisy compute: cn2's libvirtd throttled to 10 % of a CPU
// (libvirt answers in tens of milliseconds instead of one or two) for longer
// than the dwell and the signal windows. fenced, in auto mode, must never
// disable it, force it down or power it off. Then, still throttled, its
// libvirtd stops for 2 s, less than the warn dwell: fenced may freeze
// scheduling for a while (warn: disabled), but must never go further (no
// force-down, no power action) and must put it back in service by itself;
// how long it stays disabled is printed.
func TestNoisyComputeIsNeverFenced(t *testing.T) {
	const noisy = "cn2"
	w := newWorld(t)
	f := newFleet(t, "auto", "r1", "r2")
	w.bootOn(noisy, 1)
	f.start("r1")
	f.start("r2")
	f.waitLeader(60*time.Second, "")
	for _, h := range computes {
		f.waitState(h, 2*time.Minute, "normal")
	}
	mark := bmc.mark()
	ps, err := st.Status(noisy)
	if err != nil {
		t.Fatal(err)
	}
	lv := ps["libvirtd"].PID
	if harness.CgroupV1() == "" {
		t.Fatal("no cgroup v1 cpu controller: cannot throttle libvirtd")
	}
	t.Cleanup(harness.CPUQuota(t, lv, 10000, 100000))
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	states := map[string]bool{}
	// observe: Nova's service, the BMC, fenced's state; fail on anything
	// irreversible, and on a disable unless allowed
	observe := func(allowDisable bool) (disabled bool) {
		s, err := service(ctx, t, noisy)
		if err != nil {
			t.Fatal(err)
		}
		if s.ForcedDown || (s.Status != "enabled" && !allowDisable) {
			t.Fatalf("noisy but healthy %s fenced in Nova: %s (fenced states seen %v)", noisy, describe(s), keys(states))
		}
		if p, err := bmc.power(noisy); err != nil || p != "On" {
			t.Fatalf("noisy %s power %s, %v", noisy, p, err)
		}
		if h, err := f.state(noisy); err == nil {
			states[h.State] = true
			switch h.State {
			case "critical", "awaiting_approval", "fenced", "rebooting", "restored", "needs_human":
				t.Fatalf("the noisy %s went %s: %s", noisy, h.State, h.Reason)
			}
		}
		return s.Status != "enabled"
	}
	for end := time.Now().Add(45 * time.Second); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
		observe(false)
	}
	if states["warn"] {
		t.Fatalf("the throttled %s went warn (states %v)", noisy, keys(states))
	}
	t.Logf("throttled %s stayed normal for 45 s", noisy)

	// a 2 s stall of libvirtd
	_ = syscall.Kill(lv, syscall.SIGSTOP)
	time.Sleep(2 * time.Second)
	_ = syscall.Kill(lv, syscall.SIGCONT)
	stalled := time.Now()
	var firstDisabled, lastDisabled time.Duration
	quiet := time.Time{}
	for {
		if observe(true) {
			if firstDisabled == 0 {
				firstDisabled = time.Since(stalled)
			}
			lastDisabled = time.Since(stalled)
			quiet = time.Time{}
		} else if quiet.IsZero() {
			quiet = time.Now()
		}
		h, _ := f.state(noisy)
		// back in service and calm for 30 s (longer than the signal window)
		if !quiet.IsZero() && time.Since(quiet) > 30*time.Second && h.State == "normal" {
			break
		}
		if time.Since(stalled) > 150*time.Second {
			t.Fatalf("%s not back in service and normal 150 s after a 2 s libvirtd stall (state %+v, states seen %v)", noisy, h, keys(states))
		}
		time.Sleep(500 * time.Millisecond)
	}
	if r := bmc.resets(noisy, mark); len(r) != 0 {
		t.Fatalf("BMC resets of the noisy %s: %v", noisy, r)
	}
	line := fmt.Sprintf("noisy %s: 45 s at 10%% CPU for libvirtd: normal; a 2 s libvirtd stall: states %v", noisy, keys(states))
	if firstDisabled > 0 {
		line += fmt.Sprintf(", scheduling frozen (disabled) from %.1fs to %.1fs after the stall", firstDisabled.Seconds(), lastDisabled.Seconds())
	} else {
		line += ", never disabled"
	}
	t.Log(line)
	fmt.Println("integration/production: " + line)
}

// Fleet-wide pause survives a restart of every replica: it lives in etcd,
// not in a replica's memory.
func TestPauseSurvivesRestartOfBothReplicas(t *testing.T) {
	newWorld(t)
	f := newFleet(t, "approve", "r1", "r2")
	f.start("r1")
	f.start("r2")
	f.waitLeader(60*time.Second, "")
	if _, err := f.cli("pause", "--reason", "production test: maintenance window"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the leader to report paused", 30*time.Second, func() bool {
		rep, err := f.hosts("")
		return err == nil && rep.Paused
	})
	f.kill("r1")
	f.kill("r2")
	f.start("r1")
	f.start("r2")
	f.waitLeader(60*time.Second, "")
	// both replicas, once the leader has settled, answer paused
	for _, id := range []string{"r1", "r2"} {
		waitFor(t, id+" to report paused after the restart", 60*time.Second, func() bool {
			rep, err := f.hosts(id)
			return err == nil && rep.Paused
		})
	}
	recs, err := f.audit()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range recs {
		found = found || (strings.Contains(strings.ToLower(r.Action), "pause") && r.Operator == operatorName)
	}
	if !found {
		t.Fatalf("no pause by %s in the audit:\n%s", operatorName, dumpAudit(t, recs))
	}
	if _, err := f.cli("resume", "--reason", "production test: done"); err != nil {
		t.Fatal(err)
	}
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
