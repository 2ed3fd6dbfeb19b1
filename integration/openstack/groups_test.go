package openstack

import (
	"context"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/aggregates"
	"github.com/rs/zerolog"

	"github.com/fencedhq/fenced/pkg/backends"
	"github.com/fencedhq/fenced/pkg/groups"
	"github.com/fencedhq/fenced/pkg/playbook"
)

// TestGroupMembershipFromNova: groups read their members from the real
// Nova: an aggregate's hosts, and the availability zone Nova reports for
// each compute (the default zone, nova); a host in both is in the first
// group in file order; a host added to the aggregate moves at the next
// refresh. The aggregate has no zone of its own, so the other tests'
// "nova:HOST" boots are unaffected.
func TestGroupMembershipFromNova(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sc := admin(t, ctx)
	agg, err := aggregates.Create(ctx, sc, aggregates.CreateOpts{Name: "fenced-group-test"}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, h := range []string{"cn1", "cn2"} {
			_, _ = aggregates.RemoveHost(cctx, sc, agg.ID, aggregates.RemoveHostOpts{Host: h}).Extract()
		}
		if err := aggregates.Delete(cctx, sc, agg.ID).ExtractErr(); err != nil {
			t.Logf("delete aggregate %d: %v", agg.ID, err)
		}
	})
	if _, err := aggregates.AddHost(ctx, sc, agg.ID, aggregates.AddHostOpts{Host: "cn1"}).Extract(); err != nil {
		t.Fatal(err)
	}
	r := &groups.Refresher{Defs: []groups.Def{
		{Name: "grp", Aggregate: "fenced-group-test"},
		{Name: "zone", AvailabilityZone: "nova"},
	}, Nova: backends.NovaGroups(newNova(t, ctx)), Log: zerolog.Nop()}
	if err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	m := r.Current()
	if m.Of("cn1") != "grp" || m.Of("cn2") != "zone" || m.Of("cn9") != playbook.DefaultGroup {
		t.Fatalf("cn1 in %s, cn2 in %s, cn9 in %s", m.Of("cn1"), m.Of("cn2"), m.Of("cn9"))
	}
	if c := m.Conflicts(nil); len(c) != 1 || c[0].Host != "cn1" {
		t.Fatalf("conflicts %+v, want cn1 in grp and zone", c)
	}
	if _, err := aggregates.AddHost(ctx, sc, agg.ID, aggregates.AddHostOpts{Host: "cn2"}).Extract(); err != nil {
		t.Fatal(err)
	}
	if err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if got := r.Current().Of("cn2"); got != "grp" {
		t.Fatalf("after the refresh cn2 is in %s, want grp", got)
	}
}
