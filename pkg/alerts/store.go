package alerts

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/fencedhq/fenced/internal/hostname"
	"github.com/fencedhq/fenced/internal/metrics"
	"github.com/fencedhq/fenced/internal/obs"
	"github.com/fencedhq/fenced/pkg/clock"
	"github.com/fencedhq/fenced/pkg/signals"
)

// Rule maps one alert, by its alertname label, to what it says about its
// host: a value of a signal (fixed, or read from an annotation or a label),
// or a corroboration weight.
type Rule struct {
	Signal    string   `yaml:"signal"`
	Value     *float64 `yaml:"value"`
	ValueFrom string   `yaml:"value_from"` // annotation:NAME or label:NAME
	Weight    float64  `yaml:"weight"`     // in (0,1], without signal
}

// Check says what is wrong with a rule, naming its field.
func (r Rule) Check() error {
	switch {
	case r.Signal == "" && (r.Value != nil || r.ValueFrom != ""):
		return fieldErr("value", "a value needs a signal")
	case r.Signal == "" && r.Weight == 0:
		return fieldErr("signal", "give a signal (with value or value_from) or a weight")
	case r.Signal != "" && r.Weight != 0:
		return fieldErr("weight", "signal and weight exclude each other: an alert is a signal's value or a corroboration weight")
	case r.Signal == "" && !(r.Weight > 0 && r.Weight <= 1):
		return fieldErr("weight", "want a number in (0,1], have %g", r.Weight)
	case r.Signal == "":
		return nil
	case !signals.Name(r.Signal).Valid():
		return fieldErr("signal", "%s: not one of the nine signals (cpu_steal_pct, runqueue_per_core, …)", excerpt(r.Signal))
	case (r.Value == nil) == (r.ValueFrom == ""):
		return fieldErr("value", "give exactly one of value and value_from")
	case r.Value != nil && (!(*r.Value >= 0) || math.IsInf(*r.Value, 0)):
		return fieldErr("value", "want a finite number >= 0, have %g", *r.Value)
	}
	if r.ValueFrom != "" {
		if _, _, err := r.source(); err != nil {
			return err
		}
	}
	return nil
}

// source splits value_from.
func (r Rule) source() (kind, name string, err error) {
	kind, name, ok := strings.Cut(r.ValueFrom, ":")
	if !ok || name == "" || (kind != "annotation" && kind != "label") {
		return "", "", fieldErr("value_from", "%s: want annotation:NAME or label:NAME", excerpt(r.ValueFrom))
	}
	return kind, name, nil
}

// Defaults.
const (
	DefaultHostLabel   = "host"
	DefaultExpireAfter = 5 * time.Minute
)

// Config is the alerts: section of the run config.
type Config struct {
	HostLabel string            // label naming the host (default host)
	HostMap   map[string]string // label value → Nova host name
	// ExpireAfter drops a firing alert Alertmanager has not repeated for
	// this long (its repeat_interval must be shorter).
	ExpireAfter time.Duration
	Rules       map[string]Rule // by alertname
	Clock       clock.Clock
	Log         zerolog.Logger
	Metrics     prometheus.Registerer // nil: none
}

// Ignore reasons (the reason label of fenced_alerts_ignored_total).
const (
	IgnoredUnmapped  = "unmapped"     // no rule for its alertname
	IgnoredNoHost    = "no_host"      // no host label
	IgnoredBadHost   = "bad_host"     // the host label is not a host name
	IgnoredBadValue  = "bad_value"    // value_from missing or not a number >= 0
	IgnoredNoName    = "no_alertname" // no alertname label
	IgnoredUnwatched = "unwatched"    // for a host fenced does not watch (counted at each tick it is held)
)

var reasons = []string{IgnoredUnmapped, IgnoredNoHost, IgnoredBadHost, IgnoredBadValue, IgnoredNoName, IgnoredUnwatched}

// Result is what a notification did.
type Result struct {
	Accepted int            `json:"accepted"`
	Ignored  map[string]int `json:"ignored,omitempty"` // by reason
}

type held struct {
	host  string
	alert signals.Alert
	until time.Time
}

