package daemon

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fencedhq/fenced/internal/metrics"
	"github.com/fencedhq/fenced/pkg/fleet"
	"github.com/fencedhq/fenced/pkg/lease"
	"github.com/fencedhq/fenced/pkg/playbook"
)

// TestGroupMetrics: each group's pause and whether its guard holds; a
// paused group no longer configured still shows.
func TestGroupMetrics(t *testing.T) {
	d := &Daemon{cfg: Config{Tick: 5 * time.Second}, snap: Snapshot{Leader: true, Transitions: map[string]int64{},
		Groups: []fleet.GroupView{
			{Group: playbook.Group{Name: "rack1"}, Hold: "group rack1 saturated: …"},
			{Group: playbook.Group{Name: playbook.DefaultGroup}},
		},
		PausedGroups: map[string]lease.GroupPause{"rack1": {Operator: "alice"}, "gone": {Operator: "bob"}}}}
	reg := prometheus.NewRegistry()
	if err := d.registerMetrics(reg); err != nil {
		t.Fatal(err)
	}
	m, err := metrics.Text(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`fenced_group_paused{group="rack1"} 1`, `fenced_group_paused{group="default"} 0`, `fenced_group_paused{group="gone"} 1`,
		`fenced_group_guard_holds{group="rack1"} 1`, `fenced_group_guard_holds{group="default"} 0`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s:\n%s", want, m)
		}
	}
}
