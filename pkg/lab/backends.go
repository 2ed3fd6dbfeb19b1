package lab

import (
	"context"

	"github.com/fencedhq/fenced/pkg/daemon"
	"github.com/fencedhq/fenced/pkg/fencing"
	"github.com/fencedhq/fenced/pkg/lease"
	"github.com/fencedhq/fenced/pkg/report"
)

// Backends is the in-process world as a replica's backends. Call SetViews
// with the replica's fleet once it exists (the gate picks normal hosts).
func (w *World) Backends(gen *Generator) daemon.Backends {
	return daemon.Backends{Source: Source{Gen: gen, World: w}, Nova: w, Gate: w, Placer: w, Power: w, Checker: w, Notify: w,
		Control: w.Control, Hosts: gen.Hosts,
		EvacuateParallel: 1, // the in-process world is not safe for concurrent use
		Reconcile: func(ctx context.Context, in lease.Intent) (bool, error) {
			switch in.Action {
			case "power_cycle":
				return !w.RebootedAt(in.Host).Before(in.At), nil
			case "power_off", "power_on":
				st, err := w.PowerState(ctx, in.Host)
				return err == nil && fencing.Reached(in.Action, st), err
			}
			return false, nil
		},
		Capacity: func(h string) report.Capacity {
			c, v, r2 := w.Capacity(h)
			return report.Capacity{Cores: c, VCPUs: v, R2: r2, Known: true}
		}}
}

// Backends is a shared lab server as a replica's backends.
func (r *Remote) Backends() daemon.Backends {
	return daemon.Backends{Source: r, Nova: r, Gate: r, Placer: r, Power: r, Checker: r, Notify: r, Control: r.Control,
		Reconcile: func(ctx context.Context, in lease.Intent) (bool, error) {
			ps, err := r.Power(ctx, in.Host)
			if err != nil {
				return false, err
			}
			switch in.Action {
			case "power_cycle":
				return !ps.RebootedAt.Before(in.At), nil
			case "power_off", "power_on":
				return fencing.Reached(in.Action, ps.State), nil
			}
			return false, nil
		}}
}
