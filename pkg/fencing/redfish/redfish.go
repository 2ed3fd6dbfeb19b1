// Package redfish fences hosts through their BMCs with gofish: power off,
// on and cycle, each verified by reading PowerState until it shows the
// expected value. It knows the BMC behaviours that matter when a host must
// be fenced: ForceOff on a host already off answers 409/400 but is a
// success; an unreachable BMC never means "off"; a reset accepted but never
// carried out ends in ErrNeedsHuman; 5xx and timeouts are retried with
// backoff inside a deadline; an expired session is renewed once; refused
// credentials fail at once without a retry storm.
package redfish

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"path"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/stmcginnis/gofish"
	"github.com/stmcginnis/gofish/schemas"
	"go.opentelemetry.io/otel/trace"

	"github.com/fencedhq/fenced/internal/capool"
	"github.com/fencedhq/fenced/internal/metrics"
	"github.com/fencedhq/fenced/internal/obs"
	"github.com/fencedhq/fenced/pkg/clock"
	"github.com/fencedhq/fenced/pkg/fencing"
)

// Target is one host's BMC.
type Target struct {
	Host      string
	Endpoint  string // https://bmc-17.example:443
	SystemID  string // the ComputerSystem's Id; empty: the only system
	Username  string
	Password  string // never logged
	BasicAuth bool   // basic auth on every request instead of a session
	Insecure  bool   // skip TLS verification (logged as a warning)
	CAFile    string // CA bundle for the BMC's certificate
}

// Config of a Fencer.
type Config struct {
	Targets       map[string]Target
	Attempt       time.Duration // per request; default 10 s
	Deadline      time.Duration // all attempts of one reset; default 2 min
	Backoff       time.Duration // first retry delay, doubling; default 1 s
	VerifyTimeout time.Duration // waiting for the expected power state; default 5 min
	Poll          time.Duration // power state polling interval; default 2 s
	// Cycle chooses how PowerCycle resets: "off-on" (ForceOff, verify Off,
	// On, verify On: every step verified; the default), "ForceRestart" or
	// "PowerCycle" (one reset, then verify On), as the BMC's
	// ResetType@Redfish.AllowableValues allow.
	Cycle string
	Clock clock.Clock
	Log   zerolog.Logger
	// Metrics receives the fencer's collectors (nil: none).
	Metrics prometheus.Registerer
	// Tracer receives a span per operation (nil: tracing off).
	Tracer trace.TracerProvider
}

// Fencer implements fencing.Fencer.
type Fencer struct {
	cfg     Config
	mu      sync.Mutex
	clients map[string]*gofish.APIClient
	m       fencerMetrics
	tr      trace.Tracer
}

var _ fencing.Fencer = (*Fencer)(nil)

// New checks the configuration.
func New(cfg Config) (*Fencer, error) {
	if cfg.Attempt <= 0 {
		cfg.Attempt = 10 * time.Second
	}
	if cfg.Deadline <= 0 {
		cfg.Deadline = 2 * time.Minute
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = time.Second
	}
	if cfg.VerifyTimeout <= 0 {
		cfg.VerifyTimeout = 5 * time.Minute
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 2 * time.Second
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	switch cfg.Cycle {
	case "":
		cfg.Cycle = "off-on"
	case "off-on", "ForceRestart", "PowerCycle":
	default:
		return nil, fmt.Errorf("redfish: cycle %q: want off-on, ForceRestart or PowerCycle", cfg.Cycle)
	}
	for h, t := range cfg.Targets {
		if !strings.HasPrefix(t.Endpoint, "http://") && !strings.HasPrefix(t.Endpoint, "https://") {
			return nil, fmt.Errorf("redfish: %s: endpoint %q must start with https:// (or http://)", h, t.Endpoint)
		}
		if t.Insecure {
			cfg.Log.Warn().Str("host_id", h).Str("component", "redfish").Msg("TLS verification of the BMC is off (insecure)")
		}
	}
	m, err := newFencerMetrics(cfg.Metrics)
	if err != nil {
		return nil, fmt.Errorf("redfish: %w", err)
	}
	return &Fencer{cfg: cfg, clients: map[string]*gofish.APIClient{}, m: m, tr: obs.Tracer(cfg.Tracer)}, nil
}

func (f *Fencer) target(host string) (Target, error) {
	t, ok := f.cfg.Targets[host]
	if !ok {
		return t, fmt.Errorf("redfish: %s: %w", host, fencing.ErrUnknownHost)
	}
	return t, nil
}

func (f *Fencer) httpClient(t Target) (*http.Client, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: t.Insecure} //nolint:gosec // explicit, logged option
	if t.CAFile != "" {
		pool, err := capool.Read(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("redfish: %s: CA bundle: %w", t.Host, err)
		}
		tc.RootCAs = pool
	}
	tr := &http.Transport{TLSClientConfig: tc, Proxy: nil, TLSHandshakeTimeout: f.cfg.Attempt, ResponseHeaderTimeout: f.cfg.Attempt}
	return &http.Client{Timeout: f.cfg.Attempt, Transport: countingTransport{next: tr, requests: f.m.requests}}, nil
}

