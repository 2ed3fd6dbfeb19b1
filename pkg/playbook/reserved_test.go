package playbook

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/fencedhq/fenced/pkg/clock"
	"github.com/fencedhq/fenced/pkg/signals"
)

// spareStore is a ReservedStore that logs into the world's calls (so the
// order of the record's write and the Nova calls shows), and Nova's
// service status of each host (ServiceReader).
type spareStore struct {
	w       *fakeWorld
	recs    map[string]ReservedHost
	refuse  bool
	enabled map[string]bool
}

// calls are w's calls with the outcomes' request ids left out.
func calls(w *fakeWorld) []string {
	out := make([]string, len(w.calls))
	for i, c := range w.calls {
		if f := strings.Fields(c); len(f) == 3 && f[0] == "outcome" {
			c = "outcome " + f[2]
		}
		out[i] = c
	}
	return out
}

func (s *spareStore) PutReserved(_ context.Context, r ReservedHost) error {
	if s.refuse {
		return errors.New("not the leader")
	}
	s.w.log("put %s in_service=%v enabled=%v for=%s", r.Host, r.InService, r.Enabled, r.For)
	s.recs[r.Host] = r
	return nil
}

func (s *spareStore) SchedulingEnabled(_ context.Context, h string) (bool, error) {
	return s.enabled[h], nil
}

// sparePlacer places every server on dest, a spare when reserved.
type sparePlacer struct {
	dest     string
	reserved bool
}

func (p sparePlacer) Place(_ context.Context, _ string, servers []Server) ([]Placement, map[string]string) {
	out := make([]Placement, len(servers))
	for i, s := range servers {
		out[i] = Placement{Server: s, Dest: p.dest, Reserved: p.reserved}
	}
	return out, nil
}

func newSpareActor(w *fakeWorld, st *spareStore, p Placer) *Actor {
	r := NewReserve([]ReservedGroup{{Group: "gpu", Hosts: []string{"s1", "s2"}}})
	r.Store, r.Services = st, st
	r.Load(st.recs)
	return &Actor{Nova: w, Gate: w, Placer: p, Power: w, Checker: w, Notify: w, Journal: w,
		Clock: clock.NewFake(t0), Log: zerolog.Nop(), Reserve: r, EvacuateParallel: 1}
}

// recover runs host's evacuate recovery from rebooting (one inline step).
func recoverHost(t *testing.T, a *Actor, host string) []Change {
	t.Helper()
	cfg := testCfg(ModeAuto)
	cfg.AfterFence = AfterFenceEvacuate
	m, err := NewMachine(cfg, Host{Name: host, State: Rebooting, Since: t0, ControlFenced: true}, a)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := m.Step(context.Background(), Input{Now: t0.Add(5 * time.Second), Verdict: &signals.Verdict{Blind: true}, Fleet: calmFleet})
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// TestReservedHostUsedFirstAndOnlyWhenNeeded is the playbook's table of
// reserved hosts: a spare the placement picks is taken into service (the
// record first), enabled once (journalled enable_reserved) and evacuated to
// before anything else; a placement without a spare enables nothing; a
// refused record enables nothing and evacuates nothing there; a second
// fenced host placed on the same host does not enable it again.
func TestReservedHostUsedFirstAndOnlyWhenNeeded(t *testing.T) {
	servers := []Server{{ID: "a", Name: "a", Evacuable: true}, {ID: "b", Name: "b", Evacuable: true}}
	for _, c := range []struct {
		name   string
		placer sparePlacer
		refuse bool
		want   []string // calls in this order
		never  []string
		rec    ReservedHost
		state  string // the host's state after the step ("" : still rebooting)
	}{
		{name: "the group has room: no spare", placer: sparePlacer{dest: "cmp-002"},
			want:  []string{"power_off cmp-017", "evacuate a cmp-002", "power_on cmp-017"},
			never: []string{"enable s1", "intent enable_reserved"}, rec: ReservedHost{Host: "s1", Group: "gpu"}},
		{name: "no room: the spare is taken, enabled, then evacuated to", placer: sparePlacer{dest: "s1", reserved: true},
			want: []string{"power_off cmp-017", "put s1 in_service=true enabled=false for=cmp-017", "intent enable_reserved", "enable s1",
				"outcome true", "put s1 in_service=true enabled=true for=cmp-017", "evacuate a s1", "power_on cmp-017"},
			rec: ReservedHost{Host: "s1", Group: "gpu", InService: true, For: "cmp-017", At: t0, Enabled: true}},
		{name: "the record is refused (leadership lost): nothing enabled, nothing evacuated there", placer: sparePlacer{dest: "s1", reserved: true}, refuse: true,
			want: []string{"power_off cmp-017", "power_on cmp-017"}, never: []string{"enable s1", "intent enable_reserved", "evacuate a s1"},
			rec: ReservedHost{Host: "s1", Group: "gpu"}, state: "needs_human"},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := &fakeWorld{servers: servers}
			st := &spareStore{w: w, recs: map[string]ReservedHost{}, refuse: c.refuse}
			a := newSpareActor(w, st, c.placer)
			ch := recoverHost(t, a, "cmp-017")
			last := 0
			for _, s := range c.want {
				i := indexOf(calls(w)[last:], s)
				if i < 0 {
					t.Fatalf("want %q after the previous step; calls %v", s, w.calls)
				}
				last += i + 1
			}
			for _, s := range c.never {
				if indexOf(w.calls, s) >= 0 {
					t.Fatalf("%q must not happen: %v", s, w.calls)
				}
			}
			if got, _ := a.Reserve.Get("s1"); got != c.rec {
				t.Fatalf("record %+v, want %+v", got, c.rec)
			}
			if c.state != "" && (len(ch) == 0 || string(ch[len(ch)-1].To) != c.state) {
				t.Fatalf("changes %+v, want %s", ch, c.state)
			}
			if c.refuse && (len(ch) == 0 || !strings.Contains(ch[0].Reason, "take reserved host s1 into service")) {
				t.Fatalf("the reason must say the spare was not taken: %+v", ch)
			}
			if c.refuse {
				return
			}
			// a second fenced host of the group placed on the same host
			n := len(w.calls)
			w.power = ""
			recoverHost(t, a, "cmp-018")
			if got := strings.Join(w.calls[n:], ";"); strings.Contains(got, "enable s1") || !strings.Contains(got, "evacuate a "+c.placer.dest) {
				t.Fatalf("second recovery: %s", got)
			}
			if got, _ := a.Reserve.Get("s1"); got != c.rec {
				t.Fatalf("record after the second recovery %+v, want %+v", got, c.rec)
			}
		})
	}
}

