package playbook

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"
)

// Reserved-host states, as fenced hosts shows them.
const (
	ReservedSpare     = "spare"      // kept disabled in Nova; a destination only when its group has no room
	ReservedInService = "in service" // taken into service for a fenced host: an ordinary host of its group since
)

// ReservedHost is one reserved host's record (docs/groups.md, Reserved
// hosts): a spare until fenced takes it into service, for good.
type ReservedHost struct {
	Host  string `json:"host"`
	Group string `json:"group"`
	// InService: taken into service for a fenced host; never a spare again
	// (the decision is stored before the host is enabled).
	InService bool      `json:"in_service,omitempty"`
	For       string    `json:"for,omitempty"` // the fenced host whose servers it took
	At        time.Time `json:"at,omitzero"`   // when it was taken
	// Enabled: fenced's enable_reserved went through (Nova schedules onto it).
	Enabled bool `json:"enabled,omitempty"`
}

// Status is ReservedSpare or ReservedInService.
func (r ReservedHost) Status() string {
	if r.InService {
		return ReservedInService
	}
	return ReservedSpare
}

// ReservedGroup is one group's reserved hosts, in file order.
type ReservedGroup struct {
	Group string
	Hosts []string
}

// ReservedStore keeps the reserved hosts' records (a daemon: in etcd,
// under the leader's guard). A write it refuses changes nothing.
type ReservedStore interface {
	PutReserved(ctx context.Context, r ReservedHost) error
}

// ServiceReader reads whether Nova schedules onto a host (its compute
// service enabled).
type ServiceReader interface {
	SchedulingEnabled(ctx context.Context, host string) (bool, error)
}

// Reserve is the groups' reserved hosts: spares kept disabled in Nova, each
// taken into service at most once, when a fenced host of its group finds
// no normal host with headroom. Its methods are safe from any goroutine
// and nil-safe (no reserved hosts).
type Reserve struct {
	// Store keeps the records durable (nil: memory only).
	Store ReservedStore
	// Services reads Nova's service status for KeepReserved.
	Services ServiceReader

	mu    sync.Mutex
	hosts map[string]ReservedHost
	order []string
	locks map[string]*sync.Mutex // one per host: a take and a keeper pass never interleave
}

// NewReserve holds the reserved hosts of gs, every one a spare until Load
// says otherwise.
func NewReserve(gs []ReservedGroup) *Reserve {
	r := &Reserve{hosts: map[string]ReservedHost{}, locks: map[string]*sync.Mutex{}}
	for _, g := range gs {
		for _, h := range g.Hosts {
			if _, dup := r.hosts[h]; dup {
				continue
			}
			r.hosts[h] = ReservedHost{Host: h, Group: g.Group}
			r.order = append(r.order, h)
			r.locks[h] = &sync.Mutex{}
		}
	}
	return r
}

// Load replaces the state with the stored records (a new leader resuming):
// a reserved host without a record is a spare; a record of a host no longer
// reserved is ignored; the group is the configured one.
func (r *Reserve) Load(recs map[string]ReservedHost) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, h := range r.order {
		cur := r.hosts[h]
		rec, ok := recs[h]
		if !ok {
			rec = ReservedHost{}
		}
		rec.Host, rec.Group = h, cur.Group
		r.hosts[h] = rec
	}
}

// Get is host's record, if host is reserved.
func (r *Reserve) Get(host string) (ReservedHost, bool) {
	if r == nil {
		return ReservedHost{}, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	rec, ok := r.hosts[host]
	return rec, ok
}

// Status is host's reserved status ("": not a reserved host).
func (r *Reserve) Status(host string) string {
	if rec, ok := r.Get(host); ok {
		return rec.Status()
	}
	return ""
}

// Spare reports whether host is a reserved host not yet in service: never
// a destination, except for a host of its own group with no room left.
func (r *Reserve) Spare(host string) bool {
	rec, ok := r.Get(host)
	return ok && !rec.InService
}

// Spares are group's spares, in file order.
func (r *Reserve) Spares(group string) []string {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, h := range r.order {
		if rec := r.hosts[h]; rec.Group == group && !rec.InService {
			out = append(out, h)
		}
	}
	return out
}

// List is every reserved host's record, in file order.
func (r *Reserve) List() []ReservedHost {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]ReservedHost, 0, len(r.order))
	for _, h := range r.order {
		out = append(out, r.hosts[h])
	}
	return out
}

// Len is the number of reserved hosts.
func (r *Reserve) Len() int {
	if r == nil {
		return 0
	}
	return len(r.order)
}

func (r *Reserve) lock(host string) func() {
	m := r.locks[host] // immutable after NewReserve
	m.Lock()
	return m.Unlock
}

// put stores rec and then holds it (the caller holds host's lock).
func (r *Reserve) put(ctx context.Context, rec ReservedHost) error {
	if r.Store != nil {
		if err := r.Store.PutReserved(ctx, rec); err != nil {
			return err
		}
	}
	r.mu.Lock()
	r.hosts[rec.Host] = rec
	r.mu.Unlock()
	return nil
}