// connect returns a (cached) client for the host's BMC.
func (f *Fencer) connect(ctx context.Context, t Target, fresh bool) (*gofish.APIClient, error) {
	f.mu.Lock()
	c := f.clients[t.Host]
	f.mu.Unlock()
	if c != nil && !fresh {
		return c, nil
	}
	if c != nil {
		c.Logout()
	}
	hc, err := f.httpClient(t)
	if err != nil {
		return nil, err
	}
	actx, cancel := context.WithTimeout(ctx, f.cfg.Attempt)
	defer cancel()
	c, err = gofish.ConnectContext(actx, gofish.ClientConfig{Endpoint: t.Endpoint, Username: t.Username, Password: t.Password,
		BasicAuth: t.BasicAuth, Insecure: t.Insecure, HTTPClient: hc, NoModifyTransport: true})
	if err != nil {
		return nil, classify(err)
	}
	// the session outlives this call's deadline; each request gets its own
	c = c.WithContext(context.WithoutCancel(ctx))
	f.mu.Lock()
	f.clients[t.Host] = c
	f.mu.Unlock()
	return c, nil
}

// classify maps gofish and transport errors to the fencing error classes.
func classify(err error) error {
	var re *schemas.Error
	if errors.As(err, &re) {
		switch code := re.HTTPReturnedStatusCode; {
		case code == 401 || code == 403:
			return fmt.Errorf("%w (HTTP %d)", fencing.ErrAuth, code)
		case code >= 500 || code == 429 || code == 0:
			return &retryable{fmt.Errorf("BMC answered HTTP %d: %s", code, re.Message)}
		default:
			return fmt.Errorf("BMC answered HTTP %d: %s", code, re.Message)
		}
	}
	// gofish wraps errors of collection members in a string: "401: {…}"
	if authInText.MatchString(err.Error()) {
		return fmt.Errorf("%w: %v", fencing.ErrAuth, err)
	}
	return &retryable{fmt.Errorf("%w: %v", fencing.ErrUnreachable, err)}
}

var authInText = regexp.MustCompile(`(^|[^0-9])40[13]: `)

type retryable struct{ err error }

func (r *retryable) Error() string { return r.err.Error() }
func (r *retryable) Unwrap() error { return r.err }

func statusCode(err error) int {
	var re *schemas.Error
	if errors.As(err, &re) {
		return re.HTTPReturnedStatusCode
	}
	return 0
}

// systemsURI is the ComputerSystemCollection's URI, the only one Redfish's
// URI patterns allow.
const systemsURI = "/redfish/v1/Systems"