// TestReservedAcrossALeaderChange: a new leader's actor, resuming the
// stored records, neither disables a host taken into service nor enables it
// again; it finishes an enable the old leader decided but did not do, and
// disables a spare someone enabled.
func TestReservedAcrossALeaderChange(t *testing.T) {
	w := &fakeWorld{servers: []Server{{ID: "a", Name: "a", Evacuable: true}}}
	st := &spareStore{w: w, recs: map[string]ReservedHost{}, enabled: map[string]bool{}}
	old := newSpareActor(w, st, sparePlacer{dest: "s1", reserved: true})
	recoverHost(t, old, "cmp-017")
	st.enabled["s1"] = true // what Nova says now
	// the new leader
	n := len(w.calls)
	a := newSpareActor(w, st, sparePlacer{dest: "s1", reserved: true})
	if err := a.KeepReserved(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if got := w.calls[n:]; len(got) != 0 {
		t.Fatalf("a new leader acted on a host in service and a disabled spare: %v", got)
	}
	if a.Reserve.Status("s1") != ReservedInService || a.Reserve.Status("s2") != ReservedSpare {
		t.Fatalf("statuses %s, %s", a.Reserve.Status("s1"), a.Reserve.Status("s2"))
	}

	// the old leader stored the take of s2 but died before its enable
	st.recs["s2"] = ReservedHost{Host: "s2", Group: "gpu", InService: true, For: "cmp-020", At: t0}
	for _, c := range []struct {
		novaEnabled bool
		want        string
	}{
		{true, "put s2 in_service=true enabled=true for=cmp-020"}, // the enable went through: recorded, not sent again
		{false, "intent enable_reserved;enable s2;outcome true;put s2 in_service=true enabled=true for=cmp-020"},
	} {
		st.recs["s2"] = ReservedHost{Host: "s2", Group: "gpu", InService: true, For: "cmp-020", At: t0}
		st.enabled["s2"] = c.novaEnabled
		n := len(w.calls)
		a := newSpareActor(w, st, nil)
		if err := a.KeepReserved(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(calls(w)[n:], ";"); got != c.want {
			t.Fatalf("nova enabled %v: %s, want %s", c.novaEnabled, got, c.want)
		}
		// and the next pass does nothing
		n = len(w.calls)
		if err := a.KeepReserved(context.Background(), nil); err != nil || len(w.calls) != n {
			t.Fatalf("second pass: %v %v", err, w.calls[n:])
		}
	}
}

// TestSparesKeptDisabled: the keeper reads Nova first and disables only a
// spare that schedules; never in observe mode or for a paused host.
func TestSparesKeptDisabled(t *testing.T) {
	for _, c := range []struct {
		name    string
		enabled map[string]bool
		mode    Mode
		paused  bool
		want    string
	}{
		{"spares disabled: nothing", map[string]bool{}, ModeAuto, false, ""},
		{"a spare enabled: disabled again", map[string]bool{"s2": true}, ModeAuto, false, "intent disable_reserved;disable s2;outcome true"},
		{"approve mode acts the same", map[string]bool{"s1": true}, ModeApprove, false, "intent disable_reserved;disable s1;outcome true"},
		{"observe mode: nothing", map[string]bool{"s1": true}, ModeObserve, false, ""},
		{"paused: nothing", map[string]bool{"s1": true}, ModeAuto, true, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := &fakeWorld{}
			st := &spareStore{w: w, recs: map[string]ReservedHost{}, enabled: c.enabled}
			a := newSpareActor(w, st, nil)
			a.Paused = func(string) bool { return c.paused }
			if err := a.KeepReserved(context.Background(), func(string) bool { return c.mode == ModeObserve }); err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(calls(w), ";"); got != c.want {
				t.Fatalf("%s, want %s", got, c.want)
			}
		})
	}
}

// TestUnfenceLeavesASpareDisabled: a spare that recovers from warn is not
// enabled by the playbook (a host in service is).
func TestUnfenceLeavesASpareDisabled(t *testing.T) {
	for _, c := range []struct {
		host string
		want bool
	}{{"s1", false}, {"cmp-017", true}} {
		w := &fakeWorld{}
		a := newSpareActor(w, &spareStore{w: w, recs: map[string]ReservedHost{}}, nil)
		if err := a.unfence(context.Background(), &Host{Name: c.host}); err != nil {
			t.Fatal(err)
		}
		if got := indexOf(w.calls, fmt.Sprintf("enable %s", c.host)) >= 0; got != c.want {
			t.Fatalf("%s enabled %v, want %v: %v", c.host, got, c.want, w.calls)
		}
	}
}
