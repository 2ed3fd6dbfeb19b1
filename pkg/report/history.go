package report

import (
	"strings"
	"time"

	"github.com/fencedhq/fenced/pkg/audit"
)

// History is a host's recent past as the API kept it: d and the state at
// each tick, and each signal's value and contribution to d from Detail on
// (signal detail is kept only for hosts that left normal or came near warn:
// the API's memory stays bounded at 10,000 hosts).
type History struct {
	T       []time.Time `json:"t"`
	D       []float64   `json:"d"`
	State   []string    `json:"state"`
	Detail  int         `json:"detail_from"` // index into T where Signals start
	Signals []Series    `json:"signals,omitempty"`
}

// Series is one signal through the history, from History.Detail on.
type Series struct {
	Signal       string    `json:"signal"`
	Warn         float64   `json:"warn"`
	Crit         float64   `json:"crit"`
	Value        []float64 `json:"value"`
	Contribution []float64 `json:"contribution"`
}

// Thresholds are d's warn and critical lines (policy thresholds).
type Thresholds struct {
	Warn float64 `json:"d_warn"`
	Crit float64 `json:"d_crit"`
}

// Gate is the live-migration gate's last answer for the host (audit action
// live_migration_gate): open or closed, the chosen destination, why.
type Gate struct {
	At          time.Time `json:"t"`
	Outcome     string    `json:"outcome"`
	Destination string    `json:"destination,omitempty"`
	Detail      string    `json:"detail,omitempty"`
}

// Extras are what the incident view adds to the postmortem: the history,
// the thresholds, the servers on the host, the daemon's clock.
type Extras struct {
	At         time.Time
	History    *History
	Thresholds Thresholds
	Servers    []string
}

// WithExtras adds the incident view's parts to a built report.
func (r Report) WithExtras(recs []audit.Record, e Extras) Report {
	r.At, r.History, r.Thresholds, r.Servers = e.At, e.History, &e.Thresholds, e.Servers
	for _, rec := range recs {
		if rec.Action != "live_migration_gate" {
			continue
		}
		g := Gate{At: rec.Timestamp, Outcome: rec.Outcome, Detail: rec.Detail}
		if rest, ok := strings.CutPrefix(rec.Detail, "destination "); ok {
			g.Destination, g.Detail, _ = strings.Cut(rest, "; ")
		}
		r.Gate = &g
	}
	return r
}