// system finds the target's ComputerSystem; its requests run under ctx,
// which the caller bounds per attempt.
func (f *Fencer) system(ctx context.Context, t Target, fresh bool) (*schemas.ComputerSystem, error) {
	c, err := f.connect(ctx, t, fresh)
	if err != nil {
		return nil, err
	}
	svc := c.WithContext(ctx).GetService()
	// the collection's links first, then the one member that is the
	// target's (its URI ends in its Id, as Redfish's URI patterns say): two
	// requests whatever the chassis holds, and a hung blade does not stop
	// its neighbours' lookups
	if coll, err := schemas.GetCollection(svc.GetClient(), systemsURI); err == nil {
		for _, link := range coll.ItemLinks {
			if t.SystemID != "" && path.Base(strings.TrimSuffix(link, "/")) != t.SystemID {
				continue
			}
			s, err := schemas.GetComputerSystem(svc.GetClient(), link)
			if err != nil {
				return nil, classify(err)
			}
			if t.SystemID == "" || s.ID == t.SystemID {
				return s, nil
			}
			break // a URI that does not end in the Id: read them all, below
		}
	}
	// a BMC whose URIs do not follow the pattern: every member, as before.
	// The members that answered come back even when another member of the
	// collection failed: a system this host does not own must not stop it
	systems, err := svc.Systems()
	for _, s := range systems {
		if t.SystemID != "" && s.ID == t.SystemID || t.SystemID == "" && err == nil {
			return s, nil
		}
	}
	if err != nil {
		return nil, classify(err)
	}
	return nil, fmt.Errorf("redfish: %s: system %q not found on the BMC", t.Host, t.SystemID)
}

// retry runs op until it succeeds, fails for good, or the deadline passes.
// An authentication error is retried once with a fresh session (an expired
// session), never more.
func (f *Fencer) retry(ctx context.Context, t Target, what string, op func(ctx context.Context, fresh bool) error) error {
	dctx, cancel := context.WithTimeout(ctx, f.cfg.Deadline)
	defer cancel()
	wait, fresh, relogged := f.cfg.Backoff, false, false
	for attempt := 1; ; attempt++ {
		err := op(dctx, fresh)
		fresh = false
		switch {
		case err == nil:
			return nil
		case errors.Is(err, fencing.ErrAuth) && !relogged && !t.BasicAuth:
			relogged, fresh = true, true
			f.m.retries.WithLabelValues(strings.ReplaceAll(what, " ", "_")).Inc()
			obs.Line(ctx, f.cfg.Log.Info(), obs.Fields{Component: "redfish", HostID: t.Host, Action: what}, 0, "relogin").Msg("BMC session refused; logging in again")
			continue
		}
		var r *retryable
		if !errors.As(err, &r) {
			return fmt.Errorf("redfish: %s %s: %w", what, t.Host, err)
		}
		obs.Line(ctx, f.cfg.Log.Warn(), obs.Fields{Component: "redfish", HostID: t.Host, Action: what}, 0, "retry").Int("attempt", attempt).Err(err).Msg("BMC request failed; retrying")
		select {
		case <-dctx.Done():
			return fmt.Errorf("redfish: %s %s: gave up after %d attempts: %w", what, t.Host, attempt, err)
		case <-f.cfg.Clock.After(wait):
		}
		f.m.retries.WithLabelValues(strings.ReplaceAll(what, " ", "_")).Inc()
		wait = min(wait*2, 30*time.Second)
	}
}

// PowerState reads the host's power state.
func (f *Fencer) PowerState(ctx context.Context, host string) (fencing.PowerState, error) {
	var ps fencing.PowerState
	err := f.op(ctx, "power_state", host, func(ctx context.Context) (err error) {
		ps, err = f.powerState(ctx, host)
		return err
	})
	return ps, err
}

func (f *Fencer) powerState(ctx context.Context, host string) (fencing.PowerState, error) {
	t, err := f.target(host)
	if err != nil {
		return fencing.Unknown, err
	}
	var ps fencing.PowerState = fencing.Unknown
	err = f.retry(ctx, t, "power_state", func(ctx context.Context, fresh bool) error {
		actx, cancel := context.WithTimeout(ctx, f.cfg.Attempt)
		defer cancel()
		s, err := f.system(actx, t, fresh)
		if err != nil {
			return err
		}
		if !known(fencing.PowerState(s.PowerState)) {
			// a BMC that leaves PowerState out or fills it with something
			// else says nothing about the power: never read it as on or off
			return fmt.Errorf("system %s reports power state %.40q, not a Redfish power state", t.SystemID, s.PowerState)
		}
		ps = fencing.PowerState(s.PowerState)
		return nil
	})
	return ps, err
}

// known reports whether ps is one of Redfish's PowerState values.
func known(ps fencing.PowerState) bool {
	switch ps {
	case fencing.On, fencing.Off, fencing.PoweringOn, fencing.PoweringOff, "Paused":
		return true
	}
	return false
}

