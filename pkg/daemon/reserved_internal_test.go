package daemon

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/fencedhq/fenced/pkg/clock"
	"github.com/fencedhq/fenced/pkg/fleet"
	"github.com/fencedhq/fenced/pkg/playbook"
	"github.com/fencedhq/fenced/pkg/policy"
)

// TestKeepingSkips: a keeping pass leaves alone the reserved hosts decided
// in observe mode, and a host taken into service but not yet enabled that
// the playbook holds (not normal); it keeps a spare whatever its state.
func TestKeepingSkips(t *testing.T) {
	for _, mode := range []string{"auto", "observe"} {
		p, _ := policy.Default().WithMode(mode)
		r := playbook.NewReserve([]playbook.ReservedGroup{{Group: "g", Hosts: []string{"spare-warn", "taken-warn", "taken-normal", "taken-enabled-warn"}}})
		r.Load(map[string]playbook.ReservedHost{
			"taken-warn":         {InService: true},
			"taken-normal":       {InService: true},
			"taken-enabled-warn": {InService: true, Enabled: true},
		})
		a := &playbook.Actor{Reserve: r}
		f, err := fleet.New(p.SignalsConfig(), p.PlaybookConfig(), a, fleet.Hooks{})
		if err != nil {
			t.Fatal(err)
		}
		for h, st := range map[string]playbook.State{"spare-warn": playbook.Warn, "taken-warn": playbook.Warn, "taken-normal": playbook.Normal, "taken-enabled-warn": playbook.Warn} {
			if err := f.Resume(playbook.Host{Name: h, State: st}); err != nil {
				t.Fatal(err)
			}
		}
		d := &Daemon{cfg: Config{Actor: a}, fleet: f}
		skip := d.observing()
		want := map[string]bool{"spare-warn": false, "taken-warn": true, "taken-normal": false, "taken-enabled-warn": false}
		for h, w := range want {
			if mode == "observe" {
				w = true
			}
			if got := skip(h); got != w {
				t.Errorf("mode %s: skip(%s) = %v, want %v", mode, h, got, w)
			}
		}
	}
}

// keptNova is the Nova of a keeping pass: a disable is sent on disabled,
// after gate lets it through.
type keptNova struct {
	playbook.ControlPlane
	gate     chan struct{}
	disabled chan string
}

func (n keptNova) SchedulingEnabled(context.Context, string) (bool, error) { return true, nil }

func (n keptNova) Disable(_ context.Context, host, _ string) error {
	<-n.gate
	n.disabled <- host
	return nil
}

type keptJournal struct{}

func (keptJournal) Intent(context.Context, playbook.Intent) (string, error) { return "id", nil }
func (keptJournal) Outcome(context.Context, string, error) error            { return nil }

// TestKeepingEveryMinute: the leader keeps the spares every
// KeepReservedEvery (by its clock), off the loop, one pass at a time.
func TestKeepingEveryMinute(t *testing.T) {
	p, _ := policy.Default().WithMode("auto")
	clk := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	n := keptNova{gate: make(chan struct{}), disabled: make(chan string, 4)}
	r := playbook.NewReserve([]playbook.ReservedGroup{{Group: "g", Hosts: []string{"spare"}}})
	r.Services = n
	a := &playbook.Actor{Reserve: r, Nova: n, Journal: keptJournal{}, Clock: clk, Log: zerolog.Nop()}
	f, err := fleet.New(p.SignalsConfig(), p.PlaybookConfig(), a, fleet.Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	d := &Daemon{cfg: Config{Actor: a, Clock: clk, Log: zerolog.Nop()}, fleet: f, keptAt: clk.Now()}
	ctx := context.Background()
	wait := func() string {
		select {
		case h := <-n.disabled:
			return h
		case <-time.After(10 * time.Second):
			t.Fatal("no keeping pass")
			return ""
		}
	}

	d.keepReservedDue(ctx, clk.Now().Add(KeepReservedEvery-time.Second))
	if d.keeping.Load() {
		t.Fatal("a keeping pass before KeepReservedEvery")
	}
	d.keepReservedDue(ctx, clk.Now().Add(KeepReservedEvery))
	if !d.keeping.Load() {
		t.Fatal("no keeping pass after KeepReservedEvery")
	}
	// the pass is still running: a due tick does not start another
	d.keepReservedDue(ctx, clk.Now().Add(3*KeepReservedEvery))
	close(n.gate)
	if h := wait(); h != "spare" {
		t.Fatalf("disabled %s", h)
	}
	for d.keeping.Load() {
		runtime.Gosched()
	}
	select {
	case h := <-n.disabled:
		t.Fatalf("a second pass ran at once and disabled %s", h)
	default:
	}
	d.keepReservedDue(ctx, clk.Now().Add(2*KeepReservedEvery-time.Second))
	if d.keeping.Load() {
		t.Fatal("a keeping pass before KeepReservedEvery since the last")
	}
	d.keepReservedDue(ctx, clk.Now().Add(2*KeepReservedEvery))
	if h := wait(); h != "spare" {
		t.Fatalf("disabled %s", h)
	}
}
