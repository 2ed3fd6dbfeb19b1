package daemon

import (
	"context"
	"time"

	"github.com/fencedhq/fenced/pkg/lease"
	"github.com/fencedhq/fenced/pkg/playbook"
)

// KeepReservedEvery is how often the leader makes Nova agree with the
// reserved hosts' records (spares disabled), besides once when it is
// elected.
const KeepReservedEvery = time.Minute

// reservedStore keeps the reserved hosts' records in etcd under the
// leader's guard (playbook.ReservedStore).
type reservedStore struct{ d *Daemon }

func (s reservedStore) PutReserved(ctx context.Context, r playbook.ReservedHost) error {
	l := s.d.ha.get()
	if l == nil {
		return ErrFollower
	}
	return s.d.cfg.HA.Store.PutReserved(ctx, *l, r.Host, r)
}

// resumeReserved loads the reserved hosts' records (a new leader: a host a
// previous leader took into service stays in service, and is not enabled
// again) and makes Nova agree with them once before the first tick. On the
// loop's goroutine.
func (d *Daemon) resumeReserved(ctx context.Context) error {
	r := d.cfg.Actor.Reserve
	if r == nil {
		return nil
	}
	recs, err := lease.Reserved[playbook.ReservedHost](ctx, d.cfg.HA.Store)
	if err != nil {
		return err
	}
	r.Load(recs)
	d.keepReserved(ctx, d.observing())
	d.keptAt = d.cfg.Clock.Now()
	return nil
}

// keepReservedDue starts a keeping pass off the loop every
// KeepReservedEvery, one at a time. On the loop's goroutine.
func (d *Daemon) keepReservedDue(ctx context.Context, now time.Time) {
	if d.cfg.Actor.Reserve == nil || now.Sub(d.keptAt) < KeepReservedEvery || !d.keeping.CompareAndSwap(false, true) {
		return
	}
	d.keptAt = now
	observe := d.observing()
	go func() {
		defer d.keeping.Store(false)
		d.keepReserved(ctx, observe)
	}()
}

// observing says which reserved hosts a keeping pass leaves alone: those
// decided in observe mode (their group's policy), and a host taken into
// service but not yet enabled that is not normal (the playbook holds it:
// it is not enabled behind the playbook's back). On the loop's goroutine.
func (d *Daemon) observing() func(string) bool {
	skip := map[string]bool{}
	for _, rec := range d.cfg.Actor.Reserve.List() {
		v, _ := d.fleet.Get(rec.Host)
		skip[rec.Host] = d.fleet.ConfigOf(rec.Host).Mode == playbook.ModeObserve ||
			(rec.InService && !rec.Enabled && v.Host.State != playbook.Normal)
	}
	return func(h string) bool { return skip[h] }
}

func (d *Daemon) keepReserved(ctx context.Context, skip func(string) bool) {
	if err := d.cfg.Actor.KeepReserved(ctx, skip); err != nil {
		d.cfg.Log.Warn().Err(err).Str("component", "playbook").Msg("reserved hosts not kept as their records say; retrying")
	}
}

// followerReserved is the reserved status of each reserved host as the
// leader stored it (a follower's view).
func (d *Daemon) followerReserved(ctx context.Context) (map[string]string, error) {
	r := d.cfg.Actor.Reserve
	if r == nil {
		return nil, nil
	}
	recs, err := lease.Reserved[playbook.ReservedHost](ctx, d.cfg.HA.Store)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, rec := range r.List() {
		out[rec.Host] = playbook.ReservedSpare
		if recs[rec.Host].InService {
			out[rec.Host] = playbook.ReservedInService
		}
	}
	return out, nil
}
