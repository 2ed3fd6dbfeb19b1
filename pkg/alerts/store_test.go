package alerts

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/fencedhq/fenced/internal/metrics"
	"github.com/fencedhq/fenced/pkg/clock"
	"github.com/fencedhq/fenced/pkg/signals"
)

var t0 = time.Date(2026, 1, 15, 1, 0, 0, 0, time.UTC)

func fixed(v float64) *float64 { return &v }

func newStore(t *testing.T, clk clock.Clock, reg prometheus.Registerer, log zerolog.Logger) *Store {
	t.Helper()
	s, err := New(Config{Clock: clk, Metrics: reg, Log: log, ExpireAfter: time.Minute,
		HostMap: map[string]string{"10.0.0.9": "cmp-009"},
		Rules: map[string]Rule{
			"HostStealHigh":    {Signal: "cpu_steal_pct", ValueFrom: "annotation:steal_pct"},
			"HostRunqueue":     {Signal: "runqueue_per_core", ValueFrom: "label:rq"},
			"LibvirtSlow":      {Signal: "libvirt_latency_p95_ms", Value: fixed(800)},
			"NodeExporterDown": {Weight: 1},
		}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func alert(status, name, host string, kv ...string) Alert {
	a := Alert{Status: status, Labels: map[string]string{"alertname": name}, Annotations: map[string]string{}}
	if host != "" {
		a.Labels["host"] = host
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if k, ok := strings.CutPrefix(kv[i], "label:"); ok {
			a.Labels[k] = kv[i+1]
		} else {
			a.Annotations[kv[i]] = kv[i+1]
		}
	}
	return a
}

func byHost(smp []signals.Sample) map[string][]signals.Alert {
	out := map[string][]signals.Alert{}
	for _, s := range smp {
		if s.Signal != signals.AlertSignal || s.Alert == nil {
			panic("not an alert sample")
		}
		out[s.Host] = append(out[s.Host], *s.Alert)
	}
	return out
}

// TestMapping: each kind of rule, the host label and its map, and every
// reason an alert is ignored.
func TestMapping(t *testing.T) {
	clk := clock.NewFake(t0)
	reg := prometheus.NewRegistry()
	var logs strings.Builder
	s := newStore(t, clk, reg, zerolog.New(&logs))
	res := s.Apply(context.Background(), &Payload{Version: "4", Status: Firing, Alerts: []Alert{
		alert(Firing, "HostStealHigh", "cmp-001", "steal_pct", "41.5"),
		alert(Firing, "HostRunqueue", "10.0.0.9", "label:rq", "6"),
		alert(Firing, "LibvirtSlow", "cmp-001"),
		alert(Firing, "NodeExporterDown", "cmp-002"),
		alert(Firing, "Watchdog", "cmp-001"),
		alert(Firing, "HostStealHigh", ""),
		alert(Firing, "HostStealHigh", "cmp 1"),
		alert(Firing, "HostStealHigh", "cmp-003", "steal_pct", "lots"),
		alert(Firing, "HostStealHigh", "cmp-003", "steal_pct", "-3"),
		alert(Firing, "HostStealHigh", "cmp-003"),
		alert(Firing, "", "cmp-003"),
	}})
	want := map[string]int{IgnoredUnmapped: 1, IgnoredNoHost: 1, IgnoredBadHost: 1, IgnoredBadValue: 3, IgnoredNoName: 1}
	if res.Accepted != 4 || len(res.Ignored) != len(want) {
		t.Fatalf("result %+v", res)
	}
	for k, n := range want {
		if res.Ignored[k] != n {
			t.Errorf("ignored %s = %d, want %d", k, res.Ignored[k], n)
		}
	}
	got := byHost(s.Samples(t0, nil))
	if a := got["cmp-001"]; len(a) != 2 || a[0].Name != "HostStealHigh" || a[0].Signal != signals.CPUSteal || a[0].Value != 41.5 ||
		a[1].Signal != signals.LibvirtLatency || a[1].Value != 800 {
		t.Errorf("cmp-001: %+v", a)
	}
	if a := got["cmp-009"]; len(a) != 1 || a[0].Signal != signals.RunqueuePerCore || a[0].Value != 6 {
		t.Errorf("cmp-009 (host_map): %+v", a)
	}
	if a := got["cmp-002"]; len(a) != 1 || a[0].Signal != "" || a[0].Weight != 1 {
		t.Errorf("cmp-002: %+v", a)
	}
	if len(got) != 3 {
		t.Errorf("hosts %v", got)
	}
	text, _ := metrics.Text(reg)
	for _, w := range []string{"fenced_alerts_received_total 11", `fenced_alerts_accepted_total{status="firing"} 4`,
		`fenced_alerts_ignored_total{reason="bad_value"} 3`, "fenced_alerts_active 4", "fenced_alerts_rejected_payloads_total 0"} {
		if !strings.Contains(text, w+"\n") {
			t.Errorf("metrics lack %s", w)
		}
	}
	// one line per alert, with the B.6 fields (the unmapped one at debug)
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 11 {
		t.Fatalf("%d log lines, want 11:\n%s", len(lines), logs.String())
	}
	for _, f := range []string{`"component":"alerts"`, `"host_id":"cmp-001"`, `"action":"alert_firing"`, `"outcome":"accepted"`, `"request_id":"req-`, `"rpc_latency_ms":0`, `"cpu_steal_pct":41.5`, `"message":"alert received"`} {
		if !strings.Contains(lines[0], f) {
			t.Errorf("first line lacks %s: %s", f, lines[0])
		}
	}
}

// TestResolvedAndExpired: a resolved alert withdraws at once; a firing one
// Alertmanager stops repeating is dropped after ExpireAfter, and a repeat
// renews it.
func TestResolvedAndExpired(t *testing.T) {
	clk := clock.NewFake(t0)
	s := newStore(t, clk, nil, zerolog.Nop())
	ctx := context.Background()
	fire := &Payload{Alerts: []Alert{alert(Firing, "NodeExporterDown", "a"), alert(Firing, "NodeExporterDown", "b")}}
	s.Apply(ctx, fire)
	if n := len(s.Samples(t0, nil)); n != 2 {
		t.Fatalf("%d held", n)
	}
	s.Apply(ctx, &Payload{Alerts: []Alert{alert(Resolved, "NodeExporterDown", "a")}})
	if got := byHost(s.Samples(t0, nil)); len(got) != 1 || got["b"] == nil {
		t.Fatalf("after resolve: %v", got)
	}
	clk.Set(t0.Add(50 * time.Second))
	s.Apply(ctx, &Payload{Alerts: []Alert{alert(Firing, "NodeExporterDown", "b")}}) // repeated: renewed
	if n := len(s.Samples(t0.Add(100*time.Second), nil)); n != 1 {
		t.Fatalf("renewed alert dropped: %d held", n)
	}
	if n := len(s.Samples(t0.Add(111*time.Second), nil)); n != 0 {
		t.Fatalf("expired alert still held: %d", n)
	}
}

// TestMalformedPayloadChangesNothing: a payload refused for one bad alert
// applies none of the good ones before it.
func TestMalformedPayloadChangesNothing(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := newStore(t, clock.NewFake(t0), reg, zerolog.Nop())
	body := `{"version":"4","status":"firing","alerts":[
		{"status":"firing","labels":{"alertname":"NodeExporterDown","host":"a"}},
		{"status":"firing","labels":{"alertname":"NodeExporterDown","host":"b"},"startsAt":"soon"}]}`
	_, err := s.Receive(context.Background(), []byte(body))
	if err == nil || !strings.Contains(err.Error(), "alerts[1].startsAt") {
		t.Fatalf("err = %v", err)
	}
	if n := len(s.Samples(t0, nil)); n != 0 {
		t.Fatalf("%d alerts held from a refused payload", n)
	}
	text, _ := metrics.Text(reg)
	if !strings.Contains(text, "fenced_alerts_rejected_payloads_total 1\n") || !strings.Contains(text, "fenced_alerts_received_total 0\n") {
		t.Errorf("metrics:\n%s", text)
	}
}

func TestRuleCheck(t *testing.T) {
	for _, tc := range []struct {
		r     Rule
		field string
	}{
		{Rule{}, "signal"},
		{Rule{Signal: "cpu_steal_pct", Weight: 1, Value: fixed(1)}, "weight"},
		{Rule{Value: fixed(1)}, "value"},
		{Rule{Weight: 2}, "weight"},
		{Rule{Weight: -1}, "weight"},
		{Rule{Signal: "steal", Value: fixed(1)}, "signal"},
		{Rule{Signal: "cpu_steal_pct"}, "value"},
		{Rule{Signal: "cpu_steal_pct", Value: fixed(1), ValueFrom: "label:x"}, "value"},
		{Rule{Signal: "cpu_steal_pct", Value: fixed(-1)}, "value"},
		{Rule{Signal: "cpu_steal_pct", ValueFrom: "header:x"}, "value_from"},
		{Rule{Signal: "cpu_steal_pct", ValueFrom: "annotation:"}, "value_from"},
	} {
		err := tc.r.Check()
		fe, ok := err.(*FieldError)
		if !ok || fe.Field != tc.field {
			t.Errorf("%+v: %v, want an error on %s", tc.r, err, tc.field)
		}
	}
	for _, r := range []Rule{{Weight: 0.5}, {Signal: "io_latency_p99_ms", Value: fixed(0)}, {Signal: "cpu_steal_pct", ValueFrom: "annotation:value"}} {
		if err := r.Check(); err != nil {
			t.Errorf("%+v: %v", r, err)
		}
	}
}

// TestSourceLeavesUnwatchedHostsOut: alerts join the tick's samples for the
// hosts known up front or reported by the collectors, never adding one.
func TestSourceLeavesUnwatchedHostsOut(t *testing.T) {
	s := newStore(t, clock.NewFake(t0), nil, zerolog.Nop())
	s.Apply(context.Background(), &Payload{Alerts: []Alert{alert(Firing, "NodeExporterDown", "known"),
		alert(Firing, "NodeExporterDown", "seen"), alert(Firing, "NodeExporterDown", "stranger")}})
	src := &Source{Store: s, Hosts: []string{"known"}, Next: nextFunc(func(now time.Time) []signals.Sample {
		return []signals.Sample{{Host: "seen", Signal: signals.CPUSteal, At: now}}
	})}
	smp, err := src.Collect(context.Background(), t0)
	if err != nil {
		t.Fatal(err)
	}
	var hosts []string
	for _, x := range smp {
		if x.Signal == signals.AlertSignal {
			hosts = append(hosts, x.Host)
			if !x.At.Equal(t0) {
				t.Errorf("alert sample at %s, want the tick's time", x.At)
			}
		}
	}
	if strings.Join(hosts, ",") != "known,seen" {
		t.Fatalf("alert samples for %v", hosts)
	}
}

type nextFunc func(time.Time) []signals.Sample

func (f nextFunc) Collect(_ context.Context, now time.Time) ([]signals.Sample, error) {
	return f(now), nil
}
