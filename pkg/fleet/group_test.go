package fleet_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/fencedhq/fenced/pkg/clock"
	"github.com/fencedhq/fenced/pkg/fleet"
	"github.com/fencedhq/fenced/pkg/groups"
	"github.com/fencedhq/fenced/pkg/lab"
	"github.com/fencedhq/fenced/pkg/playbook"
	"github.com/fencedhq/fenced/pkg/policy"
	"github.com/fencedhq/fenced/pkg/signals"
)

// groupFleet is an auto-mode fleet of two groups: a (hosts a1…aN, with
// guard) and b (b1…bM, no guard), every host calm unless starved. The
// fleet-wide storm guard is wide open (max_concurrent 10, max_fraction 1)
// with the given saturation fraction, so only the group guard holds.
func groupFleet(t *testing.T, na, nb int, guard playbook.GroupGuard, saturation float64) (*fleet.Fleet, *lab.World, *clock.Fake, []string) {
	t.Helper()
	p, err := policy.Default().WithMode("auto")
	if err != nil {
		t.Fatal(err)
	}
	sc, pc := p.SignalsConfig(), p.PlaybookConfig()
	pc.Storm.MaxConcurrent, pc.Storm.MaxFraction, pc.Storm.SaturationFraction = 10, 1, saturation
	pc.AfterFence = playbook.AfterFenceRebootInPlace
	clk := clock.NewFake(t0)
	w := lab.NewWorld(clk.Now, time.Hour, sc)
	a := &playbook.Actor{Nova: w, Gate: w, Power: w, Checker: w, Notify: w, Journal: w, Clock: clk, Log: zerolog.Nop()}
	f, err := fleet.New(sc, pc, a, fleet.Hooks{Control: w.Control})
	if err != nil {
		t.Fatal(err)
	}
	w.SetViews(f)
	m := groups.New([]groups.Def{
		{Name: "a", Hosts: []string{"a*"}, Guard: guard},
		{Name: "b", Hosts: []string{"b*"}},
	}, groups.Nova{}, 1)
	f.SetMembership(func() *groups.Membership { return m })
	var hosts []string
	for i := 1; i <= na; i++ {
		hosts = append(hosts, "a"+string(rune('0'+i)))
	}
	for i := 1; i <= nb; i++ {
		hosts = append(hosts, "b"+string(rune('0'+i)))
	}
	for _, h := range hosts {
		f.Add(h)
		w.SetServers(h, 0)
	}
	return f, w, clk, hosts
}

// tickGroups runs n ticks 10 s apart from t0: starved hosts report
// starvation, every other host calm values.
func tickGroups(t *testing.T, f *fleet.Fleet, clk *clock.Fake, hosts []string, starved map[string]bool, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		now := t0.Add(time.Duration(i) * 10 * time.Second)
		clk.Set(now)
		for _, h := range hosts {
			v := 0.0
			if starved[h] {
				v = 1e4
			}
			for _, s := range signals.All {
				if err := f.Observe(signals.Sample{Host: h, Signal: s, Value: v, At: now}); err != nil {
					t.Fatal(err)
				}
			}
		}
		if _, err := f.Tick(context.Background(), now); err != nil {
			t.Fatal(err)
		}
	}
}

func stateOf(t *testing.T, f *fleet.Fleet, host string) playbook.Host {
	t.Helper()
	v, ok := f.Get(host)
	if !ok {
		t.Fatalf("no host %s", host)
	}
	return v.Host
}

func fencedOrLater(s playbook.State) bool {
	return s == playbook.Fenced || s == playbook.Rebooting || s == playbook.Restored
}

