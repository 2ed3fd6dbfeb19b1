package signals

import (
	"fmt"
	"math"
	"slices"
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
	Signals     map[Name]SignalConfig
	DWarn       float64
	DCrit       float64
	StaleAfter  time.Duration // a signal with no sample for this long is stale
	HardFailure HardFailure
}

// HardFailure is the corroborated hard-failure rule: a host whose libvirt
// stopped answering and whose compute agent stopped heartbeating no longer
// executes, unless its BMC says otherwise. Two independent sources must
// agree; neither alone triggers it.
type HardFailure struct {
	// LibvirtProbes: the libvirt probe lost its connection or timed out
	// this many times in a row (default 3).
	LibvirtProbes int
	// HeartbeatIntervals: Nova's last heartbeat of the host is older than
	// this many report intervals (default 2).
	HeartbeatIntervals float64
}

// Defaults of the hard-failure rule.
const (
	DefaultHardFailureProbes    = 3
	DefaultHardFailureIntervals = 2.0
)

func (h HardFailure) withDefaults() HardFailure {
	if h.LibvirtProbes == 0 {
		h.LibvirtProbes = DefaultHardFailureProbes
	}
	if h.HeartbeatIntervals == 0 {
		h.HeartbeatIntervals = DefaultHardFailureIntervals
	}
	return h
}

// AgentDownReason starts the reason of every agent-failure verdict.
const AgentDownReason = "control-plane agent down, execution healthy"

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
	// Discounted: left out of d because it measures the compute agent, not
	// execution (heartbeat lag of an agent-failure verdict).
	Discounted bool `json:"discounted,omitempty"`
	OverWarn   bool `json:"over_warn,omitempty"`
	OverCrit   bool `json:"over_crit,omitempty"`
}

// Control is what is known of a host beyond its signals: what the control
// plane (Nova) says, and whether its management paths still answer. The
// evaluator weighs these as independent sources for the hard-failure rule
// and the agent-failure verdict.
type Control struct {
	ServiceUp     bool     // nova-compute reported up (and not forced down)
	ForcedDown    bool     // the service is forced down (by fenced or an operator)
	Known         bool     // a control-plane observation has been seen
	ServersActive int      // servers Nova reports ACTIVE on the host
	ActiveServers []string // their names (possibly only the first few), for messages

	// HeartbeatAge is how long ago the compute agent last heartbeat
	// (fenced's own service writes excluded); meaningful if HeartbeatKnown.
	HeartbeatAge   time.Duration
	HeartbeatKnown bool
	ReportInterval time.Duration // Nova's report_interval

	// Libvirt is the libvirt probe's view; zero when no probe watches the host.
	Libvirt Liveness
	// BMCPower is the BMC's last power state reading ("On", "Off",
	// "PoweringOn", "PoweringOff"); "" when no BMC is configured or it has
	// not answered.
	BMCPower string
}

// Liveness is a libvirt probe's view of the host's management path.
type Liveness struct {
	Probed   bool // a probe watches the host
	Answered bool // the daemon has answered at least once
	// Failures counts the probes in a row that lost the connection, could
	// not connect or timed out; 0 when the last probe was answered.
	Failures int
}

// Verdict is the evaluator's judgement of one host at one time.
type Verdict struct {
	Host        string    `json:"host"`
	At          time.Time `json:"t"`
	D           float64   `json:"d"`
	Level       Level     `json:"-"`
	Blind       bool      `json:"blind,omitempty"`
	Triggers    []Name    `json:"triggers,omitempty"` // trigger signals over their critical threshold
	Incoherent  bool      `json:"incoherent,omitempty"`
	Incoherence string    `json:"incoherence,omitempty"`
	// HardFailure says why the corroborated hard-failure rule holds: the
	// host no longer executes (critical without dwell).
	HardFailure string `json:"hard_failure,omitempty"`
	// AgentDown says why the host's compute agent is down while execution
	// is healthy: freeze scheduling and page, never fence.
	AgentDown     string         `json:"agent_down,omitempty"`
	Contributions []Contribution `json:"contributions"`
	// Alerts are the alerts firing for the host (Alertmanager's): one
	// source beside fenced's own, never in d (see Alert).
	Alerts []Alert `json:"alerts,omitempty"`
	// AlertWarn says why alerts raised a normal verdict to warn, the
	// furthest alerts alone go.
	AlertWarn string `json:"alert_warn,omitempty"`
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
	switch {
	case v.AgentDown != "":
		fmt.Fprintf(&b, "%s (%s); ", AgentDownReason, v.AgentDown)
	case v.HardFailure != "":
		fmt.Fprintf(&b, "hard failure (%s); ", v.HardFailure)
	case v.AlertWarn != "":
		fmt.Fprintf(&b, "alerts (%s); ", v.AlertWarn)
	}
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
	if c.HardFailure.LibvirtProbes < 0 {
		return fmt.Errorf("hard_failure.libvirt_probes: must be at least 1")
	}
	if hi := c.HardFailure.HeartbeatIntervals; hi != 0 && !(hi >= 1 && hi <= 100) {
		return fmt.Errorf("hard_failure.heartbeat_intervals: must be between 1 and 100, have %g", hi)
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
	// alerts is the newest set of alerts observed, at alertsAt
	alerts   []Alert
	alertsAt time.Time
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
	*Scoring // the configuration every host is weighed with, unless EvaluateWith says otherwise
	hosts    map[string]*hostState
	scratch  []float64
}

// Scoring is a validated Config, ready to weigh a host's windows with: the
// evaluator's own, or a group's (a policy with per-group overrides) given
// to EvaluateWith. Immutable.
type Scoring struct {
	cfg Config
	sig [numSignals]SignalConfig
	has [numSignals]bool
}

// Compile validates cfg and prepares it for EvaluateWith.
func Compile(cfg Config) (*Scoring, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("signals: %w", err)
	}
	cfg.HardFailure = cfg.HardFailure.withDefaults()
	s := &Scoring{cfg: cfg}
	for n, sc := range cfg.Signals {
		i := index(n)
		s.sig[i], s.has[i] = sc, true
	}
	return s, nil
}

