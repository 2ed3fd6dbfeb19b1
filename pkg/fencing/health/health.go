// Package health checks the fence path of every host, the way a cluster
// manager periodically checks its fence devices: on a schedule it logs in
// to each host's BMC and reads the power state. A host whose last check
// failed is unfenceable: were it to fail now, nobody could power it off.
// Checks are bounded by a timeout each and by a limit on how many run at
// once; OnChange hears when a host becomes unfenceable or fenceable again.
package health

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/fencedhq/fenced/internal/obs"
	"github.com/fencedhq/fenced/pkg/clock"
	"github.com/fencedhq/fenced/pkg/fencing"
)

// PowerStater reads a host's power state through its BMC;
// *redfish.Fencer is one.
type PowerStater interface {
	PowerState(ctx context.Context, host string) (fencing.PowerState, error)
}

// Defaults.
const (
	DefaultInterval = 5 * time.Minute
	DefaultTimeout  = 10 * time.Second
	DefaultParallel = 8
)

// Config of a Checker.
type Config struct {
	BMC      PowerStater
	Hosts    []string      // what Run checks
	Interval time.Duration // between the starts of two rounds of Run; default 5m
	Timeout  time.Duration // one check, login included; default 10s
	Parallel int           // checks in flight at once; default 8
	Clock    clock.Clock   // default the wall clock
	Log      zerolog.Logger
	// OnChange, when set, is told when a host becomes unfenceable (ok
	// false, why says what failed) or fenceable again (ok true, why "").
	// A host that passes its first check is not reported. Calls come one at
	// a time, in the order of the changes; they should not block long.
	OnChange func(host string, ok bool, why string)
}

// Result is one check of one host.
type Result struct {
	Host       string             `json:"host"`
	OK         bool               `json:"ok"`
	PowerState fencing.PowerState `json:"power_state"`
	Latency    time.Duration      `json:"latency_ns"`
	Error      string             `json:"error,omitempty"` // why the fence path is broken, for people
	At         time.Time          `json:"at"`              // when the check started
}

// Checker checks the fence paths. Its methods are safe for concurrent use.
type Checker struct {
	cfg Config
	sem chan struct{}

	notify sync.Mutex // orders state changes with their OnChange calls
	mu     sync.Mutex
	bad    map[string]string // host → why, for hosts whose last check failed
	last   map[string]Result // host → its last recorded check
}

// New returns a Checker.
func New(cfg Config) (*Checker, error) {
	if cfg.BMC == nil {
		return nil, errors.New("health: no BMC client (PowerStater)")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = DefaultParallel
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	return &Checker{cfg: cfg, sem: make(chan struct{}, cfg.Parallel), bad: map[string]string{}, last: map[string]Result{}}, nil
}

// Unfenceable returns, for each host whose last check failed, why. The map
// is a copy.
func (c *Checker) Unfenceable() map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]string, len(c.bad))
	for h, why := range c.bad {
		out[h] = why
	}
	return out
}

// Last returns the last recorded check of host (canceled checks are not
// recorded).
func (c *Checker) Last(host string) (Result, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.last[host]
	return r, ok
}

// Run checks every configured host at once, then every Interval, until ctx
// ends. Stopping it cancels the checks in flight; a canceled check changes
// nothing, and what the Checker knows survives for the next Run.
func (c *Checker) Run(ctx context.Context) {
	for {
		start := c.cfg.Clock.Now()
		c.CheckNow(ctx, c.cfg.Hosts...)
		wait := c.cfg.Interval - c.cfg.Clock.Now().Sub(start)
		if wait < 0 {
			wait = 0
		}
		select {
		case <-ctx.Done():
			return
		case <-c.cfg.Clock.After(wait):
		}
	}
}

// CheckNow checks the hosts in parallel (at most Parallel at once, across
// every caller) and returns their results in the order given. Each result
// is recorded, except those of checks that ctx canceled.
func (c *Checker) CheckNow(ctx context.Context, hosts ...string) []Result {
	out := make([]Result, len(hosts))
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Go(func() { out[i] = c.check(ctx, h) })
	}
	wg.Wait()
	return out
}

// errTimeout ends a check that ran out of time; requests in flight report
// it as their context's cause.
var errTimeout = errors.New("fence-path check timed out")