func TestGroupGuard(t *testing.T) {
	minHealthy3 := playbook.GroupGuard{MinHealthy: playbook.MinHealthy{Count: 3}}
	for _, tc := range []struct {
		name       string
		guard      playbook.GroupGuard
		saturation float64
		na         int
		starved    []string
		fenced     []string // in group a
		held       []string // in group a, with the reason
		reason     string
	}{
		{name: "min_healthy met: a fence leaves 3 of 4 healthy", guard: minHealthy3, saturation: 1, na: 4,
			starved: []string{"a1"}, fenced: []string{"a1"}},
		{name: "below min_healthy: no fence in the group", guard: minHealthy3, saturation: 1, na: 4,
			starved: []string{"a1", "a2"}, held: []string{"a1", "a2"}, reason: "min_healthy 3 needs 3"},
		{name: "min_healthy as a percentage", guard: playbook.GroupGuard{MinHealthy: playbook.MinHealthy{Percent: 60}}, saturation: 1, na: 5,
			starved: []string{"a1", "a2", "a3"}, held: []string{"a1", "a2", "a3"}, reason: "min_healthy 60% needs 3"},
		{name: "per-group max_concurrent", guard: playbook.GroupGuard{MaxConcurrent: 1}, saturation: 1, na: 4,
			starved: []string{"a1", "a2", "a3"}, fenced: []string{"a1"}, held: []string{"a2", "a3"}, reason: "max_concurrent 1"},
		{name: "saturated group: 3 of 4 at warn or worse while the fleet is at 4 of 12", saturation: 0.5, na: 4,
			starved: []string{"a1", "a2", "a3"}, held: []string{"a1", "a2", "a3"}, reason: "group a saturated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, w, clk, hosts := groupFleet(t, tc.na, 8, tc.guard, tc.saturation)
			starved := map[string]bool{"b1": true}
			for _, h := range tc.starved {
				starved[h] = true
			}
			// calm ticks first: every host has a verdict
			tickGroups(t, f, clk, hosts, nil, 0, 2)
			// the starvation starts while fencing is paused fleet-wide,
			// so that each group's count is complete before the guard decides
			f.SetPaused(true)
			tickGroups(t, f, clk, hosts, starved, 2, 2)
			f.SetPaused(false)
			tickGroups(t, f, clk, hosts, starved, 4, 3)
			// the other group recovers its starving host whatever group a does
			if s := stateOf(t, f, "b1").State; !fencedOrLater(s) {
				t.Errorf("b1 (group b, no guard) is %s, want fenced or later", s)
			}
			for _, h := range tc.fenced {
				if s := stateOf(t, f, h).State; !fencedOrLater(s) {
					t.Errorf("%s is %s, want fenced or later", h, s)
				}
			}
			for _, h := range tc.held {
				hh := stateOf(t, f, h)
				if hh.State != playbook.Critical || !strings.Contains(hh.Reason, tc.reason) {
					t.Errorf("%s: %s %q, want critical held by %q", h, hh.State, hh.Reason, tc.reason)
				}
			}
			if want := 1 + len(tc.fenced); w.Count().PowerCycles != want {
				t.Errorf("%d power cycles, want %d", w.Count().PowerCycles, want)
			}
			checkGroupCounts(t, f)
		})
	}
}

func TestGroupPause(t *testing.T) {
	f, w, clk, hosts := groupFleet(t, 4, 4, playbook.GroupGuard{}, 1)
	tickGroups(t, f, clk, hosts, nil, 0, 2)
	f.SetGroupPaused("a", true)
	if !f.PausedFor("a1") || f.PausedFor("b1") || f.Paused() {
		t.Fatalf("paused for a1 %v, b1 %v, fleet %v: want only group a", f.PausedFor("a1"), f.PausedFor("b1"), f.Paused())
	}
	tickGroups(t, f, clk, hosts, map[string]bool{"a1": true, "b1": true}, 2, 4)
	if h := stateOf(t, f, "a1"); h.State != playbook.Critical || !strings.Contains(h.Reason, "paused in group a") {
		t.Fatalf("a1: %s %q, want critical, paused in group a", h.State, h.Reason)
	}
	if s := stateOf(t, f, "b1").State; !fencedOrLater(s) {
		t.Fatalf("b1 is %s, want fenced or later", s)
	}
	if w.Count().PowerCycles != 1 {
		t.Fatalf("%d power cycles, want 1 (b1)", w.Count().PowerCycles)
	}
	f.SetGroupPaused("a", false)
	tickGroups(t, f, clk, hosts, map[string]bool{"a1": true, "b1": true}, 6, 2)
	if s := stateOf(t, f, "a1").State; !fencedOrLater(s) {
		t.Fatalf("a1 after resume is %s, want fenced or later", s)
	}
	gs := f.Groups()
	if len(gs) != 3 || gs[0].Name != "a" || gs[2].Name != playbook.DefaultGroup || gs[0].Total != 4 || gs[1].Total != 4 || gs[2].Total != 0 {
		t.Fatalf("groups %+v", gs)
	}
	if v, _ := f.Get("b2"); v.Group != "b" {
		t.Fatalf("b2 in group %q", v.Group)
	}
	checkGroupCounts(t, f)
}

