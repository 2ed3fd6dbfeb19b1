package groups_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/fencedhq/fenced/pkg/clock"
	"github.com/fencedhq/fenced/pkg/groups"
	"github.com/fencedhq/fenced/pkg/playbook"
)

var defs = []groups.Def{
	{Name: "gpu", Aggregate: "agg-gpu"},
	{Name: "rack1", Hosts: []string{"cmp-0*", "cn1"}},
	{Name: "az2", AvailabilityZone: "az2"},
}

func TestMembershipFirstGroupInFileOrderWins(t *testing.T) {
	m := groups.New(defs, groups.Nova{
		Aggregates: map[string][]string{"agg-gpu": {"cmp-01", "gpu-7"}, "other": {"x"}},
		Zones:      map[string]string{"cmp-01": "az1", "cmp-02": "az2", "cn9": "az2", "gpu-7": "az1"},
	}, 1)
	for host, want := range map[string]string{
		"cmp-01": "gpu",   // aggregate, and rack1's glob: first wins
		"cmp-02": "rack1", // glob, and az2: first wins
		"cn1":    "rack1",
		"cn9":    "az2",
		"x":      playbook.DefaultGroup,
		"nobody": playbook.DefaultGroup,
	} {
		if got := m.Of(host); got != want {
			t.Errorf("Of(%s) = %s, want %s", host, got, want)
		}
	}
	var got []string
	for _, c := range m.Conflicts([]string{"cn1"}) {
		got = append(got, c.String())
	}
	want := []string{"cmp-01 is in groups gpu, rack1; gpu wins (first in file order)", "cmp-02 is in groups rack1, az2; rack1 wins (first in file order)"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("conflicts %q, want %q", got, want)
	}
	if !m.Known("az2") || !m.Known(playbook.DefaultGroup) || m.Known("nope") {
		t.Fatal("Known")
	}
}

func TestExplicitOverlap(t *testing.T) {
	for _, tc := range []struct {
		a, b  []string
		entry string
	}{
		{a: []string{"cn1"}, b: []string{"cn1"}, entry: "cn1"},
		{a: []string{"cmp-0*"}, b: []string{"cmp-0*"}, entry: "cmp-0*"},
		{a: []string{"cmp-*"}, b: []string{"x", "cmp-07"}, entry: "cmp-07"},
		{a: []string{"cmp-07"}, b: []string{"cmp-0?"}, entry: "cmp-07"},
		{a: []string{"cmp-0*"}, b: []string{"cn*"}},
	} {
		_, _, e, ok := groups.ExplicitOverlap([]groups.Def{{Name: "a", Hosts: tc.a}, {Name: "b", Hosts: tc.b}})
		if ok != (tc.entry != "") || e != tc.entry {
			t.Errorf("%v / %v: %q %v, want %q", tc.a, tc.b, e, ok, tc.entry)
		}
	}
	c := groups.ExplicitConflicts([]groups.Def{{Name: "a", Hosts: []string{"cmp-*"}}, {Name: "b", Hosts: []string{"*-07"}}}, []string{"cmp-01", "cmp-07"})
	if len(c) != 1 || c[0].Host != "cmp-07" {
		t.Fatalf("explicit conflicts %+v", c)
	}
}

type fakeNova struct {
	aggs map[string][]string
	err  error
}

func (f *fakeNova) Aggregates(context.Context) (map[string][]string, error) { return f.aggs, f.err }
func (f *fakeNova) Zones(context.Context) (map[string]string, error) {
	return nil, errors.New("not asked")
}

// TestRefreshFailureKeepsTheLastMembership: a failed read leaves the
// membership in force and says so; the next success replaces it.
func TestRefreshFailureKeepsTheLastMembership(t *testing.T) {
	nova := &fakeNova{aggs: map[string][]string{"agg-gpu": {"gpu-1"}}}
	clk := clock.NewFake(time.Date(2026, 1, 15, 1, 0, 0, 0, time.UTC))
	r := &groups.Refresher{Defs: defs[:2], Nova: nova, Clock: clk, Log: zerolog.Nop()}
	if got := r.Current().Of("gpu-1"); got != playbook.DefaultGroup {
		t.Fatalf("before the first refresh gpu-1 is in %s", got)
	}
	if err := r.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	first := r.Current()
	if first.Of("gpu-1") != "gpu" || r.Status().Error != "" || r.Status().RefreshedAt.IsZero() {
		t.Fatalf("after a refresh: %s, %+v", first.Of("gpu-1"), r.Status())
	}
	nova.err = errors.New("nova-api: 503")
	clk.Advance(5 * time.Minute)
	if err := r.Refresh(context.Background()); err == nil {
		t.Fatal("a failed read reported success")
	}
	if r.Current() != first || r.Current().Of("gpu-1") != "gpu" {
		t.Fatal("a failed refresh changed the membership")
	}
	if st := r.Status(); !strings.Contains(st.Error, "503") || st.RefreshedAt.After(st.FailedAt) {
		t.Fatalf("status %+v", st)
	}
	nova.err, nova.aggs = nil, map[string][]string{"agg-gpu": {"gpu-2"}}
	if err := r.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if m := r.Current(); m.Of("gpu-1") != playbook.DefaultGroup || m.Of("gpu-2") != "gpu" || m.Serial <= first.Serial || r.Status().Error != "" {
		t.Fatalf("after recovery: gpu-1 %s, gpu-2 %s, status %+v", m.Of("gpu-1"), m.Of("gpu-2"), r.Status())
	}
}

// TestReservedHostIsInTheGroupThatReservesIt: a reserved host is in its
// group whatever the definitions say (here another group's aggregate).
func TestReservedHostIsInTheGroupThatReservesIt(t *testing.T) {
	d := append([]groups.Def(nil), defs...)
	d[1].Reserved = []string{"spare-1", "gpu-9"}
	m := groups.New(d, groups.Nova{Aggregates: map[string][]string{"agg-gpu": {"gpu-9"}}}, 1)
	for host, want := range map[string]string{"spare-1": "rack1", "gpu-9": "rack1", "cn1": "rack1", "nobody": playbook.DefaultGroup} {
		if got := m.Of(host); got != want {
			t.Errorf("Of(%s) = %s, want %s", host, got, want)
		}
	}
	if g, ok := m.ReservedBy("spare-1"); !ok || g != "rack1" {
		t.Fatalf("ReservedBy(spare-1) = %s %v", g, ok)
	}
	if _, ok := m.ReservedBy("cn1"); ok {
		t.Fatal("cn1 is a plain member")
	}
}

// BenchmarkOfLargeExplicitList: a host's group in a fleet whose groups are
// lists of thousands of names (run --dev --groups, a host list per rack)
// is a map lookup, not a scan of the list.
func BenchmarkOfLargeExplicitList(b *testing.B) {
	var defs []groups.Def
	for g := range 4 {
		d := groups.Def{Name: fmt.Sprintf("rack-%d", g+1)}
		for i := range 2500 {
			d.Hosts = append(d.Hosts, fmt.Sprintf("cmp-%05d", g*2500+i))
		}
		defs = append(defs, d)
	}
	defs = append(defs, groups.Def{Name: "spare", Hosts: []string{"spare-*"}})
	m := groups.New(defs, groups.Nova{}, 1)
	if m.Of("cmp-09999") != "rack-4" || m.Of("spare-7") != "spare" || m.Of("cn1") != "default" {
		b.Fatal("wrong groups")
	}
	b.ResetTimer()
	for i := range b.N {
		m.Of(fmt.Sprintf("cmp-%05d", i%10000))
	}
}
