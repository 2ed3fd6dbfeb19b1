package fleet

import (
	"fmt"
	"sort"

	"github.com/fencedhq/fenced/pkg/groups"
	"github.com/fencedhq/fenced/pkg/playbook"
	"github.com/fencedhq/fenced/pkg/signals"
)

// GroupView is one group as the fleet sees it now.
type GroupView struct {
	playbook.Group
	Source        string `json:"source,omitempty"` // what defines it (empty: the default group)
	MinHealthy    string `json:"min_healthy,omitempty"`
	MaxConcurrent int    `json:"max_concurrent,omitempty"`
	// Hold says why the group's guard would hold an automatic fence in it
	// now (saturated, max_concurrent, min_healthy), or is empty.
	Hold string `json:"hold,omitempty"`
	// Mode is the mode its hosts are decided in; PolicyOverrides says
	// whether the policy file overrides fields for the group.
	Mode            playbook.Mode `json:"mode,omitempty"`
	PolicyOverrides bool          `json:"policy_overrides,omitempty"`
}

// SetMembership gives the fleet its groups: src returns the membership in
// force (a groups.Refresher's Current). Each Tick re-reads it and, when it
// changed, every host's group. The owner's goroutine only; nil puts every
// host in the default group.
func (f *Fleet) SetMembership(src func() *groups.Membership) {
	f.members = src
	f.regroup()
}

// regroup re-reads the membership and moves hosts whose group changed.
func (f *Fleet) regroup() {
	if f.members == nil {
		return
	}
	m := f.members()
	if m == f.memb {
		return
	}
	f.memb = m
	for _, name := range f.order {
		e := f.hosts[name]
		if g := m.Of(name); g != e.group {
			f.tally(e, -1)
			e.group = g
			f.setGroupOf(name, g)
			f.tally(e, +1)
			e.m.SetConfig(f.cfgFor(g)) // from its next step on, the new group's policy
		}
	}
}

func (f *Fleet) setGroupOf(host, group string) {
	f.gmu.Lock()
	f.groupOf[host] = group
	f.gmu.Unlock()
}

// healthy is a host that can take load in its group: in normal, with a
// fresh verdict that is normal.
func healthy(e *entry) bool {
	return e.m.Host().State == playbook.Normal && !e.verdict.Blind && e.verdict.Level == signals.LevelNormal
}

// SetReserved gives the fleet the reserved hosts' status (a
// playbook.Reserve's Status), re-read for each host at every Tick. A spare
// is not counted in its group (neither among its hosts, its healthy hosts
// nor its hosts at warn or worse): it takes no load until it is taken into
// service, and then counts like any host of the group. The owner's
// goroutine only; nil: no reserved hosts.
func (f *Fleet) SetReserved(status func(host string) string) {
	for _, name := range f.order {
		f.tally(f.hosts[name], -1)
	}
	f.reserved = status
	for _, name := range f.order {
		e := f.hosts[name]
		e.reserved = f.reservedOf(name)
		f.tally(e, +1)
	}
}

func (f *Fleet) reservedOf(host string) string {
	if f.reserved == nil {
		return ""
	}
	return f.reserved(host)
}

// tally adds (sign +1) or removes (-1) a host's share of its group's counts.
func (f *Fleet) tally(e *entry, sign int) {
	if e.reserved == playbook.ReservedSpare {
		return // a spare takes no load: not in its group's counts
	}
	g := f.gcounts[e.group]
	if g == nil {
		g = &playbook.Group{Name: e.group}
		f.gcounts[e.group] = g
	}
	st := e.m.Host().State
	g.Total += sign
	if st.Rank() >= 1 {
		g.AtWarnOrWorse += sign
	}
	if st == playbook.Fenced || st == playbook.Rebooting {
		g.Fencing += sign
	}
	if healthy(e) {
		g.Healthy += sign
	}
}

// groupInput is a group's situation for the playbook: its counts, guard
// and pause.
func (f *Fleet) groupInput(name string) playbook.Group {
	var g playbook.Group
	if c := f.gcounts[name]; c != nil {
		g = *c
	}
	g.Name, g.Guard, g.Paused = name, f.memb.Guard(name), f.GroupPaused(name)
	return g
}

// SetGroupPaused pauses (or resumes) fencing in one group: its hosts are
// still classified and on-call notified, nothing is acted on. Safe from
// any goroutine.
func (f *Fleet) SetGroupPaused(group string, p bool) {
	f.gmu.Lock()
	defer f.gmu.Unlock()
	if p {
		f.gpaused[group] = true
	} else {
		delete(f.gpaused, group)
	}
}

// GroupPaused reports a group's pause.
func (f *Fleet) GroupPaused(group string) bool {
	f.gmu.RLock()
	defer f.gmu.RUnlock()
	return f.gpaused[group]
}

// PausedGroups lists the paused groups, by name.
func (f *Fleet) PausedGroups() []string {
	f.gmu.RLock()
	defer f.gmu.RUnlock()
	out := make([]string, 0, len(f.gpaused))
	for g := range f.gpaused {
		out = append(out, g)
	}
	sort.Strings(out)
	return out
}

// PausedFor reports whether fencing of host is paused, fleet-wide or in
// its group (the actor asks before acting). Safe from any goroutine.
func (f *Fleet) PausedFor(host string) bool {
	if f.paused.Load() {
		return true
	}
	f.gmu.RLock()
	defer f.gmu.RUnlock()
	g, ok := f.groupOf[host]
	if !ok {
		g = playbook.DefaultGroup
	}
	return f.gpaused[g]
}

// KnownGroup reports whether name is a configured group or the default one.
func (f *Fleet) KnownGroup(name string) bool { return f.memb.Known(name) }

// Groups is every configured group in file order, then the default group.
func (f *Fleet) Groups() []GroupView {
	var out []GroupView
	add := func(name, source string, guard playbook.GroupGuard) {
		g := f.groupInput(name)
		v := GroupView{Group: g, Source: source, MaxConcurrent: guard.MaxConcurrent}
		if guard.MinHealthy.Set() {
			v.MinHealthy = fmt.Sprintf("%s (%d of %d)", guard.MinHealthy, guard.MinHealthy.Of(g.Total), g.Total)
		}
		pc := f.cfgFor(name)
		_, v.PolicyOverrides = f.gpol[name]
		v.Mode, v.Hold = pc.Mode, g.Hold(pc.Storm.SaturationFraction)
		out = append(out, v)
	}
	for _, d := range f.memb.Defs() {
		add(d.Name, d.Source(), d.Guard)
	}
	add(playbook.DefaultGroup, "", playbook.GroupGuard{})
	return out
}
