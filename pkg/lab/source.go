package lab

import (
	"context"
	"time"

	"github.com/fencedhq/fenced/pkg/signals"
)

// Source adapts a Generator to the daemon: live samples, passed through the
// world (nothing from a host that is off; a rebooted host is cured).
type Source struct {
	Gen   *Generator
	World *World
}

// Collect returns the samples of one tick.
func (s Source) Collect(_ context.Context, now time.Time) ([]signals.Sample, error) {
	raw := s.Gen.Samples(now)
	out := raw[:0]
	for _, smp := range raw {
		if v, keep := s.World.Sample(smp); keep {
			smp.Value = v
			out = append(out, smp)
		}
	}
	return out, nil
}
