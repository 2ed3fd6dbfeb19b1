package daemon_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/fencedhq/fenced/pkg/clock"
	"github.com/fencedhq/fenced/pkg/daemon"
	"github.com/fencedhq/fenced/pkg/lab"
	"github.com/fencedhq/fenced/pkg/lease"
	"github.com/fencedhq/fenced/pkg/playbook"
	"github.com/fencedhq/fenced/pkg/policy"
)

// syncBuffer is a log sink several goroutines write to.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// B6Fields are the fields Appendix B.6 asks of every log line of an action
// or an external call (zerolog's timestamp is "time").
var b6Fields = []string{"time", "component", "request_id", "rpc_latency_ms", "cpu_steal_pct", "host_id", "vm_id", "action", "outcome"}

// TestOneTraceFromCriticalToRestored: a replica in auto mode fences the
// lab's starving host and recovers it (power off, evacuate, power on). Its
// incident is one trace: the root carries each state change as an event and
// ends at restored; every action of the recovery, the etcd transactions
// that journal them and the state entries are in it, with the B.6
// attributes and the fencing token. Every log line that names an action
// carries all nine B.6 fields.
func TestOneTraceFromCriticalToRestored(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd")
	}
	endpoints := startEtcd(t)
	clk := clock.NewScaled(60)
	world := lab.NewWorld(clk.Now, 30*time.Second, policy.Default().SignalsConfig())
	gen := lab.NewGenerator(12, clk.Now(), 0, world)
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	var logs syncBuffer
	p, err := policy.Default().WithMode("auto")
	if err != nil {
		t.Fatal(err)
	}
	cli, err := lease.Connect(lease.ClientConfig{Endpoints: endpoints})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	d, err := daemon.NewReplica(context.Background(), daemon.ReplicaConfig{Policy: p, Clock: clk,
		Log: zerolog.New(&logs).With().Timestamp().Logger(), Tick: 5 * time.Second, Etcd: cli, ID: "a",
		TTL: 3 * time.Second, Settle: time.Second, Backends: world.Backends(gen), Tracer: tp})
	if err != nil {
		t.Fatal(err)
	}
	world.SetViews(d)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	victim := gen.Victim
	waitUntil(t, victim+" rebooting", 3*time.Minute, func() bool { return hostRecord(d, victim).State == playbook.Rebooting })
	waitUntil(t, victim+" restored", 3*time.Minute, func() bool { return inService(d, victim) })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	spans := exp.GetSpans()
	var root *tracetest.SpanStub
	for i, s := range spans {
		if s.Name == "fenced.incident" && attr(s, "host_id") == victim {
			root = &spans[i]
		}
	}
	if root == nil {
		t.Fatalf("no ended fenced.incident span for %s among %d spans", victim, len(spans))
	}
	var events []string
	for _, e := range root.Events {
		events = append(events, e.Name)
	}
	for _, want := range []string{"→critical", "→fenced", "→rebooting", "→restored"} {
		if !strings.Contains(strings.Join(events, " "), want) {
			t.Errorf("incident events %v: no state change %s", events, want)
		}
	}
	if attr(*root, "outcome") != "restored" {
		t.Errorf("incident outcome %q, want restored", attr(*root, "outcome"))
	}
	tid := root.SpanContext.TraceID()
	byName := map[string][]tracetest.SpanStub{}
	for _, s := range spans {
		if s.SpanContext.TraceID() == tid {
			byName[s.Name] = append(byName[s.Name], s)
		}
	}
	for _, name := range []string{"fenced.enter critical", "fenced.action force_down", "fenced.action power_off",
		"fenced.action evacuate", "fenced.action power_on", "fenced.recover", "etcd.txn intent", "etcd.txn outcome", "etcd.txn audit_append"} {
		if len(byName[name]) == 0 {
			t.Errorf("the incident's trace has no %q span (has %v)", name, keys(byName))
		}
	}
	for _, name := range []string{"fenced.action power_off", "fenced.action evacuate", "fenced.action power_on"} {
		for _, s := range byName[name] {
			for _, k := range []string{"host_id", "action", "outcome", "request_id", "fence_token"} {
				if attr(s, k) == "" {
					t.Errorf("span %s has no %s attribute: %v", name, k, s.Attributes)
				}
			}
			if attr(s, "host_id") != victim || attr(s, "outcome") != "ok" || !strings.HasPrefix(attr(s, "request_id"), "req-") {
				t.Errorf("span %s: host_id %q outcome %q request_id %q", name, attr(s, "host_id"), attr(s, "outcome"), attr(s, "request_id"))
			}
			if s.Parent.TraceID() != tid || !s.Parent.IsValid() {
				t.Errorf("span %s is not a descendant of the incident", name)
			}
		}
	}
	if s := byName["fenced.action evacuate"]; len(s) > 0 && attr(s[0], "vm_id") == "" {
		t.Errorf("evacuate span names no vm_id: %v", s[0].Attributes)
	}
	// the intent of an action is its child: written under the same request id
	for _, in := range byName["etcd.txn intent"] {
		if attr(in, "request_id") == "" {
			t.Errorf("intent transaction without request_id: %v", in.Attributes)
		}
	}

	// B.6: every log line naming an action has all nine fields
	var actionLines, seen int
	sc := bufio.NewScanner(strings.NewReader(logs.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line is not JSON: %v: %s", err, sc.Text())
		}
		seen++
		if _, ok := m["action"]; !ok {
			continue
		}
		actionLines++
		for _, f := range b6Fields {
			if _, ok := m[f]; !ok {
				t.Errorf("log line without %s: %s", f, sc.Text())
			}
		}
		if m["action"] == "power_off" && m["message"] == "action" && (m["host_id"] != victim || m["fence_token"] == nil) {
			t.Errorf("power_off line: host_id %v fence_token %v", m["host_id"], m["fence_token"])
		}
	}
	if actionLines < 10 {
		t.Fatalf("%d action lines among %d log lines: the run logged too little to check", actionLines, seen)
	}
}

// attr is the span's attribute k as a string ("" when absent).
func attr(s tracetest.SpanStub, k string) string {
	for _, a := range s.Attributes {
		if string(a.Key) == k {
			return a.Value.Emit()
		}
	}
	return ""
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
