// Package report builds the postmortem of one host: timeline, the verdict
// behind each decision, the actions taken with their outcomes, the layered
// oversubscription r1, r2 and r_eff ≈ r1·r2 (section 2.4 of the paper), and a
// recommendation in the spirit of section 6.3 (overcommit is a reliability
// control).
package report

import (
	"fmt"
	"strings"
	"time"

	"github.com/fencedhq/fenced/pkg/audit"
	"github.com/fencedhq/fenced/pkg/fleet"
	"github.com/fencedhq/fenced/pkg/playbook"
)

// Capacity is what the control plane says a host holds.
type Capacity struct {
	Cores int     `json:"cores"` // C: physical cores
	VCPUs int     `json:"vcpus"` // V: vCPUs of the servers on it
	R2    float64 `json:"r2"`    // P/v inside the VMs (pod CPU over vCPUs); 0 when unknown
	Known bool    `json:"known"`
}

// Report is the postmortem.
type Report struct {
	Host           string         `json:"host"`
	State          string         `json:"state"`
	Onset          time.Time      `json:"onset,omitzero"`
	Timeline       []audit.Record `json:"timeline"` // transitions and operator commands
	Actions        []audit.Record `json:"actions"`  // intents and outcomes
	Chain          []ChainStep    `json:"chain"`    // the recovery chain as it ran, every episode in order
	Signals        any            `json:"signals"`  // the current verdict's contributions
	R1             float64        `json:"r1,omitempty"`
	R2             float64        `json:"r2,omitempty"`
	REff           float64        `json:"r_eff,omitempty"`
	Recommendation string         `json:"recommendation"`
	// The incident view's parts (WithExtras; absent from a report built
	// without them): the daemon's clock, d and the signals through the
	// last ticks, d's thresholds, the gate's last answer, the servers.
	At         time.Time   `json:"t,omitzero"`
	History    *History    `json:"history,omitempty"`
	Thresholds *Thresholds `json:"thresholds,omitempty"`
	Gate       *Gate       `json:"gate,omitempty"`
	Servers    []string    `json:"servers,omitempty"`
}

// ChainStep is one step of the recovery chain as it ran, from its audit
// records (the step's start and end share a request id).
type ChainStep struct {
	Step      string    `json:"step"` // live_migrate, power_cycle, evacuate
	RequestID string    `json:"request_id,omitempty"`
	Start     time.Time `json:"start"`
	End       time.Time `json:"end,omitzero"`
	// Outcome is ok, failed, timeout or skipped; running while the host is
	// still in it, unfinished when the host left the recovery otherwise (an
	// operator's unfence, a deadline).
	Outcome string `json:"outcome"`
	Plan    string `json:"plan,omitempty"`   // what its start said: step i of n, timeout, condition
	Detail  string `json:"detail,omitempty"` // why it ended
}

// SafeREff is the effective contention above which we recommend lowering
// overcommit. Chosen conservatively: the paper's management path fails well
// before r_eff = 3; the B.4 lab measures where on a given machine.
const SafeREff = 2.0

// Build assembles a report from a host's view, its audit records and capacity.
func Build(v fleet.View, recs []audit.Record, c Capacity) Report {
	r := Report{Host: v.Host.Name, State: string(v.Host.State), Onset: v.Host.Onset, Signals: v.Verdict.Contributions,
		Timeline: []audit.Record{}, Actions: []audit.Record{}, Chain: []ChainStep{}}
	open := map[string]int{} // request id → index in Chain of a step not ended yet
	for _, rec := range recs {
		step, isStep := strings.CutPrefix(rec.Action, "recovery ")
		switch {
		case isStep && rec.Component == "playbook":
			i, ok := open[rec.RequestID]
			if rec.Outcome == "started" || !ok {
				r.Chain = append(r.Chain, ChainStep{Step: step, RequestID: rec.RequestID, Start: rec.Timestamp})
				i = len(r.Chain) - 1
			}
			if rec.Outcome == "started" {
				r.Chain[i].Plan = rec.Detail
				open[rec.RequestID] = i
				continue
			}
			delete(open, rec.RequestID)
			r.Chain[i].End, r.Chain[i].Outcome, r.Chain[i].Detail = rec.Timestamp, rec.Outcome, rec.Detail
		case strings.HasPrefix(rec.Action, "transition ") || rec.Operator != "":
			r.Timeline = append(r.Timeline, rec)
		case rec.Component == "playbook":
			r.Actions = append(r.Actions, rec)
		}
	}
	for _, i := range open {
		r.Chain[i].Outcome = "unfinished"
		if last := i == len(r.Chain)-1; last && (v.Host.State == playbook.Fenced || v.Host.State == playbook.Rebooting) {
			r.Chain[i].Outcome = "running"
		}
	}
	if c.Known && c.Cores > 0 {
		r.R1 = float64(c.VCPUs) / float64(c.Cores)
		r.R2 = c.R2
		r.REff = r.R1
		if c.R2 > 0 {
			r.REff = r.R1 * c.R2
		}
	}
	r.Recommendation = recommend(r, c)
	return r
}

func recommend(r Report, c Capacity) string {
	if !c.Known || c.Cores == 0 {
		return "capacity unknown: compute r1 = V/C from Nova's hypervisor view and r2 = P/v from the pods' CPU requests before deciding"
	}
	if r.REff <= SafeREff {
		return fmt.Sprintf("r_eff ≈ %.2f is within %.1f: look for a transient cause (noisy neighbour, host fault) before touching overcommit", r.REff, SafeREff)
	}
	target := SafeREff
	if r.R2 > 0 {
		target = SafeREff / r.R2
	}
	return fmt.Sprintf("r_eff ≈ %.2f (r1 %.2f × r2 %.2f) exceeds %.1f: lower the CPU allocation ratio so r1 ≤ %.2f, or cap pod requests inside the VMs, and keep headroom for recovery (live migration needs CPU on both ends)",
		r.REff, r.R1, max(r.R2, 1), SafeREff, target)
}