// errNotReserved: a placement named a reserved destination fenced does not
// hold.
var errNotReserved = errors.New("not a reserved host")

// enableReserved takes spare into service for h's servers: the decision is
// stored first (a new leader never makes the host a spare again), then the
// host is enabled in Nova, journalled as enable_reserved under the spare's
// name, unless a previous take already enabled it. Never twice: the
// record says it happened.
func (a *Actor) enableReserved(ctx context.Context, h *Host, spare string) error {
	r := a.Reserve
	rec, ok := r.Get(spare)
	if !ok {
		return fmt.Errorf("%s: %w", spare, errNotReserved)
	}
	defer r.lock(spare)()
	rec, _ = r.Get(spare)
	if !rec.InService {
		rec.InService, rec.For, rec.At = true, h.Name, a.Clock.Now()
		if err := r.put(ctx, rec); err != nil {
			return fmt.Errorf("take reserved host %s into service: %w", spare, err)
		}
		a.Log.Info().Str("component", "playbook").Str("host_id", spare).Str("action", "take_reserved").
			Str("group", rec.Group).Str("for", h.Name).Msg("reserved host taken into service")
	}
	if rec.Enabled {
		return nil
	}
	return a.enableTaken(ctx, rec)
}

// enableTaken enables a reserved host taken into service and records it
// (the caller holds its lock).
func (a *Actor) enableTaken(ctx context.Context, rec ReservedHost) error {
	detail := fmt.Sprintf("reserved host of group %s taken into service for the servers of %s", rec.Group, rec.For)
	if err := a.do(ctx, &Host{Name: rec.Host}, "enable_reserved", "", detail, func(c context.Context) error {
		return a.Nova.Enable(c, rec.Host)
	}); err != nil {
		return err
	}
	rec.Enabled = true
	if err := a.Reserve.put(ctx, rec); err != nil {
		return fmt.Errorf("record reserved host %s enabled: %w", rec.Host, err)
	}
	return nil
}

// takeReserved enables the reserved destinations among placed before any
// evacuation runs, and puts the evacuations to them first. A placement
// whose reserved host cannot be taken fails, with why.
func (a *Actor) takeReserved(ctx context.Context, h *Host, placed []Placement) ([]Placement, []string) {
	bad := map[string]error{}
	for _, p := range placed {
		if _, done := bad[p.Dest]; !p.Reserved || done {
			continue
		}
		bad[p.Dest] = a.enableReserved(ctx, h, p.Dest)
	}
	var ok []Placement
	var failed []string
	for _, p := range placed {
		if err := bad[p.Dest]; err != nil {
			failed = append(failed, p.Server.Name+" ("+p.Server.ID+"): "+err.Error())
			continue
		}
		ok = append(ok, p)
	}
	sort.SliceStable(ok, func(i, j int) bool { return ok[i].Reserved && !ok[j].Reserved })
	return ok, failed
}

// KeepReserved makes Nova agree with the reserved hosts' records, reading
// each host's service first: a spare that schedules is disabled (reason
// "fenced: reserved host", journalled as disable_reserved), a host taken
// into service whose enable a previous leader did not finish is enabled
// (enable_reserved). Nothing is done for a host skip names (nil: none; the
// daemon skips a host decided in observe mode, and a host in service that
// is not normal: the playbook holds it) or whose fencing is paused. It
// returns the first error; the other hosts are still kept.
func (a *Actor) KeepReserved(ctx context.Context, skip func(host string) bool) error {
	r := a.Reserve
	if r == nil || r.Services == nil {
		return nil
	}
	var first error
	for _, rec := range r.List() {
		if (skip != nil && skip(rec.Host)) || (a.Paused != nil && a.Paused(rec.Host)) {
			continue
		}
		if rec.InService && rec.Enabled {
			continue
		}
		if err := a.keep(ctx, rec.Host); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (a *Actor) keep(ctx context.Context, host string) error {
	r := a.Reserve
	defer r.lock(host)()
	rec, _ := r.Get(host)
	var enabled bool
	var err error
	a.read(ctx, func(c context.Context) { enabled, err = r.Services.SchedulingEnabled(c, host) })
	if err != nil {
		return fmt.Errorf("reserved host %s: read its service: %w", host, err)
	}
	switch {
	case !rec.InService && enabled:
		return a.do(ctx, &Host{Name: host}, "disable_reserved", "", "spare of group "+rec.Group, func(c context.Context) error {
			return a.Nova.Disable(c, host, "reserved host")
		})
	case rec.InService && !rec.Enabled && enabled:
		rec.Enabled = true // the enable went through before the leader changed
		return r.put(ctx, rec)
	case rec.InService && !rec.Enabled:
		return a.enableTaken(ctx, rec)
	}
	return nil
}
