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

// toSpare places every server on a reserved host: the group has no other
// room (the placement's rule is pkg/hypervisor's table).
type toSpare struct{ spare string }

func (p toSpare) Place(_ context.Context, _ string, servers []playbook.Server) ([]playbook.Placement, map[string]string) {
	out := make([]playbook.Placement, len(servers))
	for i, s := range servers {
		out[i] = playbook.Placement{Server: s, Dest: p.spare, Reserved: true}
	}
	return out, nil
}

// TestReservedHostAcrossALeaderChange: the leader keeps the spare lab-009
// disabled (audited disable_reserved); the starving lab-007 of the same
// group is evacuated onto it, enabled once (enable_reserved) before the
// evacuations; the record is in etcd, so a new leader (a fresh replica)
// shows it in service, neither disables it again nor enables it twice.
func TestReservedHostAcrossALeaderChange(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd")
	}
	endpoints := startEtcd(t)
	clk := clock.NewScaled(60)
	world := lab.NewWorld(clk.Now, 30*time.Second, policy.Default().SignalsConfig())
	gen := lab.NewGenerator(12, clk.Now(), 0, world)
	victim, spare := gen.Victim, "lab-009"
	world.SetServers(victim, 3)
	m := groups.New([]groups.Def{{Name: "rack0", Hosts: []string{"lab-00*"}, Reserved: []string{spare}}}, groups.Nova{}, 1)
	run := func(id string) (*daemon.Daemon, func()) {
		be := world.Backends(gen)
		be.Groups = func() *groups.Membership { return m }
		be.Placer = toSpare{spare}
		r := playbook.NewReserve([]playbook.ReservedGroup{{Group: "rack0", Hosts: []string{spare}}})
		r.Services = world
		be.Reserve = r
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
	enabled := func() bool { ok, _ := world.SchedulingEnabled(context.Background(), spare); return ok }
	actions := func(d *daemon.Daemon) string {
		recs, err := records(t, d, spare)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range recs {
			if strings.HasSuffix(r.Action, "_reserved") {
				out = append(out, r.Action+" "+r.Outcome)
			}
		}
		return strings.Join(out, ", ")
	}
	a, stopA := run("a")
	if enabled() {
		t.Fatal("the spare is schedulable once the leader is elected")
	}
	if v, _ := a.Get(spare); v.Reserved != playbook.ReservedSpare || v.Group != "rack0" {
		t.Fatalf("spare view %+v", v)
	}
	advance(t, 15*time.Minute, func() bool { return world.Count().Evacuations == 3 && inService(a, victim) })
	if !enabled() {
		t.Fatal("the spare took the servers but is not enabled")
	}
	if v, _ := a.Get(spare); v.Reserved != playbook.ReservedInService {
		t.Fatalf("spare view after the take %+v", v)
	}
	if n := world.Count().Evacuations; n != 3 {
		t.Fatalf("%d evacuations, want 3", n)
	}
	want := "disable_reserved intent, disable_reserved ok, enable_reserved intent, enable_reserved ok"
	if got := actions(a); got != want {
		t.Fatalf("audit of %s: %s, want %s", spare, got, want)
	}
	stopA()

	b, stopB := run("b")
	defer stopB()
	advance(t, 2*time.Minute, func() bool { return b.Snapshot().Ticks > 3 })
	if v, _ := b.Get(spare); v.Reserved != playbook.ReservedInService {
		t.Fatalf("the new leader's view of the spare %+v", v)
	}
	if !enabled() {
		t.Fatal("the new leader disabled a host in service")
	}
	if got := actions(b); got != want {
		t.Fatalf("audit of %s after the leader change: %s, want %s", spare, got, want)
	}
}
