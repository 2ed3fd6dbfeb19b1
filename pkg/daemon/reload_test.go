package daemon_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fencedhq/fenced/pkg/audit"
	"github.com/fencedhq/fenced/pkg/clock"
	"github.com/fencedhq/fenced/pkg/daemon"
	"github.com/fencedhq/fenced/pkg/lab"
	"github.com/fencedhq/fenced/pkg/notify"
	"github.com/fencedhq/fenced/pkg/playbook"
	"github.com/fencedhq/fenced/pkg/policy"
	"github.com/fencedhq/fenced/policies"
)

// variant is the default policy with replacements made to its text: a
// policy with a version of its own.
func variant(t *testing.T, pairs ...string) *policy.Policy {
	t.Helper()
	text := string(policies.Default)
	for i := 0; i+1 < len(pairs); i += 2 {
		if !strings.Contains(text, pairs[i]) {
			t.Fatalf("default policy has no %q", pairs[i])
		}
		text = strings.Replace(text, pairs[i], pairs[i+1], 1)
	}
	p, err := policy.Parse("variant.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// hook is a webhook receiver that keeps the hosts it was told about.
type hook struct {
	mu    sync.Mutex
	hosts []string
	url   string
}

func newHook(t *testing.T) *hook {
	h := &hook{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Host string `json:"host"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		h.mu.Lock()
		h.hosts = append(h.hosts, body.Host)
		h.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	h.url = srv.URL
	return h
}

func (h *hook) got() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.hosts...)
}

func reloads(t *testing.T, d *daemon.Daemon) []audit.Record {
	t.Helper()
	recs, err := d.Audit().Records(context.Background(), func(r audit.Record) bool { return r.Component == "config" && r.Action == "reload" })
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// TestReloadSwapsPolicyAndWebhooks: a leader in approve mode is reloaded
// into observe mode with a webhook it did not have. From then on the
// snapshot, the decisions' audit records and the playbook follow the new
// policy (the starving host goes critical and is never fenced or offered
// for approval), the new webhook receives the pages, and the reload itself
// is audited with the new version and the settings that need a restart.
func TestReloadSwapsPolicyAndWebhooks(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd")
	}
	endpoints := startEtcd(t)
	clk := clock.NewScaled(60)
	world := lab.NewWorld(clk.Now, 30*time.Second, policy.Default().SignalsConfig())
	gen := lab.NewGenerator(8, clk.Now(), 2*time.Minute, world)
	d := replica(t, endpoints, "a", world, clk, "approve", gen)
	ctx, cancel := context.WithCancel(context.Background())
	// before Run (as a follower) the reload swaps the idle fleet at once
	first := variant(t, "recover_after: 5m", "recover_after: 7m")
	if _, err := d.Reload(ctx, daemon.Reload{Policy: first, Source: "first.yaml"}); err != nil || d.Snapshot().PolicyVersion != first.Version() {
		t.Fatalf("reload before Run: %v, version %s", err, d.Snapshot().PolicyVersion)
	}
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	waitUntil(t, "a leads", 10*time.Second, func() bool { return d.Snapshot().Leader })
	old := d.Snapshot().PolicyVersion
	if old != first.Version() {
		t.Fatalf("leading with %s, want the reloaded %s", old, first.Version())
	}

	if _, err := d.Reload(ctx, daemon.Reload{Source: "x.yaml"}); !errors.Is(err, daemon.ErrReloadRefused) {
		t.Fatalf("a reload without a policy: %v", err)
	}
	wh := newHook(t)
	p := variant(t, "mode: approve", "mode: observe")
	res, err := d.Reload(ctx, daemon.Reload{Policy: p, Source: "fenced.yaml", Kept: []string{"etcd", "api"},
		Webhooks: []notify.Endpoint{{Name: "oncall", URL: wh.url, Format: notify.Generic}}})
	if err != nil {
		t.Fatal(err)
	}
	if res.OldVersion != old || res.NewVersion != p.Version() || res.NewVersion == old || res.NewMode != playbook.ModeObserve {
		t.Fatalf("%+v (old %s)", res, old)
	}
	if s := d.Snapshot(); s.PolicyVersion != p.Version() || s.Mode != playbook.ModeObserve {
		t.Fatalf("snapshot after reload: %s %s", s.PolicyVersion, s.Mode)
	}
	recs := reloads(t, d)
	if len(recs) != 2 || recs[1].Outcome != audit.OutcomeOK || recs[1].PolicyVersion != p.Version() ||
		!strings.Contains(recs[1].Detail, old+" → "+p.Version()) || !strings.Contains(recs[1].Detail, "need a restart, running ones kept: api, etcd") {
		t.Fatalf("reload records: %+v", recs)
	}

	victim := gen.Victim
	advance(t, 15*time.Minute, func() bool { return state(d, victim) == playbook.Critical })
	// observe: critical stays critical; in approve it would wait for approval
	ticks := d.Snapshot().Ticks
	advance(t, 3*time.Minute, func() bool { return d.Snapshot().Ticks >= ticks+30 })
	if s := state(d, victim); s != playbook.Critical || world.Count().PowerCycles != 0 {
		t.Fatalf("%s is %s after the reload to observe, %d power cycles", victim, s, world.Count().PowerCycles)
	}
	waitUntil(t, "the new webhook pages "+victim, 20*time.Second, func() bool {
		return strings.Contains(strings.Join(wh.got(), ","), victim)
	})
	trs, err := d.Audit().Records(ctx, func(r audit.Record) bool { return r.HostID == victim && strings.HasPrefix(r.Action, "transition") })
	if err != nil || len(trs) < 2 {
		t.Fatalf("transitions %v %v", trs, err)
	}
	for _, r := range trs {
		if r.PolicyVersion != p.Version() {
			t.Errorf("%s recorded under %s, want %s", r.Action, r.PolicyVersion, p.Version())
		}
	}
}

// TestReloadRefusedKeepsEverything: after_fence cannot change while a host
// is rebooting. The refused reload changes nothing — not the policy, not
// the webhooks — and is audited; a reload that keeps after_fence goes
// through while the host is rebooting.
func TestReloadRefusedKeepsEverything(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd")
	}
	endpoints := startEtcd(t)
	clk := clock.NewScaled(60)
	world := lab.NewWorld(clk.Now, 30*time.Second, policy.Default().SignalsConfig())
	gen := lab.NewGenerator(8, clk.Now(), 0, world)
	be := world.Backends(gen)
	be.Power = slowPower{be.Power, time.Hour} // the recovery's power-off never ends
	d := replicaOn(t, endpoints, "a", be, clk, "auto")
	world.SetViews(d)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	victim := gen.Victim
	advance(t, 15*time.Minute, func() bool { return state(d, victim) == playbook.Rebooting })
	before := d.Snapshot()

	wh := newHook(t)
	p := variant(t, "mode: approve", "mode: auto", "after_fence: evacuate", "after_fence: reboot_in_place")
	_, err := d.Reload(ctx, daemon.Reload{Policy: p, Source: "fenced.yaml", Webhooks: []notify.Endpoint{{Name: "new", URL: wh.url, Format: notify.Generic}}})
	if !errors.Is(err, daemon.ErrReloadRefused) || !strings.Contains(err.Error(), victim) || !strings.Contains(err.Error(), "after_fence") {
		t.Fatalf("after_fence change while %s is rebooting: %v", victim, err)
	}
	if s := d.Snapshot(); s.PolicyVersion != before.PolicyVersion || s.Mode != before.Mode {
		t.Fatalf("a refused reload changed the snapshot: %s %s", s.PolicyVersion, s.Mode)
	}
	// the webhook of the refused reload is not in force: a page for another
	// host does not reach it
	d.Page(ctx, playbook.Notification{Host: "lab-001", State: playbook.Warn, Reason: "test"})
	time.Sleep(500 * time.Millisecond)
	if got := wh.got(); len(got) != 0 {
		t.Fatalf("the refused reload's webhook received %v", got)
	}
	recs := reloads(t, d)
	if len(recs) != 1 || recs[0].Outcome != "refused" || recs[0].PolicyVersion != before.PolicyVersion || !strings.Contains(recs[0].Detail, "after_fence") {
		t.Fatalf("reload records: %+v", recs)
	}

	// the same change without after_fence goes through, host still rebooting
	p2 := variant(t, "mode: approve", "mode: auto", "recover_after: 5m", "recover_after: 6m")
	if _, err := d.Reload(ctx, daemon.Reload{Policy: p2, Source: "fenced.yaml"}); err != nil {
		t.Fatal(err)
	}
	if s := d.Snapshot(); s.PolicyVersion != p2.Version() || state(d, victim) != playbook.Rebooting {
		t.Fatalf("after the second reload: %s, %s is %s", s.PolicyVersion, victim, state(d, victim))
	}
}
