package chaos

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"
)

// The invariants of issue 14, each a check that returns what violated it.

// powerAction is the intent action that authorises a reset of this kind.
func powerAction(kind string) string {
	if isOff(kind) {
		return "power_off"
	}
	return "power_on"
}

// unauthorisedPower pairs every reset the BMC accepted since `since` with
// an intent of the same host and action written before it, each intent
// authorising one reset at most. A reset without one is a violation: it
// ran without a prior authorising record, or a second time for one intent.
func unauthorisedPower(recs []record, resets []reset) []string {
	intents := map[string][]record{} // host/action → intents, oldest first
	for _, r := range recs {
		if r.Outcome == "intent" && (r.Action == "power_off" || r.Action == "power_on" || r.Action == "power_cycle") {
			k := r.Host + "/" + r.Action
			intents[k] = append(intents[k], r)
		}
	}
	for k := range intents {
		sort.Slice(intents[k], func(i, j int) bool { return intents[k][i].Timestamp.Before(intents[k][j].Timestamp) })
	}
	sort.Slice(resets, func(i, j int) bool { return resets[i].at.Before(resets[j].at) })
	used := map[string]bool{} // request ids
	var bad []string
	for _, rs := range resets {
		k := rs.host + "/" + powerAction(rs.kind)
		found := false
		for _, in := range intents[k] {
			if in.Timestamp.After(rs.at) {
				break
			}
			if !used[in.RequestID] {
				used[in.RequestID], found = true, true
				break
			}
		}
		if !found {
			bad = append(bad, fmt.Sprintf("%s %s at %s: no unused %s intent before it", rs.host, rs.kind, rs.at.Format("15:04:05.000"), powerAction(rs.kind)))
		}
	}
	return bad
}

// approvedBefore checks that every power intent of host in approve mode
// has an approval of that host recorded before it.
func approvedBefore(recs []record, host string) []string {
	var approved bool
	var bad []string
	for _, r := range recs {
		if r.Host != host {
			continue
		}
		if r.Action == "approve" && r.Outcome == "ok" {
			approved = true
		}
		if r.Outcome == "intent" && strings.HasPrefix(r.Action, "power_") && !approved {
			bad = append(bad, fmt.Sprintf("%s %s intent (seq %d) with no approval before it", host, r.Action, r.Seq))
		}
	}
	return bad
}

// auditVerifies runs `fenced audit verify` against a replica's API.
func (f *fleet) auditVerifies() []string {
	var out []byte
	var err error
	for i := 0; i < 5; i++ {
		if out, err = f.run(f.anyURL(), "audit", "verify"); err == nil {
			return nil
		}
		if !strings.Contains(err.Error(), "unavailable") && !strings.Contains(err.Error(), "connection refused") {
			break
		}
		time.Sleep(2 * time.Second)
	}
	return []string{fmt.Sprintf("fenced audit verify: %v\n%s", err, out)}
}

// pausedEverywhere checks that every running replica reports the
// fleet-wide pause as want.
func (f *fleet) pausedEverywhere(want bool) []string {
	var bad []string
	for _, id := range f.ids {
		p := f.replicas[id].proc
		if p == nil || p.Cmd.ProcessState != nil {
			continue
		}
		var rep hostsReply
		var err error
		for i := 0; i < 10; i++ {
			if rep, err = f.hostsReply(f.url(id)); err == nil && rep.Paused == want {
				break
			}
			time.Sleep(time.Second)
		}
		if err != nil || rep.Paused != want {
			bad = append(bad, fmt.Sprintf("replica %s: paused=%v (%v), want %v", id, rep.Paused, err, want))
		}
	}
	return bad
}

// blindWatch records, from the leader's API, when each host was seen blind.
type blindWatch struct {
	seen map[string][][2]time.Time // host → intervals seen blind
}

func (b *blindWatch) observe(rows map[string]hostRow, at time.Time) {
	if b.seen == nil {
		b.seen = map[string][][2]time.Time{}
	}
	for h, r := range rows {
		if !r.Blind {
			continue
		}
		iv := b.seen[h]
		if n := len(iv); n > 0 && at.Sub(iv[n-1][1]) < 5*time.Second {
			iv[n-1][1] = at
		} else {
			iv = append(iv, [2]time.Time{at, at})
		}
		b.seen[h] = iv
	}
}

// fencedWhileBlind lists the power-off intents written while their host
// was seen blind.
func (b *blindWatch) fencedWhileBlind(recs []record) []string {
	var bad []string
	for _, r := range recs {
		if r.Outcome != "intent" || (r.Action != "power_off" && r.Action != "power_cycle" && r.Action != "force_down") {
			continue
		}
		for _, iv := range b.seen[r.Host] {
			if !r.Timestamp.Before(iv[0]) && !r.Timestamp.After(iv[1]) {
				bad = append(bad, fmt.Sprintf("%s %s intent at %s while blind (%s–%s)", r.Host, r.Action,
					r.Timestamp.Format("15:04:05.000"), iv[0].Format("15:04:05"), iv[1].Format("15:04:05")))
			}
		}
	}
	return bad
}

// checkInvariants runs the checks every trial ends with and fails the test
// with every violation.
func (f *fleet) checkInvariants(t *testing.T, what string, since time.Time) int {
	t.Helper()
	recs, err := f.audit()
	if err != nil {
		t.Fatalf("%s: read the audit: %v", what, err)
	}
	var bad []string
	bad = append(bad, unauthorisedPower(recs, bmc.resets("", since))...)
	bad = append(bad, f.auditVerifies()...)
	if len(bad) > 0 {
		t.Errorf("%s: %d invariant violations:\n  %s", what, len(bad), strings.Join(bad, "\n  "))
	}
	return len(bad)
}
