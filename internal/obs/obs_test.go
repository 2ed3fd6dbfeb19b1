package obs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/fencedhq/fenced/pkg/clock"
)

func TestCallCarriesTheContextFieldsToSpanAndLine(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	clk := clock.NewFake(time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC))
	var buf bytes.Buffer
	log := zerolog.New(&buf)

	ctx := With(context.Background(), Fields{HostID: "cmp-001", FenceToken: 42, CPUStealPct: 37.5, RequestID: "req-a"})
	ctx = With(ctx, Fields{VMID: "vm-1"}) // adds, keeps the rest
	_, call := Start(ctx, Tracer(tp), clk, "nova.evacuate", Fields{Component: "nova", Action: "evacuate"}, trace.SpanKindClient)
	clk.Advance(1500 * time.Millisecond)
	call.End(log.Warn(), "error", errors.New("boom")).Msg("nova call")

	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"component": "nova", "request_id": "req-a", "rpc_latency_ms": 1500.0, "cpu_steal_pct": 37.5,
		"host_id": "cmp-001", "vm_id": "vm-1", "action": "evacuate", "outcome": "error", "fence_token": 42.0, "error": "boom"}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("line %s = %v, want %v", k, line[k], v)
		}
	}
	spans := exp.GetSpans()
	if len(spans) != 1 {
		t.Fatalf("%d spans, want 1", len(spans))
	}
	s := spans[0]
	got := map[string]string{}
	for _, a := range s.Attributes {
		got[string(a.Key)] = a.Value.Emit()
	}
	for k, v := range map[string]string{"host_id": "cmp-001", "vm_id": "vm-1", "action": "evacuate", "component": "nova",
		"request_id": "req-a", "fence_token": "42", "outcome": "error", "rpc_latency_ms": "1500"} {
		if got[k] != v {
			t.Errorf("span %s = %q, want %q", k, got[k], v)
		}
	}
	if s.Status.Code != codes.Error || s.SpanKind != trace.SpanKindClient {
		t.Errorf("status %v kind %v", s.Status, s.SpanKind)
	}
}

func TestLogHasEveryB6FieldEvenUnknown(t *testing.T) {
	var buf bytes.Buffer
	log := zerolog.New(&buf)
	Fields{Component: "etcd", Action: "put_host"}.Log(log.Info(), 0, "ok").Msg("x")
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"component", "request_id", "rpc_latency_ms", "cpu_steal_pct", "host_id", "vm_id", "action", "outcome"} {
		if _, ok := line[k]; !ok {
			t.Errorf("no %s in %s", k, buf.String())
		}
	}
	if _, ok := line["fence_token"]; ok {
		t.Errorf("fence_token written while unknown: %s", buf.String())
	}
}

func TestNewRequestIDIsOpenStackGlobalRequestID(t *testing.T) {
	re := regexp.MustCompile(`^req-[a-f0-9]{8}-[a-f0-9]{4}-4[a-f0-9]{3}-[89ab][a-f0-9]{3}-[a-f0-9]{12}$`)
	a, b := NewRequestID(), NewRequestID()
	if !re.MatchString(a) || a == b {
		t.Fatalf("%q, %q", a, b)
	}
}
