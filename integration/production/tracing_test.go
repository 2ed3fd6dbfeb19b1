package production

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/fencedhq/fenced/integration/internal/otelcol"
)

// b6Fields are the fields Appendix B.6 asks of every log line of an action
// or external call (zerolog's timestamp is "time").
var b6Fields = []string{"time", "component", "request_id", "rpc_latency_ms", "cpu_steal_pct", "host_id", "vm_id", "action", "outcome"}

// checkTrace: the incident of victim arrived at the OpenTelemetry
// Collector as one trace — the state changes on its root, the playbook's
// actions with the request ids of the audit records, the Nova calls with
// Nova's own request id, the BMC's power operations, the etcd transactions
// and the webhook — and Nova's log names the request id fenced sent; every
// JSON log line of the replicas that names an action has the nine B.6
// fields.
func checkTrace(t *testing.T, col *otelcol.Collector, f *fleet, recs []auditRecord, victims []string) {
	t.Helper()
	spans := col.WaitForSpans(t, 60*time.Second, func(s []otelcol.Span) bool { return incidentOf(s) != nil })
	root := incidentOf(spans)
	var events []string
	for _, e := range root.Events {
		events = append(events, e.Name)
	}
	for _, want := range []string{"→critical", "→awaiting_approval", "→fenced", "→rebooting", "→restored"} {
		if !strings.Contains(strings.Join(events, " "), want) {
			t.Errorf("incident of %s: no state change %s among its events %v", victim, want, events)
		}
	}
	byName := map[string][]otelcol.Span{}
	for _, s := range spans {
		if s.TraceID == root.TraceID {
			byName[s.Name] = append(byName[s.Name], s)
		}
	}
	var names []string
	for n, s := range byName {
		names = append(names, fmt.Sprintf("%s×%d", n, len(s)))
	}
	sort.Strings(names)
	t.Logf("the incident's trace at the Collector: %d spans: %s", len(spans), strings.Join(names, ", "))
	for _, n := range []string{"fenced.action force_down", "nova.force_down", "fenced.action power_off", "redfish.power_off",
		"fenced.action evacuate", "nova.evacuate", "fenced.action power_on", "redfish.power_on", "etcd.txn intent",
		"etcd.txn outcome", "webhook.deliver", "fenced.enter fenced", "fenced.recover"} {
		if len(byName[n]) == 0 {
			t.Errorf("the incident's trace has no %q span", n)
		}
	}
	if n := len(byName["fenced.action evacuate"]); n < len(victims) {
		t.Errorf("%d evacuate spans in the trace, want one per server (%d)", n, len(victims))
	}
	// each action's span carries the B.6 attributes and the request id of
	// its audit records
	audited := map[string]bool{}
	for _, r := range recs {
		if r.RequestID != "" {
			audited[r.RequestID] = true
		}
	}
	var forceDownID string
	for n, ss := range byName {
		if !strings.HasPrefix(n, "fenced.action ") {
			continue
		}
		for _, s := range ss {
			for _, k := range []string{"host_id", "action", "outcome", "request_id", "fence_token", "rpc_latency_ms"} {
				if _, ok := s.Attributes[k]; !ok {
					t.Errorf("span %s has no %s: %v", n, k, s.Attributes)
				}
			}
			id := fmt.Sprint(s.Attributes["request_id"])
			if !audited[id] {
				t.Errorf("span %s: request_id %s is on no audit record", n, id)
			}
			if n == "fenced.action force_down" {
				forceDownID = id
			}
		}
	}
	for _, s := range byName["nova.force_down"] {
		if fmt.Sprint(s.Attributes["openstack.request_id"]) == "" || s.Attributes["openstack.request_id"] == nil {
			t.Errorf("nova.force_down span without Nova's request id: %v", s.Attributes)
		}
	}
	// Nova's log names the request id fenced sent with its force-down
	if forceDownID != "" {
		b, err := os.ReadFile(st.Log("nova-api-uwsgi.log"))
		if err != nil {
			t.Errorf("nova-api log: %v", err)
		} else if !strings.Contains(string(b), forceDownID) {
			t.Errorf("nova-api's log never names %s, the global request id fenced sent with its force-down", forceDownID)
		} else {
			for _, l := range strings.Split(string(b), "\n") {
				if strings.Contains(l, forceDownID) {
					t.Logf("nova-api: %s", l)
					break
				}
			}
		}
	}

	// B.6 fields on every action line of every replica's JSON log
	var lines, actionLines int
	for id, r := range f.replicas {
		if r.proc == nil {
			continue
		}
		sc := bufio.NewScanner(strings.NewReader(r.proc.Output()))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) != nil {
				continue // the replica's start line on stderr is not JSON
			}
			lines++
			if _, ok := m["action"]; !ok {
				continue
			}
			actionLines++
			for _, k := range b6Fields {
				if _, ok := m[k]; !ok {
					t.Errorf("replica %s: log line without %s: %s", id, k, sc.Text())
				}
			}
		}
	}
	if actionLines < 10 {
		t.Errorf("%d action lines among %d JSON log lines: too few to check B.6", actionLines, lines)
	}
	t.Logf("B.6: %d action lines of %d JSON log lines, every one with the nine fields", actionLines, lines)
}

// incidentOf is victim's ended incident span, nil if none arrived.
func incidentOf(spans []otelcol.Span) *otelcol.Span {
	for i, s := range spans {
		if s.Name == "fenced.incident" && fmt.Sprint(s.Attributes["host_id"]) == victim && fmt.Sprint(s.Attributes["outcome"]) == "restored" {
			return &spans[i]
		}
	}
	return nil
}
