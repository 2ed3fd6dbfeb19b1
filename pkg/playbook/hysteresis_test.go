package playbook

import (
	"testing"
	"time"
)

// A host leaves warn (or critical) only after d has stayed below the lower
// threshold, d_warn − hysteresis (d_crit − hysteresis), for RecoverAfter. A d
// held steadily inside the band [threshold − hysteresis, threshold) must keep
// the host where it is, however long it lasts.
func TestHysteresisBandHoldsTheState(t *testing.T) {
	cases := []struct {
		name      string
		mode      Mode
		from      State
		inBand    float64 // d_threshold − hysteresis ≤ d < d_threshold
		belowBand float64
		want      Event
	}{
		{"warn", ModeAuto, Warn, 0.35, 0.25, EvRecover},
		{"critical", ModeObserve, Critical, 0.65, 0.55, EvDeescalate},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := testCfg(c.mode)
			h := Host{Name: "h", State: c.from, Since: t0}
			// twice RecoverAfter inside the band: no transition
			h, decs := run(cfg, h, t0, repeat(c.inBand, 2*int(cfg.RecoverAfter/(10*time.Second))), calmFleet)
			if len(decs) != 0 || h.State != c.from {
				t.Fatalf("d=%.2f (inside the hysteresis band) for %s moved the host: %+v", c.inBand, 2*cfg.RecoverAfter, decs)
			}
			// below the band for RecoverAfter: exactly one transition, at RecoverAfter
			start := t0.Add(time.Hour)
			n := int(cfg.RecoverAfter/(10*time.Second)) + 1
			h, decs = run(cfg, h, start, repeat(c.belowBand, n), calmFleet)
			if len(decs) != 1 || decs[0].Event != c.want {
				t.Fatalf("d=%.2f (below the band) for %s: want one %s, got %+v", c.belowBand, cfg.RecoverAfter, c.want, decs)
			}
		})
	}
}
