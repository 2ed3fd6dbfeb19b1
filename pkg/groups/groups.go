// Package groups says which group each host is in: the fleet as operators
// organise it (docs/groups.md). A group is defined by a Nova host
// aggregate, an availability zone, or an explicit list of host names and
// globs; hosts no group claims are in the implicit default group
// (playbook.DefaultGroup). Membership from Nova is read by a Refresher,
// periodically; a failed refresh keeps the last membership.
//
// A host is in at most one group. Explicit lists that overlap are refused
// when the config is loaded (and when a replica starts, against the hosts
// it knows); for a host that a Nova-derived group claims as well, the
// first group in file order wins and the conflict is logged.
package groups

import (
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/fencedhq/fenced/pkg/playbook"
)

// Def is one group's definition. Exactly one of Aggregate,
// AvailabilityZone and Hosts defines its members.
type Def struct {
	Name             string
	Aggregate        string   // a Nova host aggregate's name
	AvailabilityZone string   // a Nova availability zone
	Hosts            []string // host names and globs (path.Match syntax)
	Guard            playbook.GroupGuard
	// Reserved are the group's reserved hosts (docs/groups.md, Reserved
	// hosts), by name, in file order: spares kept disabled in Nova until a
	// fenced host of the group needs one. A reserved host is in the group
	// that reserves it, whatever the definition says.
	Reserved []string
}

// Source says where the definition's members come from, for people.
func (d Def) Source() string {
	switch {
	case d.Aggregate != "":
		return "aggregate " + d.Aggregate
	case d.AvailabilityZone != "":
		return "availability_zone " + d.AvailabilityZone
	}
	return "hosts " + strings.Join(d.Hosts, ",")
}

// FromNova reports whether the members come from Nova.
func (d Def) FromNova() bool { return d.Aggregate != "" || d.AvailabilityZone != "" }

// MatchesExplicit reports whether host is one of the explicit names or globs.
func (d Def) MatchesExplicit(host string) bool { return d.matchesExplicit(host) }

func (d Def) matchesExplicit(host string) bool {
	for _, p := range d.Hosts {
		if ok, _ := path.Match(p, host); ok {
			return true
		}
	}
	return false
}

// CheckGlob checks one entry of an explicit list.
func CheckGlob(p string) error {
	if strings.TrimSpace(p) == "" {
		return fmt.Errorf("an empty host name")
	}
	if _, err := path.Match(p, ""); err != nil {
		return fmt.Errorf("%q is not a valid glob: %w", p, err)
	}
	if strings.Contains(p, "/") {
		return fmt.Errorf("%q: a host name or glob has no '/'", p)
	}
	return nil
}

