package signals

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

// SignalConfig is how one signal is read and scored.
type SignalConfig struct {
	Warn    float64       // value at which m = d_warn
	Crit    float64       // value at which m = d_crit
	Weight  float64       // w_i in d = Σ w_i·m_i (before renormalisation)
	Window  time.Duration // how far back the aggregation looks; 0 = newest sample
	Agg     Agg
	Trigger bool // over Crit makes the host critical on its own (B.5: heartbeat lag)
}

// Config is everything the evaluator needs; pkg/policy builds it from a file.
type Config struct {
	Signals    map[Name]SignalConfig
	DWarn      float64
	DCrit      float64
	StaleAfter time.Duration // a signal with no sample for this long is stale
}

// Level is where d (and triggers) place a host, before dwell and hysteresis.
type Level int

// Levels.
const (
	LevelNormal Level = iota
	LevelWarn
	LevelCritical
)

func (l Level) String() string {
	switch l {
	case LevelWarn:
		return "warn"
	case LevelCritical:
		return "critical"
	}
	return "normal"
}

// Contribution is one signal's part in a verdict.
type Contribution struct {
	Signal       Name    `json:"signal"`
	Value        float64 `json:"value"`        // aggregated over the window
	M            float64 `json:"m"`            // normalised, in [0,1]
	Weight       float64 `json:"weight"`       // renormalised over present signals
	Contribution float64 `json:"contribution"` // Weight·M; these sum to D
	Stale        bool    `json:"stale,omitempty"`
	OverWarn     bool    `json:"over_warn,omitempty"`
	OverCrit     bool    `json:"over_crit,omitempty"`
}

// Control is what the control plane (Nova) says about a host.
type Control struct {
	ServiceUp     bool // nova-compute reported up (and not forced down)
	Known         bool // a control-plane observation has been seen
	ServersActive int  // servers Nova reports ACTIVE on the host
}

// Verdict is the evaluator's judgement of one host at one time.
type Verdict struct {
	Host          string         `json:"host"`
	At            time.Time      `json:"t"`
	D             float64        `json:"d"`
	Level         Level          `json:"-"`
	Blind         bool           `json:"blind,omitempty"`
	Triggers      []Name         `json:"triggers,omitempty"` // trigger signals over their critical threshold
	Incoherent    bool           `json:"incoherent,omitempty"`
	Incoherence   string         `json:"incoherence,omitempty"`
	Contributions []Contribution `json:"contributions"`
}

// Top returns the n largest contributions, largest first.
func (v Verdict) Top(n int) []Contribution {
	c := append([]Contribution(nil), v.Contributions...)
	sort.SliceStable(c, func(i, j int) bool { return c[i].Contribution > c[j].Contribution })
	if len(c) > n {
		c = c[:n]
	}
	return c
}

// Explain says in one line why the verdict is what it is.
func (v Verdict) Explain() string {
	if v.Blind {
		return "blind: no fresh signals"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "d=%.2f", v.D)
	for _, t := range v.Triggers {
		fmt.Fprintf(&b, " %s over critical", t)
	}
	var parts []string
	for _, c := range v.Top(3) {
		if c.Contribution > 0 {
			parts = append(parts, fmt.Sprintf("%s=%.4g(%.2f)", c.Signal, c.Value, c.Contribution))
		}
	}
	if len(parts) > 0 {
		b.WriteString(" [" + strings.Join(parts, " ") + "]")
	}
	if v.Incoherent {
		b.WriteString("; execution incoherence: " + v.Incoherence)
	}
	return b.String()
}

// Normalize maps a signal value to m ∈ [0,1] (see the package doc).
func Normalize(x, warn, crit, dWarn, dCrit float64) float64 {
	if !(x > 0) || warn <= 0 || crit <= warn {
		return 0
	}
	var m float64
	switch {
	case x < warn:
		m = dWarn * x / warn
	case x < crit:
		m = dWarn + (dCrit-dWarn)*(x-warn)/(crit-warn)
	default:
		m = dCrit + (dCrit-dWarn)*(x-crit)/(crit-warn)
	}
	return math.Min(m, 1)
}

// Validate checks the relations between the settings.
func (c Config) Validate() error {
	if !(0 < c.DWarn && c.DWarn < c.DCrit && c.DCrit <= 1) {
		return fmt.Errorf("thresholds: need 0 < d_warn < d_crit <= 1, have %g and %g", c.DWarn, c.DCrit)
	}
	if c.StaleAfter <= 0 {
		return fmt.Errorf("stale_after: must be positive")
	}
	var total float64
	for n, s := range c.Signals {
		if !n.Valid() {
			return fmt.Errorf("signals.%s: unknown signal", n)
		}
		if s.Warn <= 0 || s.Crit <= s.Warn {
			return fmt.Errorf("signals.%s: need 0 < warn < crit, have warn %g crit %g", n, s.Warn, s.Crit)
		}
		if s.Weight < 0 {
			return fmt.Errorf("signals.%s.weight: must not be negative", n)
		}
		if s.Window < 0 {
			return fmt.Errorf("signals.%s.window: must not be negative", n)
		}
		if _, err := ParseAgg(string(s.Agg)); err != nil {
			return fmt.Errorf("signals.%s.agg: %w", n, err)
		}
		total += s.Weight
	}
	if total <= 0 {
		return fmt.Errorf("signals: at least one signal needs a positive weight")
	}
	return nil
}

