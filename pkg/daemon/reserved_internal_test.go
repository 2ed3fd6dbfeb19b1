package daemon

import (
	"testing"

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