// Store holds the firing alerts. Safe for concurrent use: the API writes,
// the daemon's tick reads.
type Store struct {
	cfg Config

	mu   sync.Mutex
	held map[string]held // by host and label set

	received, rejected prometheus.Counter
	accepted, ignored  *prometheus.CounterVec
}

// New checks cfg and returns an empty store with its metrics registered.
func New(cfg Config) (*Store, error) {
	if cfg.HostLabel == "" {
		cfg.HostLabel = DefaultHostLabel
	}
	if cfg.ExpireAfter == 0 {
		cfg.ExpireAfter = DefaultExpireAfter
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	for name, r := range cfg.Rules {
		if err := r.Check(); err != nil {
			return nil, fmt.Errorf("alerts: rule %s: %w", name, err)
		}
	}
	s := &Store{cfg: cfg, held: map[string]held{}}
	var err error
	if s.received, err = metrics.Register(cfg.Metrics, prometheus.NewCounter(prometheus.CounterOpts{Name: "fenced_alerts_received_total",
		Help: "Alerts in the Alertmanager notifications this replica accepted."})); err != nil {
		return nil, err
	}
	if s.rejected, err = metrics.Register(cfg.Metrics, prometheus.NewCounter(prometheus.CounterOpts{Name: "fenced_alerts_rejected_payloads_total",
		Help: "Alertmanager notifications refused as malformed (HTTP 400; nothing of them applied)."})); err != nil {
		return nil, err
	}
	if s.accepted, err = metrics.Register(cfg.Metrics, prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fenced_alerts_accepted_total",
		Help: "Alerts applied to a host: firing ones held, resolved ones withdrawn."}, []string{"status"})); err != nil {
		return nil, err
	}
	if s.ignored, err = metrics.Register(cfg.Metrics, prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fenced_alerts_ignored_total",
		Help: "Alerts ignored, by reason (unmapped, no_host, bad_host, bad_value, no_alertname, unwatched)."}, []string{"reason"})); err != nil {
		return nil, err
	}
	for _, st := range []string{Firing, Resolved} {
		s.accepted.WithLabelValues(st)
	}
	for _, r := range reasons {
		s.ignored.WithLabelValues(r)
	}
	if _, err := metrics.Register(cfg.Metrics, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "fenced_alerts_active",
		Help: "Firing alerts held (mapped, for a host, not expired)."}, func() float64 {
		s.mu.Lock()
		defer s.mu.Unlock()
		return float64(len(s.held))
	})); err != nil {
		return nil, err
	}
	return s, nil
}

// Receive parses one notification and applies it whole, or refuses it
// (a *FieldError) and changes nothing.
func (s *Store) Receive(ctx context.Context, body []byte) (Result, error) {
	p, err := Parse(body)
	if err != nil {
		s.rejected.Inc()
		return Result{}, err
	}
	return s.Apply(ctx, p), nil
}

// Apply applies a parsed notification: each mapped firing alert for a host
// is held (again) until ExpireAfter from now, each resolved one withdrawn;
// the others are ignored and counted. One log line per alert.
func (s *Store) Apply(ctx context.Context, p *Payload) Result {
	now := s.cfg.Clock.Now()
	ctx = obs.With(ctx, obs.Fields{Component: "alerts", RequestID: obs.NewRequestID()})
	res := Result{}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range p.Alerts {
		s.received.Inc()
		host, sa, why := s.read(a)
		ev := s.cfg.Log.Info()
		if why != "" {
			if res.Ignored == nil {
				res.Ignored = map[string]int{}
			}
			res.Ignored[why]++
			s.ignored.WithLabelValues(why).Inc()
			if why == IgnoredUnmapped {
				ev = s.cfg.Log.Debug() // Alertmanager may route every alert here
			}
			obs.Line(ctx, ev, obs.Fields{HostID: host, Action: "alert_" + a.Status}, 0, "ignored").
				Str("alertname", a.Labels["alertname"]).Str("reason", why).Msg("alert received")
			continue
		}
		key := host + "\x00" + labelKey(a.Labels)
		if a.Status == Resolved {
			delete(s.held, key)
		} else {
			s.held[key] = held{host: host, alert: sa, until: now.Add(s.cfg.ExpireAfter)}
		}
		res.Accepted++
		s.accepted.WithLabelValues(a.Status).Inc()
		f := obs.Fields{HostID: host, Action: "alert_" + a.Status}
		if sa.Signal == signals.CPUSteal {
			f.CPUStealPct = sa.Value
		}
		ev = obs.Line(ctx, ev, f, 0, "accepted").Str("alertname", sa.Name)
		if sa.Signal != "" {
			ev = ev.Str("signal", string(sa.Signal)).Float64("value", sa.Value)
		} else {
			ev = ev.Float64("weight", sa.Weight)
		}
		ev.Msg("alert received")
	}
	return res
}