// TestMembershipRefreshMovesHosts: a new membership moves hosts between
// groups at the next tick, counts and all.
func TestMembershipRefreshMovesHosts(t *testing.T) {
	f, _, clk, hosts := groupFleet(t, 2, 2, playbook.GroupGuard{}, 1)
	defs := []groups.Def{{Name: "x", Aggregate: "agg-x"}}
	m := groups.New(defs, groups.Nova{Aggregates: map[string][]string{"agg-x": {"a1", "b2"}}}, 2)
	f.SetMembership(func() *groups.Membership { return m })
	tickGroups(t, f, clk, hosts, nil, 0, 1)
	got := map[string]string{}
	for _, v := range f.Views() {
		got[v.Host.Name] = v.Group
	}
	if got["a1"] != "x" || got["b2"] != "x" || got["a2"] != playbook.DefaultGroup || got["b1"] != playbook.DefaultGroup {
		t.Fatalf("groups %v", got)
	}
	checkGroupCounts(t, f)
	gs := f.Groups()
	if gs[0].Name != "x" || gs[0].Total != 2 || gs[0].Healthy != 2 || gs[1].Total != 2 {
		t.Fatalf("groups %+v", gs)
	}
}

// checkGroupCounts recounts every group from the hosts' views: the counts
// kept in step with each transition and verdict must not drift.
func checkGroupCounts(t *testing.T, f *fleet.Fleet) {
	t.Helper()
	want := map[string]playbook.Group{}
	for _, v := range f.Views() {
		g := want[v.Group]
		g.Total++
		if v.Host.State.Rank() >= 1 {
			g.AtWarnOrWorse++
		}
		if v.Host.State == playbook.Fenced || v.Host.State == playbook.Rebooting {
			g.Fencing++
		}
		if v.Host.State == playbook.Normal && !v.Verdict.Blind && v.Verdict.Level == signals.LevelNormal {
			g.Healthy++
		}
		want[v.Group] = g
	}
	for _, g := range f.Groups() {
		w := want[g.Name]
		if g.Total != w.Total || g.AtWarnOrWorse != w.AtWarnOrWorse || g.Fencing != w.Fencing || g.Healthy != w.Healthy {
			t.Errorf("group %s counts %+v, recounted %+v", g.Name, g.Group, w)
		}
	}
}

// TestSparesOutOfTheGroupCounts: a spare (reserved host not in service) is
// not one of its group's hosts for the guard: it does not make min_healthy,
// nor dilute saturation. Taken into service, it counts like any host.
func TestSparesOutOfTheGroupCounts(t *testing.T) {
	// group a: a1…a4 with min_healthy 3, a5 and a6 reserved
	f, _, clk, hosts := groupFleet(t, 6, 1, playbook.GroupGuard{MinHealthy: playbook.MinHealthy{Count: 3}}, 1)
	r := playbook.NewReserve([]playbook.ReservedGroup{{Group: "a", Hosts: []string{"a5", "a6"}}})
	f.SetReserved(r.Status)
	tickGroups(t, f, clk, hosts, nil, 0, 2)
	ga := groupView(t, f, "a")
	if ga.Total != 4 || ga.Healthy != 4 {
		t.Fatalf("group a %+v, want 4 hosts, 4 healthy (the spares left out)", ga.Group)
	}
	if v, _ := f.Get("a5"); v.Reserved != playbook.ReservedSpare || v.Group != "a" {
		t.Fatalf("a5 view %+v", v)
	}
	// a1 and a2 starve: with the spares counted, 4 of 6 would stay healthy;
	// without, 2 of 4: below min_healthy 3
	starved := map[string]bool{"a1": true, "a2": true}
	f.SetPaused(true)
	tickGroups(t, f, clk, hosts, starved, 2, 2)
	f.SetPaused(false)
	tickGroups(t, f, clk, hosts, starved, 4, 3)
	for _, h := range []string{"a1", "a2"} {
		if st := stateOf(t, f, h); fencedOrLater(st.State) || !strings.Contains(st.Reason, "min_healthy 3 needs 3") {
			t.Fatalf("%s is %s (%s): the spares must not count as healthy", h, st.State, st.Reason)
		}
	}
	// a5 taken into service: it counts from the next tick
	r.Load(map[string]playbook.ReservedHost{"a5": {InService: true, Enabled: true}})
	tickGroups(t, f, clk, hosts, starved, 7, 1)
	if ga := groupView(t, f, "a"); ga.Total != 5 || ga.Healthy != 3 {
		t.Fatalf("group a %+v, want 5 hosts, 3 healthy", ga.Group)
	}
	if v, _ := f.Get("a5"); v.Reserved != playbook.ReservedInService {
		t.Fatalf("a5 view %+v", v)
	}
}

func groupView(t *testing.T, f *fleet.Fleet, name string) fleet.GroupView {
	t.Helper()
	for _, g := range f.Groups() {
		if g.Name == name {
			return g
		}
	}
	t.Fatalf("no group %s", name)
	return fleet.GroupView{}
}