// Config returns the configuration the scoring was compiled from.
func (s *Scoring) Config() Config { return s.cfg }

// NewEvaluator validates cfg and returns an evaluator.
func NewEvaluator(cfg Config) (*Evaluator, error) {
	s, err := Compile(cfg)
	if err != nil {
		return nil, err
	}
	return &Evaluator{Scoring: s, hosts: map[string]*hostState{}}, nil
}

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
	if s.Signal == AlertSignal {
		return e.observeAlert(s)
	}
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
	return e.EvaluateWith(host, now, nil)
}

// EvaluateWith computes the verdict of a host at now, weighing its windows
// with s (its group's policy) instead of the evaluator's own configuration
// (s nil). The windows are the host's whatever the scoring: a host that
// changes group keeps its history.
func (e *Evaluator) EvaluateWith(host string, now time.Time, s *Scoring) Verdict {
	if s == nil {
		s = e.Scoring
	}
	v := Verdict{Host: host, At: now}
	hs := e.hosts[host]
	if hs == nil {
		v.Blind = true
		return v
	}
	var alertScore float64
	v.Alerts, alertScore = s.currentAlerts(hs, now)
	nowS := secs(now)
	staleS := int64(s.cfg.StaleAfter / time.Second)
	var wsum, dsum float64
	v.Contributions = make([]Contribution, 0, numSignals)
	for i := range All {
		if !s.has[i] {
			continue
		}
		sc := s.sig[i]
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
		c.M = Normalize(c.Value, sc.Warn, sc.Crit, s.cfg.DWarn, s.cfg.DCrit)
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
	ctl := hs.control
	if ctl.Known {
		if why := s.hardFailure(ctl, v.Alerts, alertScore); why != "" {
			v.HardFailure = why
		} else if why := s.agentDown(ctl, v.Contributions); why != "" {
			// the heartbeat measures the agent, not execution: it neither
			// counts in d nor triggers
			v.AgentDown = why
			v.Triggers = slices.DeleteFunc(v.Triggers, func(n Name) bool { return n == HeartbeatLag })
			for i := range v.Contributions {
				if c := &v.Contributions[i]; c.Signal == HeartbeatLag && !c.Stale {
					wsum -= c.Weight
					dsum -= c.Weight * c.M
					c.Weight, c.Discounted = 0, true
				}
			}
		}
	}
	if wsum <= 0 {
		wsum, dsum = 1, 0 // only the discounted heartbeat was fresh
	}
	for i := range v.Contributions {
		c := &v.Contributions[i]
		c.Weight /= wsum
		c.Contribution = c.Weight * c.M
	}
	v.D = dsum / wsum
	switch {
	case v.D >= s.cfg.DCrit || len(v.Triggers) > 0 || v.HardFailure != "":
		v.Level = LevelCritical
	case v.D >= s.cfg.DWarn || v.AgentDown != "":
		v.Level = LevelWarn
	case alertScore >= s.cfg.DWarn:
		// alerts alone go as far as warn, never further
		v.Level = LevelWarn
		v.AlertWarn = fmt.Sprintf("alert score %.2f >= d_warn %.2f: %s; alerts alone never go past warn", alertScore, s.cfg.DWarn, alertNames(v.Alerts))
	}
	if ctl.Known && (ctl.ServiceUp || ctl.ServersActive > 0) && v.Level == LevelCritical {
		v.Incoherent = true
		says := "service up"
		if !ctl.ServiceUp {
			says = "service down"
		}
		why := fmt.Sprintf("d=%.2f >= d_crit %.2f", v.D, s.cfg.DCrit)
		switch {
		case v.HardFailure != "":
			why = "the host no longer executes"
		case len(v.Triggers) > 0 && v.D < s.cfg.DCrit:
			why = string(v.Triggers[0]) + " over its critical threshold"
		}
		v.Incoherence = fmt.Sprintf("control plane says %s with %s, but %s", says, activeServers(ctl), why)
	}
	return v
}

// activeServers says which servers Nova reports ACTIVE: "3 servers ACTIVE
// (web-1, web-2, db-1)".
func activeServers(ctl Control) string {
	n := ctl.ServersActive
	noun := "servers"
	if n == 1 {
		noun = "server"
	}
	out := fmt.Sprintf("%d %s ACTIVE", n, noun)
	if len(ctl.ActiveServers) > 0 {
		names := ctl.ActiveServers
		more := ""
		if len(names) > 5 {
			names, more = names[:5], fmt.Sprintf(", and %d more", n-5)
		}
		out += " (" + strings.Join(names, ", ") + more + ")"
	}
	return out
}

// heartbeatStale reports whether Nova's last heartbeat of the host is older
// than the rule's number of report intervals.
func (s *Scoring) heartbeatStale(ctl Control) bool {
	limit := time.Duration(s.cfg.HardFailure.HeartbeatIntervals * float64(ctl.ReportInterval))
	return ctl.HeartbeatKnown && ctl.ReportInterval > 0 && ctl.HeartbeatAge > limit
}

// hardFailure returns why the corroborated hard-failure rule holds, or "".
// It takes libvirt failing LibvirtProbes times in a row AND a heartbeat
// older than HeartbeatIntervals report intervals AND a BMC that does not
// contradict (one reporting the host powering on or off is in someone
// else's hands; a silent or absent BMC says nothing either way).
//
// Alerts scoring at least d_crit stand in for the libvirt probe when the
// host has none, or when its probe failed at least once but fewer times
// than the rule asks; never for Nova's heartbeat, never against a libvirt
// that answers (see Alert).
func (s *Scoring) hardFailure(ctl Control, alerts []Alert, alertScore float64) string {
	hf := s.cfg.HardFailure
	lv := ctl.Libvirt
	if !s.heartbeatStale(ctl) {
		return ""
	}
	var libvirt string
	switch {
	case lv.Probed && lv.Failures >= hf.LibvirtProbes:
		libvirt = fmt.Sprintf("libvirt failed %d probes in a row", lv.Failures)
	case alertScore < s.cfg.DCrit:
		return ""
	case !lv.Probed:
		libvirt = fmt.Sprintf("no libvirt probe; alerts corroborate (%s)", alertNames(alerts))
	case lv.Failures > 0:
		libvirt = fmt.Sprintf("libvirt failed %d probes in a row and alerts corroborate (%s)", lv.Failures, alertNames(alerts))
	default:
		return "" // libvirt answers: the host executes, whatever the alerts say
	}
	if ctl.BMCPower == "PoweringOn" || ctl.BMCPower == "PoweringOff" {
		return ""
	}
	bmc := "no BMC reading"
	if ctl.BMCPower != "" {
		bmc = "BMC power " + ctl.BMCPower
	}
	return fmt.Sprintf("%s, Nova heartbeat %s old (> %g report intervals of %s), %s",
		libvirt, ctl.HeartbeatAge.Round(time.Second), hf.HeartbeatIntervals, ctl.ReportInterval, bmc)
}

// agentDown returns why the host's compute agent is down while execution is
// healthy, or "": Nova's heartbeat is stale (or Nova says the service is
// down without anyone forcing it), yet libvirt answered its last probe and
// every weighted execution signal is under its warn threshold.
func (s *Scoring) agentDown(ctl Control, cs []Contribution) string {
	lv := ctl.Libvirt
	if !lv.Probed || !lv.Answered || lv.Failures > 0 {
		return ""
	}
	var why string
	switch {
	case s.heartbeatStale(ctl):
		why = fmt.Sprintf("Nova heartbeat %s old, report interval %s", ctl.HeartbeatAge.Round(time.Second), ctl.ReportInterval)
	case !ctl.ServiceUp && !ctl.ForcedDown:
		why = "Nova says nova-compute is down"
	default:
		return ""
	}
	for _, c := range cs {
		if c.Signal != HeartbeatLag && !c.Stale && c.Weight > 0 && c.OverWarn {
			return "" // execution is not healthy: the ordinary rules apply
		}
	}
	return why + "; libvirt answers and the execution signals are under warn"
}
