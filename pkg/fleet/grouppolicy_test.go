package fleet_test

import (
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
	"github.com/fencedhq/fenced/policies"
)

// A group's policy overrides decide its hosts, and only its hosts: the
// same starvation on a host of each group and of the default group ends
// three ways.
func TestGroupPoliciesDecideTheirHostsOnly(t *testing.T) {
	src := strings.Replace(string(policies.Default), "mode: approve", "mode: auto", 1)
	src = strings.Replace(src, "max_concurrent: 2 ", "max_concurrent: 10 ", 1)
	src = strings.Replace(src, "after_fence: evacuate", "after_fence: reboot_in_place", 1) // what the actor did before it read the policy's
	src = strings.Replace(src, "max_fraction: 0.1 ", "max_fraction: 1 ", 1)
	src = strings.Replace(src, "saturation_fraction: 0.3 ", "saturation_fraction: 1 ", 1)
	src += `
groups:
  careful:
    mode: approve
  slow:
    dwell: {critical: 1h}
    signals:
      heartbeat_lag_s: {trigger: false}
`
	p, err := policy.Parse("groups.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if p.PlaybookConfig().Storm.MaxConcurrent != 10 || p.PlaybookConfig().Mode != playbook.ModeAuto {
		t.Fatalf("test policy not as meant: %+v", p.PlaybookConfig().Storm)
	}
	sc, pc := p.SignalsConfig(), p.PlaybookConfig()
	clk := clock.NewFake(t0)
	w := lab.NewWorld(clk.Now, time.Hour, sc)
	a := &playbook.Actor{Nova: w, Gate: w, Power: w, Checker: w, Notify: w, Journal: w, Clock: clk, Log: zerolog.Nop()}
	f, err := fleet.New(sc, pc, a, fleet.Hooks{Control: w.Control})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.SetPolicies(sc, pc, p.FleetGroups()); err != nil {
		t.Fatal(err)
	}
	w.SetViews(f)
	m := groups.New([]groups.Def{
		{Name: "careful", Hosts: []string{"a*"}},
		{Name: "slow", Hosts: []string{"b*"}},
	}, groups.Nova{}, 1)
	f.SetMembership(func() *groups.Membership { return m })
	hosts := []string{"a1", "a2", "b1", "b2", "c1", "c2"}
	for _, h := range hosts {
		f.Add(h)
		w.SetServers(h, 0)
	}
	starved := map[string]bool{"a1": true, "b1": true, "c1": true}
	tickGroups(t, f, clk, hosts, starved, 0, 30) // 5 minutes
	state := func(h string) playbook.State { v, _ := f.Get(h); return v.Host.State }
	if st := state("a1"); st != playbook.AwaitingApproval {
		t.Errorf("a1 (group careful, mode approve) is %s, want awaiting_approval", st)
	}
	if st := state("b1"); st != playbook.Warn {
		t.Errorf("b1 (group slow, dwell.critical 1h, no trigger) is %s, want warn", st)
	}
	if v, _ := f.Get("b1"); len(v.Verdict.Triggers) != 0 || v.Verdict.Level != signals.LevelCritical {
		t.Errorf("b1 weighed with its group's signals: triggers %v, level %s", v.Verdict.Triggers, v.Verdict.Level)
	}
	if v, _ := f.Get("c1"); len(v.Verdict.Triggers) == 0 {
		t.Error("c1 weighed with the file's signals: heartbeat_lag_s triggers")
	}
	if st := state("c1"); st.Rank() < playbook.Fenced.Rank() && st != playbook.Restored {
		t.Errorf("c1 (default group, the file's auto) is %s, want fenced or beyond", st)
	}
	for _, h := range []string{"a2", "b2", "c2"} {
		if st := state(h); st != playbook.Normal {
			t.Errorf("%s is %s, want normal", h, st)
		}
	}
	if got := f.ConfigOf("a1").Mode; got != playbook.ModeApprove {
		t.Errorf("ConfigOf(a1).Mode = %s", got)
	}
	if got := f.ConfigOf("c1").Mode; got != playbook.ModeAuto {
		t.Errorf("ConfigOf(c1).Mode = %s", got)
	}

	// a reload without the overrides: every host decided with the file's
	if err := f.SetPolicies(sc, pc, nil); err != nil {
		t.Fatal(err)
	}
	tickGroups(t, f, clk, hosts, starved, 30, 12)
	if st := state("b1"); st.Rank() < playbook.Critical.Rank() && st != playbook.Restored {
		t.Errorf("b1 after the override was dropped is %s, want critical or beyond", st)
	}
	// an invalid group policy changes nothing
	bad := fleet.GroupPolicy{Signals: sc, Playbook: pc}
	bad.Playbook.DCrit = 0
	if err := f.SetPolicies(sc, pc, map[string]fleet.GroupPolicy{"careful": bad}); err == nil || !strings.Contains(err.Error(), "group careful") {
		t.Fatalf("want the group named in the error, got %v", err)
	}
	if f.ConfigOf("a1").DCrit != pc.DCrit {
		t.Error("a refused SetPolicies changed a host's config")
	}
}
