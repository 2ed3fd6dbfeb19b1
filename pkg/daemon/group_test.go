package daemon_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/fencedhq/fenced/pkg/clock"
	"github.com/fencedhq/fenced/pkg/daemon"
	"github.com/fencedhq/fenced/pkg/groups"
	"github.com/fencedhq/fenced/pkg/lab"
	"github.com/fencedhq/fenced/pkg/playbook"
	"github.com/fencedhq/fenced/pkg/policy"
)

// TestGroupPauseSurvivesRestart: a group's pause is stored in etcd under
// the leader guard, audited, honoured (the starving lab-007 of the paused
// group is not fenced), shown in the snapshot, survives every replica's
// restart, and a resume lets the fence go on.
func TestGroupPauseSurvivesRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd")
	}
	endpoints := startEtcd(t)
	clk := clock.NewScaled(60)
	world := lab.NewWorld(clk.Now, 30*time.Second, policy.Default().SignalsConfig())
	gen := lab.NewGenerator(12, clk.Now(), 0, world)
	m := groups.New([]groups.Def{
		{Name: "rack0", Hosts: []string{"lab-00*"}},
		{Name: "rack1", Hosts: []string{"lab-01*"}},
	}, groups.Nova{}, 1)
	run := func(id string) (*daemon.Daemon, func()) {
		be := world.Backends(gen)
		be.Groups = func() *groups.Membership { return m }
		d := replicaOn(t, endpoints, id, be, clk, "auto")
		world.SetViews(d)
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- d.Run(ctx) }()
		waitUntil(t, id+" leads", 15*time.Second, func() bool { return d.Snapshot().Leader })
		return d, func() {
			stop()
			if err := <-done; err != nil {
				t.Error(err)
			}
		}
	}
	octx, ocancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer ocancel()
	victim := gen.Victim
	a, stopA := run("a")
	if err := a.SetGroupPaused(octx, "rack9", true, "alice", "typo"); err == nil || !strings.Contains(err.Error(), `unknown group "rack9"`) {
		t.Fatalf("pause of an unknown group: %v", err)
	}
	if err := a.SetGroupPaused(octx, "rack0", true, "alice", "rack0 maintenance"); err != nil {
		t.Fatal(err)
	}
	held := func(d *daemon.Daemon) bool {
		v, ok := d.Get(victim)
		return ok && v.Host.State == playbook.Critical && strings.Contains(v.Host.Reason, "fencing paused in group rack0")
	}
	advance(t, 10*time.Minute, func() bool { return held(a) })
	snap := a.Snapshot()
	if _, ok := snap.PausedGroups["rack0"]; !ok || snap.Paused {
		t.Fatalf("snapshot: paused groups %v, fleet-wide %v", snap.PausedGroups, snap.Paused)
	}
	if v, _ := a.Get(victim); v.Group != "rack0" {
		t.Fatalf("%s in group %q", victim, v.Group)
	}
	if gs := snap.Groups; len(gs) != 3 || gs[0].Name != "rack0" || !gs[0].Paused || gs[1].Paused || gs[0].Total != 9 || gs[1].Total != 3 {
		t.Fatalf("groups %+v", gs)
	}
	stopA()

	b, stopB := run("b")
	defer stopB()
	if _, ok := b.Snapshot().PausedGroups["rack0"]; !ok {
		t.Fatal("the group's pause was lost when every replica restarted")
	}
	advance(t, time.Minute, func() bool { return held(b) && b.Snapshot().Ticks > 3 })
	if n := world.Count().PowerCycles; n != 0 {
		t.Fatalf("%d power cycles while the victim's group was paused", n)
	}
	if err := b.SetGroupPaused(octx, "rack0", false, "alice", "maintenance over"); err != nil {
		t.Fatal(err)
	}
	advance(t, 10*time.Minute, func() bool { return world.Count().PowerCycles == 1 })
	recs, err := records(t, b, "")
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for _, r := range recs {
		if strings.HasSuffix(r.Action, "_group") {
			seen = append(seen, r.Action+" "+r.Operator+" "+r.Outcome+" "+r.Detail)
		}
	}
	want := []string{
		"pause_group alice requested group rack9: typo",
		`pause_group alice error group rack9: typo; refused: daemon: unknown group "rack9" (known: rack0, rack1, default)`,
		"pause_group alice requested group rack0: rack0 maintenance", "pause_group alice ok group rack0: rack0 maintenance",
		"resume_group alice requested group rack0: maintenance over", "resume_group alice ok group rack0: maintenance over",
	}
	if strings.Join(seen, "\n") != strings.Join(want, "\n") {
		t.Fatalf("audit:\n%s\nwant\n%s", strings.Join(seen, "\n"), strings.Join(want, "\n"))
	}
}