func (c *Checker) check(ctx context.Context, host string) Result {
	r := Result{Host: host, PowerState: fencing.Unknown}
	select {
	case c.sem <- struct{}{}:
		defer func() { <-c.sem }()
	case <-ctx.Done():
		r.At, r.Error = c.cfg.Clock.Now(), "check canceled"
		c.log(r, "canceled", ctx.Err())
		return r
	}
	cctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case <-c.cfg.Clock.After(c.cfg.Timeout):
			cancel(errTimeout)
		case <-cctx.Done():
		}
	}()
	r.At = c.cfg.Clock.Now()
	ps, err := c.cfg.BMC.PowerState(cctx, host)
	r.Latency = c.cfg.Clock.Now().Sub(r.At)
	timedOut := errors.Is(context.Cause(cctx), errTimeout)
	switch {
	case err == nil && ps == "":
		err = errors.New("the BMC reported no power state")
	case err == nil:
		r.OK, r.PowerState = true, ps
		c.log(r, "ok", nil)
		c.record(r)
		return r
	}
	if ctx.Err() != nil && !timedOut {
		// the caller gave up (Run stopped): says nothing about the BMC
		r.Error = "check canceled"
		c.log(r, "canceled", err)
		return r
	}
	r.Error = Reason(err, timedOut, c.cfg.Timeout)
	c.log(r, Outcome(err, timedOut), err)
	c.record(r)
	return r
}

func (c *Checker) log(r Result, outcome string, err error) {
	ev := c.cfg.Log.Debug()
	if !r.OK && outcome != "canceled" {
		ev = c.cfg.Log.Warn()
	}
	ev = obs.Fields{Component: "fence-check", HostID: r.Host, Action: "fence_check"}.Log(ev, r.Latency, outcome)
	if r.OK {
		ev = ev.Str("power_state", string(r.PowerState))
	}
	if err != nil {
		ev = ev.Str("why", r.Error).Err(err)
	}
	ev.Msg("fence path check")
}

// record keeps a result and reports a change of fenceability.
func (c *Checker) record(r Result) {
	c.notify.Lock()
	defer c.notify.Unlock()
	c.mu.Lock()
	c.last[r.Host] = r
	_, wasBad := c.bad[r.Host]
	if r.OK {
		delete(c.bad, r.Host)
	} else {
		c.bad[r.Host] = r.Error
	}
	c.mu.Unlock()
	if wasBad == !r.OK {
		return
	}
	if r.OK {
		c.cfg.Log.Info().Str("component", "fence-check").Str("host_id", r.Host).Str("outcome", "ok").Msg("fence path works again")
	} else {
		c.cfg.Log.Error().Str("component", "fence-check").Str("host_id", r.Host).Str("why", r.Error).Msg("host is unfenceable: its BMC failed the check")
	}
	if c.cfg.OnChange != nil {
		c.cfg.OnChange(r.Host, r.OK, r.Error)
	}
}

// Outcome is a short class of a failed check for logs: auth_refused,
// unreachable, timeout, unknown_host or error.
func Outcome(err error, timedOut bool) string {
	switch {
	case errors.Is(err, fencing.ErrAuth):
		return "auth_refused"
	case errors.Is(err, fencing.ErrUnknownHost):
		return "unknown_host"
	case timedOut && cutShort(err):
		return "timeout"
	case errors.Is(err, fencing.ErrUnreachable):
		return "unreachable"
	case timedOut:
		return "timeout"
	}
	return "error"
}

// Reason says in a few words why a check failed: "BMC refused the
// credentials", "BMC unreachable: dial tcp 10.0.0.17:443: connect:
// connection refused", "BMC unreachable: no answer within 10s".
func Reason(err error, timedOut bool, timeout time.Duration) string {
	switch {
	case errors.Is(err, fencing.ErrAuth):
		return "BMC refused the credentials"
	case errors.Is(err, fencing.ErrUnknownHost):
		return "no BMC configured for the host"
	case timedOut && cutShort(err):
		return fmt.Sprintf("BMC unreachable: no answer within %s", timeout)
	case errors.Is(err, fencing.ErrUnreachable):
		// retries that the timeout ended report the last attempt's error:
		// "connection refused" says more than the timeout
		return "BMC unreachable: " + detail(err)
	case timedOut:
		return fmt.Sprintf("BMC check timed out after %s: %s", timeout, detail(err))
	}
	return "BMC error: " + detail(err)
}

var (
	// prefixes the redfish fencer and net/http put before the cause
	wrapPrefix = regexp.MustCompile(`^(redfish: [^:]*: |gave up after \d+ attempts: |(Get|Head|Post|Put|Patch|Delete) "[^"]*": )`)
	unreach    = fencing.ErrUnreachable.Error()
)

// cutShort reports whether err is a request the timeout interrupted.
func cutShort(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	s := err.Error()
	return strings.Contains(s, errTimeout.Error()) || strings.Contains(s, "context canceled") || strings.Contains(s, "context deadline exceeded") ||
		strings.Contains(s, "Client.Timeout exceeded")
}

// detail is the innermost cause of err, without the wrapping.
func detail(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, unreach); i >= 0 {
		s = strings.TrimPrefix(s[i+len(unreach):], ": ")
	}
	for {
		t := wrapPrefix.ReplaceAllString(s, "")
		if t == s {
			break
		}
		s = t
	}
	if s == "" {
		s = "no answer"
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