// read maps one alert: its host, what it says, or why it is ignored.
func (s *Store) read(a Alert) (string, signals.Alert, string) {
	name := a.Labels["alertname"]
	host, ok := a.Labels[s.cfg.HostLabel]
	switch {
	case name == "":
		return "", signals.Alert{}, IgnoredNoName
	case !ok || host == "":
		return "", signals.Alert{}, IgnoredNoHost
	}
	if h, ok := s.cfg.HostMap[host]; ok {
		host = h
	}
	if hostname.Check(host) != nil {
		return "", signals.Alert{}, IgnoredBadHost
	}
	r, ok := s.cfg.Rules[name]
	if !ok {
		return host, signals.Alert{}, IgnoredUnmapped
	}
	sa := signals.Alert{Name: name, Signal: signals.Name(r.Signal), Weight: r.Weight}
	if r.Signal == "" || a.Status == Resolved {
		return host, sa, "" // a resolved alert withdraws, whatever its value
	}
	if r.Value != nil {
		sa.Value = *r.Value
		return host, sa, ""
	}
	kind, key, _ := r.source() // checked by New
	src := a.Annotations
	if kind == "label" {
		src = a.Labels
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(src[key]), 64)
	if err != nil || !(v >= 0) || math.IsInf(v, 0) {
		return host, sa, IgnoredBadValue
	}
	sa.Value = v
	return host, sa, ""
}

// labelKey identifies an alert by its label set (what Alertmanager's
// fingerprint is computed from).
func labelKey(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k)
		b.WriteByte(0)
		b.WriteString(l[k])
		b.WriteByte(0)
	}
	return b.String()
}

// Samples returns the alerts held at now as samples stamped now (one set
// per host: pkg/signals reads a set as speaking for its tick only), after
// dropping the expired ones. watched, when not nil, says which hosts fenced
// watches; alerts for others are left out and counted as unwatched.
func (s *Store) Samples(now time.Time, watched func(string) bool) []signals.Sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []signals.Sample
	for k, h := range s.held {
		if now.After(h.until) {
			delete(s.held, k)
			continue
		}
		if watched != nil && !watched(h.host) {
			s.ignored.WithLabelValues(IgnoredUnwatched).Inc()
			continue
		}
		a := h.alert
		v := a.Value
		if a.Signal == "" {
			v = a.Weight
		}
		out = append(out, signals.Sample{Host: h.host, Signal: signals.AlertSignal, Value: v, At: now, Alert: &a})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Host != out[j].Host {
			return out[i].Host < out[j].Host
		}
		return out[i].Alert.Name < out[j].Alert.Name
	})
	return out
}

// Next is the source whose samples Source adds the alerts to (the signal
// registry of the replica).
type Next interface {
	Collect(ctx context.Context, now time.Time) ([]signals.Sample, error)
}

// Source adds the held alerts to each tick's samples, for the hosts fenced
// watches: those it knew at start and those its collectors report. An
// alert never adds a host to the fleet.
type Source struct {
	Next  Next
	Store *Store
	Hosts []string // known up front

	watched map[string]bool // owned by the tick's goroutine
}

// Collect collects Next, then adds the alerts held at now.
func (s *Source) Collect(ctx context.Context, now time.Time) ([]signals.Sample, error) {
	smp, err := s.Next.Collect(ctx, now)
	if s.watched == nil {
		s.watched = make(map[string]bool, len(s.Hosts))
		for _, h := range s.Hosts {
			s.watched[h] = true
		}
	}
	for _, x := range smp {
		s.watched[x.Host] = true
	}
	return append(smp, s.Store.Samples(now, func(h string) bool { return s.watched[h] })...), err
}
