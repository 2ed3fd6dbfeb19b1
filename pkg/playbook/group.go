package playbook

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// DefaultGroup is the implicit group of every host no configured group
// claims. It has no guard of its own: its hosts are guarded by the
// fleet-wide storm guard alone, as every host was before groups existed.
const DefaultGroup = "default"

// MinHealthy is a group's min_healthy: a count of hosts, or a percentage
// of the group's hosts (rounded up). The zero value is unset.
type MinHealthy struct {
	Count   int
	Percent float64 // > 0: a percentage, Count unused
}

// ParseMinHealthy reads "3" or "60%" ("" is unset).
func ParseMinHealthy(s string) (MinHealthy, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return MinHealthy{}, nil
	}
	if p, ok := strings.CutSuffix(s, "%"); ok {
		v, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || math.IsNaN(v) || v <= 0 || v > 100 {
			return MinHealthy{}, fmt.Errorf("min_healthy %q: want a percentage above 0%% and at most 100%%, e.g. \"60%%\"", s)
		}
		return MinHealthy{Percent: v}, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return MinHealthy{}, fmt.Errorf("min_healthy %q: want a count of hosts (e.g. 3) or a percentage (e.g. \"60%%\")", s)
	}
	return MinHealthy{Count: n}, nil
}

// Set reports whether min_healthy was given.
func (m MinHealthy) Set() bool { return m.Count > 0 || m.Percent > 0 }

// Of is how many healthy hosts a group of total hosts must keep.
func (m MinHealthy) Of(total int) int {
	if m.Percent > 0 {
		return int(math.Ceil(m.Percent*float64(total)/100 - 1e-9))
	}
	return m.Count
}

func (m MinHealthy) String() string {
	if m.Percent > 0 {
		return strconv.FormatFloat(m.Percent, 'f', -1, 64) + "%"
	}
	return strconv.Itoa(m.Count)
}

// GroupGuard is a group's own limits on automatic fencing, checked on top
// of the fleet-wide storm guard. The zero value adds nothing.
//
// Per-group policy overrides (thresholds, mode, after_fence, on_timeout)
// are meant to sit beside it in the group's definition; the guard is only
// the part the storm guard needs.
type GroupGuard struct {
	// MinHealthy: a fence is allowed only while the group keeps at least
	// this many healthy hosts (state normal, verdict normal) besides the
	// host fenced: the ones that take its load.
	MinHealthy MinHealthy
	// MaxConcurrent: at most this many of the group's hosts fenced or
	// rebooting at once (0: only the fleet-wide limit).
	MaxConcurrent int
	// Saturation: the group is saturated when more than the policy's
	// storm_guard.saturation_fraction of its hosts are at warn or worse:
	// nowhere to evacuate to within it. Measured for every named group.
}

// Group is the situation in a host's group, for the per-group guard. The
// zero value (or DefaultGroup) is no group: nothing beyond the fleet.
type Group struct {
	Name          string     `json:"name"`
	Total         int        `json:"total"`
	Healthy       int        `json:"healthy"`          // state normal and verdict normal
	AtWarnOrWorse int        `json:"at_warn_or_worse"` // hosts in warn or a more severe state
	Fencing       int        `json:"fencing"`          // fenced or rebooting now
	Paused        bool       `json:"paused,omitempty"` // an operator paused fencing in this group
	Guard         GroupGuard `json:"-"`
}

// guarded reports whether the group has a guard of its own.
func (g Group) guarded() bool { return g.Name != "" && g.Name != DefaultGroup }

// Hold returns why the group's guard holds an automatic fence of one of
// its hosts, or "". sat is the policy's storm_guard.saturation_fraction.
func (g Group) Hold(sat float64) string { return groupGuard(sat, g) }

// groupGuard returns why the group holds automatic fencing of one of its
// hosts, or "". sat is the policy's saturation fraction.
func groupGuard(sat float64, g Group) string {
	if !g.guarded() || g.Total <= 0 {
		return ""
	}
	if frac := float64(g.AtWarnOrWorse) / float64(g.Total); frac > sat {
		return fmt.Sprintf("group %s saturated: %d of %d hosts at warn or worse (%.0f%% > %.0f%%); no evacuation target in the group, automatic fencing stopped there",
			g.Name, g.AtWarnOrWorse, g.Total, 100*frac, 100*sat)
	}
	if g.Guard.MaxConcurrent > 0 && g.Fencing >= g.Guard.MaxConcurrent {
		return fmt.Sprintf("group %s guard: %d hosts already fenced (max_concurrent %d)", g.Name, g.Fencing, g.Guard.MaxConcurrent)
	}
	if m := g.Guard.MinHealthy; m.Set() {
		if need := m.Of(g.Total); g.Healthy < need {
			return fmt.Sprintf("group %s guard: a fence would leave %d of %d hosts healthy; min_healthy %s needs %d",
				g.Name, g.Healthy, g.Total, m, need)
		}
	}
	return ""
}