// reset sends one reset type, retried.
func (f *Fencer) reset(ctx context.Context, t Target, rt schemas.ResetType) error {
	return f.retry(ctx, t, "reset "+string(rt), func(ctx context.Context, fresh bool) error {
		actx, cancel := context.WithTimeout(ctx, f.cfg.Attempt)
		defer cancel()
		s, err := f.system(actx, t, fresh)
		if err != nil {
			return err
		}
		start := f.cfg.Clock.Now()
		_, err = s.Reset(rt)
		b6 := obs.From(ctx)
		b6.Component, b6.HostID, b6.Action = "redfish", t.Host, "reset"
		b6.Log(f.cfg.Log.Info(), f.cfg.Clock.Now().Sub(start), metrics.Outcome(err)).Str("reset_type", string(rt)).
			AnErr("error", err).Msg("BMC reset")
		if err == nil {
			return nil
		}
		if strings.Contains(err.Error(), "not supported by this service") {
			return fmt.Errorf("%w: %s", fencing.ErrUnsupported, rt)
		}
		code := statusCode(err)
		if rt == schemas.ForceOffResetType && (code == 409 || code == 400) {
			// some BMCs refuse ForceOff on a host that is already off: that is success
			if s2, err2 := f.system(actx, t, false); err2 == nil && s2.PowerState == schemas.OffPowerState {
				return nil
			}
		}
		return classify(err)
	})
}

// verify polls the power state until it reads want.
func (f *Fencer) verify(ctx context.Context, t Target, want fencing.PowerState) error {
	vctx, cancel := context.WithTimeout(ctx, f.cfg.VerifyTimeout)
	defer cancel()
	last := fencing.Unknown
	for {
		actx, acancel := context.WithTimeout(vctx, f.cfg.Attempt)
		s, err := f.system(actx, t, false)
		acancel()
		if err == nil {
			last = fencing.PowerState(s.PowerState)
			if last == want {
				return nil
			}
		}
		select {
		case <-vctx.Done():
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("redfish: %s: power state %s after %s, want %s: %w", t.Host, last, f.cfg.VerifyTimeout, want, fencing.ErrNeedsHuman)
		case <-f.cfg.Clock.After(f.cfg.Poll):
		}
	}
}

// PowerOff forces the host off and verifies it.
func (f *Fencer) PowerOff(ctx context.Context, host string) error {
	return f.op(ctx, "power_off", host, func(ctx context.Context) error { return f.powerOff(ctx, host) })
}

func (f *Fencer) powerOff(ctx context.Context, host string) error {
	t, err := f.target(host)
	if err != nil {
		return err
	}
	if err := f.reset(ctx, t, schemas.ForceOffResetType); err != nil {
		return err
	}
	return f.verify(ctx, t, fencing.Off)
}

// PowerOn powers the host on and verifies it.
func (f *Fencer) PowerOn(ctx context.Context, host string) error {
	return f.op(ctx, "power_on", host, func(ctx context.Context) error { return f.powerOn(ctx, host) })
}

func (f *Fencer) powerOn(ctx context.Context, host string) error {
	t, err := f.target(host)
	if err != nil {
		return err
	}
	if err := f.reset(ctx, t, schemas.OnResetType); err != nil {
		return err
	}
	return f.verify(ctx, t, fencing.On)
}

// PowerCycle power-cycles the host as the configuration says; it counts
// only when verified.
func (f *Fencer) PowerCycle(ctx context.Context, host string) error {
	return f.op(ctx, "power_cycle", host, func(ctx context.Context) error { return f.powerCycle(ctx, host) })
}

func (f *Fencer) powerCycle(ctx context.Context, host string) error {
	t, err := f.target(host)
	if err != nil {
		return err
	}
	switch f.cfg.Cycle {
	case "ForceRestart", "PowerCycle":
		if err := f.reset(ctx, t, schemas.ResetType(f.cfg.Cycle)); err != nil {
			return err
		}
		return f.verify(ctx, t, fencing.On)
	}
	if err := f.PowerOff(ctx, host); err != nil {
		return err
	}
	return f.PowerOn(ctx, host)
}
