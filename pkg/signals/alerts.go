package signals

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// AlertSignal is not a signal: a Sample with this name carries an Alert,
// another system's alert about the host (Alertmanager's, through
// pkg/alerts). It never enters a window and never counts in d. Traces do
// not hold it (it is not one of the nine), so a replay sees no alerts.
const AlertSignal Name = "alert"

// Alert is one alert firing for a host, as its mapping reads it: either a
// value of one of the nine signals, or a corroboration weight.
type Alert struct {
	Name   string  `json:"name"`             // the alert's alertname
	Signal Name    `json:"signal,omitempty"` // the signal it speaks for, with Value
	Value  float64 `json:"value,omitempty"`
	Weight float64 `json:"weight,omitempty"` // a corroboration weight in (0,1] (no Signal)
	// Score is how strongly the alert speaks, on d's scale: Value
	// normalised on Signal's thresholds (m), or Weight. Set by Evaluate.
	Score float64 `json:"score"`
}

// Alerts are one source, independent of fenced's own (the collectors,
// Nova, libvirt, the BMC), and never sufficient on their own:
//
//   - They never enter d. Their score A is the largest m of the signal
//     alerts (each value normalised on its signal's thresholds) or the sum
//     of the weights (capped at 1), whichever is larger.
//   - A ≥ d_warn raises a normal verdict to warn (scheduling frozen, on-call
//     paged), and no further: alerts alone never make a host critical.
//   - In the corroborated hard-failure rule, A ≥ d_crit stands in for the
//     libvirt probe when there is none, or when it has failed at least once
//     but fewer times than the rule asks. Nova's stale heartbeat is still
//     required, a libvirt that answers or a BMC powering the host on or off
//     still contradicts: alerts never stand in for Nova, and never outvote
//     a source that says the host executes.
//   - A blind host stays blind, and an agent-failure verdict is unchanged.
//
// A host without alerts is judged exactly as before.
func (e *Evaluator) observeAlert(s Sample) error {
	a := s.Alert
	if a == nil {
		return fmt.Errorf("signals: %s sample on %s without an alert", AlertSignal, s.Host)
	}
	switch {
	case a.Name == "":
		return fmt.Errorf("signals: alert on %s without a name", s.Host)
	case a.Signal == "" && !(a.Weight > 0 && a.Weight <= 1):
		return fmt.Errorf("signals: alert %s on %s: weight %g not in (0,1]", a.Name, s.Host, a.Weight)
	case a.Signal != "" && !a.Signal.Valid():
		return fmt.Errorf("signals: alert %s on %s: unknown signal %q", a.Name, s.Host, a.Signal)
	case a.Signal != "" && (!(a.Value >= 0) || math.IsInf(a.Value, 0)):
		return fmt.Errorf("signals: alert %s on %s: value %g is not a finite number >= 0", a.Name, s.Host, a.Value)
	}
	hs := e.host(s.Host)
	switch {
	case s.At.After(hs.alertsAt):
		hs.alerts, hs.alertsAt = hs.alerts[:0], s.At
	case s.At.Before(hs.alertsAt):
		return nil // an older set than the one held
	}
	hs.alerts = append(hs.alerts, *a)
	return nil
}

// currentAlerts returns the host's alerts that speak for now, scored, and their
// score A. A set of alerts speaks for the time it was observed at only:
// the source sends every host's full set at each tick, so a host whose
// alerts were withdrawn has none at the next.
func (s *Scoring) currentAlerts(hs *hostState, now time.Time) ([]Alert, float64) {
	if len(hs.alerts) == 0 || !hs.alertsAt.Equal(now) {
		return nil, 0
	}
	out := make([]Alert, len(hs.alerts))
	var top, weights float64
	for i, a := range hs.alerts {
		if a.Signal != "" {
			if i := index(a.Signal); i >= 0 && s.has[i] {
				sc := s.sig[i]
				a.Score = Normalize(a.Value, sc.Warn, sc.Crit, s.cfg.DWarn, s.cfg.DCrit)
			}
			top = math.Max(top, a.Score)
		} else {
			a.Score = a.Weight
			weights += a.Weight
		}
		out[i] = a
	}
	return out, math.Max(top, math.Min(weights, 1))
}

// alertNames is "HostStealHigh cpu_steal_pct=45 (1.00), NodeDown (0.50)".
func alertNames(as []Alert) string {
	parts := make([]string, 0, len(as))
	for _, a := range as {
		if a.Signal != "" {
			parts = append(parts, fmt.Sprintf("%s %s=%.4g (%.2f)", a.Name, a.Signal, a.Value, a.Score))
		} else {
			parts = append(parts, fmt.Sprintf("%s (%.2f)", a.Name, a.Score))
		}
	}
	return strings.Join(parts, ", ")
}