type hostState struct {
	win     [numSignals]window
	control Control
}

const numSignals = 9

func index(n Name) int {
	for i, a := range All {
		if a == n {
			return i
		}
	}
	return -1
}

// Evaluator keeps the windows of every host and produces verdicts. It is not
// safe for concurrent use; the daemon feeds it from one goroutine.
type Evaluator struct {
	cfg     Config
	sig     [numSignals]SignalConfig
	has     [numSignals]bool
	hosts   map[string]*hostState
	scratch []float64
}

// NewEvaluator validates cfg and returns an evaluator.
func NewEvaluator(cfg Config) (*Evaluator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("signals: %w", err)
	}
	e := &Evaluator{cfg: cfg, hosts: map[string]*hostState{}}
	for n, s := range cfg.Signals {
		i := index(n)
		e.sig[i], e.has[i] = s, true
	}
	return e, nil
}

// Config returns the configuration the evaluator runs with.
func (e *Evaluator) Config() Config { return e.cfg }

func (e *Evaluator) host(h string) *hostState {
	hs := e.hosts[h]
	if hs == nil {
		hs = &hostState{}
		e.hosts[h] = hs
	}
	return hs
}

// Observe records a sample. Unknown signal names are an error.
func (e *Evaluator) Observe(s Sample) error {
	i := index(s.Signal)
	if i < 0 {
		return fmt.Errorf("signals: unknown signal %q", s.Signal)
	}
	if math.IsNaN(s.Value) || math.IsInf(s.Value, 0) {
		return fmt.Errorf("signals: %s on %s: value is not a finite number", s.Signal, s.Host)
	}
	e.host(s.Host).win[i].add(s.At, s.Value)
	return nil
}

// ObserveControl records what the control plane says about a host.
func (e *Evaluator) ObserveControl(host string, c Control) {
	c.Known = true
	e.host(host).control = c
}

// Hosts returns the hosts seen so far, sorted.
func (e *Evaluator) Hosts() []string {
	out := make([]string, 0, len(e.hosts))
	for h := range e.hosts {
		out = append(out, h)
	}
	sort.Strings(out)
	return out
}

// Forget drops a host's windows (a host removed from the fleet).
func (e *Evaluator) Forget(host string) { delete(e.hosts, host) }

// Evaluate computes the verdict of a host at now.
func (e *Evaluator) Evaluate(host string, now time.Time) Verdict {
	v := Verdict{Host: host, At: now}
	hs := e.hosts[host]
	if hs == nil {
		v.Blind = true
		return v
	}
	nowS := secs(now)
	staleS := int64(e.cfg.StaleAfter / time.Second)
	var wsum, dsum float64
	v.Contributions = make([]Contribution, 0, numSignals)
	for i := range All {
		if !e.has[i] {
			continue
		}
		sc := e.sig[i]
		w := &hs.win[i]
		last, ok := w.last()
		if !ok {
			continue
		}
		c := Contribution{Signal: All[i], Weight: sc.Weight}
		if nowS-int64(last.at) > staleS {
			c.Stale, c.Weight, c.Value = true, 0, float64(last.v)
			v.Contributions = append(v.Contributions, c)
			continue
		}
		c.Value, e.scratch = w.aggregate(sc.Agg, nowS, int64(sc.Window/time.Second), e.scratch)
		c.M = Normalize(c.Value, sc.Warn, sc.Crit, e.cfg.DWarn, e.cfg.DCrit)
		c.OverWarn, c.OverCrit = c.Value >= sc.Warn, c.Value >= sc.Crit
		if sc.Trigger && c.OverCrit {
			v.Triggers = append(v.Triggers, All[i])
		}
		wsum += sc.Weight
		dsum += sc.Weight * c.M
		v.Contributions = append(v.Contributions, c)
	}
	if wsum == 0 {
		v.Blind = true
		for i := range v.Contributions {
			v.Contributions[i].Weight = 0
		}
		return v
	}
	for i := range v.Contributions {
		c := &v.Contributions[i]
		c.Weight /= wsum
		c.Contribution = c.Weight * c.M
	}
	v.D = dsum / wsum
	switch {
	case v.D >= e.cfg.DCrit || len(v.Triggers) > 0:
		v.Level = LevelCritical
	case v.D >= e.cfg.DWarn:
		v.Level = LevelWarn
	}
	if ctl := hs.control; ctl.Known && (ctl.ServiceUp || ctl.ServersActive > 0) && v.Level == LevelCritical {
		v.Incoherent = true
		says := "service up"
		if !ctl.ServiceUp {
			says = "service down"
		}
		why := fmt.Sprintf("d=%.2f >= d_crit %.2f", v.D, e.cfg.DCrit)
		if len(v.Triggers) > 0 && v.D < e.cfg.DCrit {
			why = string(v.Triggers[0]) + " over its critical threshold"
		}
		v.Incoherence = fmt.Sprintf("control plane says %s with %d servers ACTIVE, but %s", says, ctl.ServersActive, why)
	}
	return v
}