func literal(p string) bool { return !strings.ContainsAny(p, `*?[\`) }

// ExplicitOverlap finds an overlap between explicit lists that can be seen
// without knowing the hosts: the same entry in two groups, or a plain name
// in one group that another group's glob matches. It returns the groups
// (by index, a < b) and the entry, or ok false.
func ExplicitOverlap(defs []Def) (a, b int, entry string, ok bool) {
	for i := range defs {
		for j := i + 1; j < len(defs); j++ {
			for _, p := range defs[i].Hosts {
				for _, q := range defs[j].Hosts {
					switch {
					case p == q:
						return i, j, p, true
					case literal(p) && defs[j].matchesExplicit(p):
						return i, j, p, true
					case literal(q) && defs[i].matchesExplicit(q):
						return i, j, q, true
					}
				}
			}
		}
	}
	return 0, 0, "", false
}

// Nova is what Nova said of the hosts at the last refresh.
type Nova struct {
	Aggregates map[string][]string // aggregate name → its hosts
	Zones      map[string]string   // host → availability zone
}

// Membership is the group of every host, from the definitions and what
// Nova said. Immutable: a refresh makes a new one.
type Membership struct {
	defs  []Def
	aggs  map[string]map[string]bool
	zones map[string]string
	// the explicit lists, indexed: each def's plain names and its globs
	// (a list of thousands of names costs a map lookup, not a scan), and
	// the group that reserves each reserved host
	names      []map[string]bool
	globs      [][]string
	reservedBy map[string]string
	// Serial grows with every refresh that changed something: the fleet
	// re-reads every host's group when it changes.
	Serial uint64
}

// New builds a membership. nova may be empty (no Nova-derived group, or
// not read yet).
func New(defs []Def, nova Nova, serial uint64) *Membership {
	m := &Membership{defs: defs, aggs: map[string]map[string]bool{}, zones: nova.Zones, Serial: serial,
		names: make([]map[string]bool, len(defs)), globs: make([][]string, len(defs)), reservedBy: map[string]string{}}
	for i, d := range defs {
		m.names[i] = map[string]bool{}
		for _, p := range d.Hosts {
			if literal(p) {
				m.names[i][p] = true
			} else {
				m.globs[i] = append(m.globs[i], p)
			}
		}
		for _, r := range d.Reserved {
			if _, dup := m.reservedBy[r]; !dup {
				m.reservedBy[r] = d.Name // the first group in file order, as ReservedBy
			}
		}
	}
	for name, hosts := range nova.Aggregates {
		set := map[string]bool{}
		for _, h := range hosts {
			set[h] = true
		}
		m.aggs[name] = set
	}
	return m
}

// Defs are the definitions, in file order.
func (m *Membership) Defs() []Def {
	if m == nil {
		return nil
	}
	return m.defs
}

// Guard is a group's guard (zero for the default group or an unknown name).
func (m *Membership) Guard(group string) playbook.GroupGuard {
	for _, d := range m.Defs() {
		if d.Name == group {
			return d.Guard
		}
	}
	return playbook.GroupGuard{}
}

// Known reports whether group is a configured group or the default group.
func (m *Membership) Known(group string) bool {
	if group == playbook.DefaultGroup {
		return true
	}
	for _, d := range m.Defs() {
		if d.Name == group {
			return true
		}
	}
	return false
}

// contains reports whether defs[i] claims host.
func (m *Membership) contains(i int, host string) bool {
	d := m.defs[i]
	switch {
	case d.Aggregate != "":
		return m.aggs[d.Aggregate][host]
	case d.AvailabilityZone != "":
		return m.zones[host] == d.AvailabilityZone
	}
	if m.names[i][host] {
		return true
	}
	for _, p := range m.globs[i] {
		if ok, _ := path.Match(p, host); ok {
			return true
		}
	}
	return false
}

// Of is the group of host: the group that reserves it, else the first
// group in file order that claims it, else the default group.
func (m *Membership) Of(host string) string {
	if g, ok := m.ReservedBy(host); ok {
		return g
	}
	for i, d := range m.Defs() {
		if m.contains(i, host) {
			return d.Name
		}
	}
	return playbook.DefaultGroup
}

// ReservedBy is the group that reserves host, if one does.
func (m *Membership) ReservedBy(host string) (string, bool) {
	if m == nil {
		return "", false
	}
	g, ok := m.reservedBy[host]
	return g, ok
}

// Conflict is a host more than one group claims.
type Conflict struct {
	Host   string
	Groups []string // in file order; the first wins
}

func (c Conflict) String() string {
	return fmt.Sprintf("%s is in groups %s; %s wins (first in file order)", c.Host, strings.Join(c.Groups, ", "), c.Groups[0])
}

// Conflicts lists the hosts (of hosts, and of every host Nova named) that
// more than one group claims, by host name.
func (m *Membership) Conflicts(hosts []string) []Conflict {
	all := map[string]bool{}
	for _, h := range hosts {
		all[h] = true
	}
	for _, set := range m.aggs {
		for h := range set {
			all[h] = true
		}
	}
	for h := range m.zones {
		all[h] = true
	}
	names := make([]string, 0, len(all))
	for h := range all {
		names = append(names, h)
	}
	sort.Strings(names)
	var out []Conflict
	for _, h := range names {
		var in []string
		for i, d := range m.Defs() {
			if m.contains(i, h) {
				in = append(in, d.Name)
			}
		}
		if len(in) > 1 {
			out = append(out, Conflict{Host: h, Groups: in})
		}
	}
	return out
}

// ExplicitConflicts are the conflicts between explicit lists alone among
// hosts: two globs that both match a known host. A replica refuses to
// start with one (as the config check refuses the overlaps it can see).
func ExplicitConflicts(defs []Def, hosts []string) []Conflict {
	var out []Conflict
	for _, h := range hosts {
		var in []string
		for _, d := range defs {
			if !d.FromNova() && d.matchesExplicit(h) {
				in = append(in, d.Name)
			}
		}
		if len(in) > 1 {
			out = append(out, Conflict{Host: h, Groups: in})
		}
	}
	return out
}
