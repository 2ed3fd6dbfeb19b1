package groups

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/fencedhq/fenced/internal/obs"
	"github.com/fencedhq/fenced/pkg/clock"
)

// Reader reads what Nova-derived groups need: the host aggregates and
// every compute host's availability zone (pkg/nova, through pkg/backends).
type Reader interface {
	Aggregates(ctx context.Context) (map[string][]string, error)
	Zones(ctx context.Context) (map[string]string, error)
}

// Defaults of a Refresher.
const (
	DefaultInterval = 5 * time.Minute
	DefaultTimeout  = 30 * time.Second
)

// Status is what the last refresh did, for the API.
type Status struct {
	RefreshedAt time.Time `json:"refreshed_at,omitzero"` // the last successful read
	Error       string    `json:"error,omitempty"`       // why the last refresh failed (the previous membership stays)
	FailedAt    time.Time `json:"failed_at,omitzero"`
}

// Refresher keeps the membership current: it reads Nova every Interval;
// a failed read keeps the last membership and says so (log and Status).
// Current is safe from any goroutine.
type Refresher struct {
	Defs     []Def
	Nova     Reader        // nil: no Nova-derived group
	Interval time.Duration // default DefaultInterval
	Timeout  time.Duration // one refresh; default DefaultTimeout
	Clock    clock.Clock
	Log      zerolog.Logger
	// Hosts are the hosts known besides those Nova names, for the conflict
	// log (nil: only Nova's).
	Hosts func() []string

	cur    atomic.Pointer[Membership]
	mu     sync.Mutex
	status Status
	serial uint64
	logged string // the conflicts last logged
}

// needs reports which Nova reads the definitions need.
func (r *Refresher) needs() (aggs, zones bool) {
	for _, d := range r.Defs {
		aggs = aggs || d.Aggregate != ""
		zones = zones || d.AvailabilityZone != ""
	}
	return aggs, zones
}

// Current is the membership in force (explicit groups only before the
// first successful refresh).
func (r *Refresher) Current() *Membership {
	if m := r.cur.Load(); m != nil {
		return m
	}
	m := New(r.Defs, Nova{}, 0)
	r.cur.CompareAndSwap(nil, m)
	return r.cur.Load()
}

func (r *Refresher) clock() clock.Clock {
	if r.Clock == nil {
		return clock.Real{}
	}
	return r.Clock
}

// Status is the last refresh's outcome.
func (r *Refresher) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status
}

// Refresh reads Nova once. On error the membership in force stays.
func (r *Refresher) Refresh(ctx context.Context) error {
	clk := r.clock()
	wantAggs, wantZones := r.needs()
	var n Nova
	if (wantAggs || wantZones) && r.Nova == nil {
		return errors.New("groups: a group is defined by an aggregate or availability zone, and there is no Nova to read it from")
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := clk.Now()
	var err error
	if wantAggs {
		if n.Aggregates, err = r.Nova.Aggregates(cctx); err != nil {
			err = fmt.Errorf("groups: read host aggregates: %w", err)
		}
	}
	if err == nil && wantZones {
		if n.Zones, err = r.Nova.Zones(cctx); err != nil {
			err = fmt.Errorf("groups: read availability zones: %w", err)
		}
	}
	f := obs.Fields{Component: "groups", Action: "refresh_membership"}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.status.Error, r.status.FailedAt = err.Error(), clk.Now()
		f.Log(r.Log.Warn().Err(err), clk.Now().Sub(start), "error").Time("membership_from", r.status.RefreshedAt).
			Msg("group membership refresh failed; keeping the last membership")
		return err
	}
	r.serial++
	m := New(r.Defs, n, r.serial)
	r.cur.Store(m)
	r.status = Status{RefreshedAt: clk.Now()}
	var hosts []string
	if r.Hosts != nil {
		hosts = r.Hosts()
	}
	var lines []string
	for _, c := range m.Conflicts(hosts) {
		lines = append(lines, c.String())
	}
	if all := strings.Join(lines, "\n"); all != r.logged {
		r.logged = all
		for _, l := range lines {
			f.Log(r.Log.Warn(), 0, "conflict").Str("conflict", l).Msg("a host is in more than one group; the first group in file order wins")
		}
	}
	return nil
}

// Run refreshes every Interval until ctx ends.
func (r *Refresher) Run(ctx context.Context) {
	clk := r.clock()
	every := r.Interval
	if every <= 0 {
		every = DefaultInterval
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-clk.After(every):
		}
		_ = r.Refresh(ctx) // logged; the last membership stays
	}
}
