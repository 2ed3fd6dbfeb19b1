// Package tracing checks the tracing path end to end against a real
// OpenTelemetry Collector (integration/otelcol, run by
// integration/internal/otelcol): spans exported over OTLP/HTTP and OTLP/gRPC
// with the OpenTelemetry Go SDK arrive whole — IDs, the parent link, kinds,
// status, events, attributes of each type, the resource and the scope.
package tracing

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/fencedhq/fenced/integration/internal/otelcol"
)

const scope = "github.com/fencedhq/fenced/integration/tracing"

func TestSpansReachTheCollector(t *testing.T) {
	col := otelcol.Start(t)
	cases := []struct {
		proto string
		newer func(ctx context.Context) (sdktrace.SpanExporter, error)
	}{
		{"http", func(ctx context.Context) (sdktrace.SpanExporter, error) {
			return otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(col.HTTPEndpoint()), otlptracehttp.WithInsecure())
		}},
		{"grpc", func(ctx context.Context) (sdktrace.SpanExporter, error) {
			return otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(col.GRPCEndpoint()), otlptracegrpc.WithInsecure())
		}},
	}
	for _, tc := range cases {
		t.Run(tc.proto, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			exp, err := tc.newer(ctx)
			if err != nil {
				t.Fatalf("OTLP/%s exporter: %v", tc.proto, err)
			}
			res := resource.NewSchemaless(
				attribute.String("service.name", "fenced-tracing-test"),
				attribute.String("test.protocol", tc.proto),
			)
			tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if err := tp.Shutdown(ctx); err != nil {
					t.Errorf("shut down the tracer provider: %v", err)
				}
			})
			tracer := tp.Tracer(scope)

			before := time.Now()
			pctx, parent := tracer.Start(ctx, "fenced.incident", trace.WithSpanKind(trace.SpanKindServer),
				trace.WithAttributes(
					attribute.String("host_id", "cmp-017"),
					attribute.Int("hosts", 20),
					attribute.Float64("d", 0.688),
					attribute.Bool("incoherent", true),
					attribute.StringSlice("signals", []string{"cpu_steal", "heartbeat_lag_s"}),
				))
			_, child := tracer.Start(pctx, "nova.force_down", trace.WithSpanKind(trace.SpanKindClient),
				trace.WithAttributes(attribute.String("host_id", "cmp-017"), attribute.Int64("attempt", 2)))
			child.RecordError(errors.New("nova answered 503"))
			child.SetStatus(codes.Error, "nova answered 503")
			child.End()
			parent.AddEvent("state", trace.WithAttributes(attribute.String("to", "critical")))
			parent.SetStatus(codes.Ok, "")
			parent.End()
			after := time.Now()
			if err := tp.ForceFlush(ctx); err != nil {
				t.Fatalf("force flush over OTLP/%s: %v", tc.proto, err)
			}

			traceID := parent.SpanContext().TraceID().String()
			mine := func(spans []otelcol.Span) []otelcol.Span {
				var out []otelcol.Span
				for _, s := range spans {
					if s.TraceID == traceID {
						out = append(out, s)
					}
				}
				return out
			}
			spans := mine(col.WaitForSpans(t, 15*time.Second, func(s []otelcol.Span) bool { return len(mine(s)) >= 2 }))
			if len(spans) != 2 {
				t.Fatalf("trace %s: %d spans at the collector, want 2: %v", traceID, len(spans), spans)
			}
			byName := map[string]otelcol.Span{}
			for _, s := range spans {
				byName[s.Name] = s
			}
			p, ok := byName["fenced.incident"]
			if !ok {
				t.Fatalf("no fenced.incident span: %v", spans)
			}
			c, ok := byName["nova.force_down"]
			if !ok {
				t.Fatalf("no nova.force_down span: %v", spans)
			}

			if p.SpanID != parent.SpanContext().SpanID().String() || p.ParentSpanID != "" {
				t.Errorf("parent: span %s parent %q, want span %s and no parent", p.SpanID, p.ParentSpanID, parent.SpanContext().SpanID())
			}
			if c.SpanID != child.SpanContext().SpanID().String() || c.ParentSpanID != p.SpanID {
				t.Errorf("child: span %s parent %q, want span %s under %s", c.SpanID, c.ParentSpanID, child.SpanContext().SpanID(), p.SpanID)
			}
			if p.Kind != "SPAN_KIND_SERVER" || c.Kind != "SPAN_KIND_CLIENT" {
				t.Errorf("kinds %s and %s, want SPAN_KIND_SERVER and SPAN_KIND_CLIENT", p.Kind, c.Kind)
			}
			if p.StatusCode != "STATUS_CODE_OK" || c.StatusCode != "STATUS_CODE_ERROR" || c.StatusMessage != "nova answered 503" {
				t.Errorf("statuses %s and %s %q, want STATUS_CODE_OK and STATUS_CODE_ERROR \"nova answered 503\"", p.StatusCode, c.StatusCode, c.StatusMessage)
			}

			wantParent := map[string]any{
				"host_id":    "cmp-017",
				"hosts":      int64(20),
				"d":          0.688,
				"incoherent": true,
				"signals":    []any{"cpu_steal", "heartbeat_lag_s"},
			}
			if !reflect.DeepEqual(p.Attributes, wantParent) {
				t.Errorf("parent attributes %#v, want %#v", p.Attributes, wantParent)
			}
			if want := map[string]any{"host_id": "cmp-017", "attempt": int64(2)}; !reflect.DeepEqual(c.Attributes, want) {
				t.Errorf("child attributes %#v, want %#v", c.Attributes, want)
			}
			if len(p.Events) != 1 || p.Events[0].Name != "state" || p.Events[0].Attributes["to"] != "critical" {
				t.Errorf("parent events %+v, want one \"state\" event to critical", p.Events)
			}
			if len(c.Events) != 1 || c.Events[0].Name != "exception" || c.Events[0].Attributes["exception.message"] != "nova answered 503" {
				t.Errorf("child events %+v, want the recorded error as an exception event", c.Events)
			}

			for _, s := range spans {
				if s.ResourceAttributes["service.name"] != "fenced-tracing-test" || s.ResourceAttributes["test.protocol"] != tc.proto {
					t.Errorf("%s: resource %v, want service.name fenced-tracing-test and test.protocol %s", s.Name, s.ResourceAttributes, tc.proto)
				}
				if s.ScopeName != scope {
					t.Errorf("%s: scope %q, want %q", s.Name, s.ScopeName, scope)
				}
				if s.StartTime.Before(before.Add(-time.Second)) || s.EndTime.After(after.Add(time.Second)) || s.EndTime.Before(s.StartTime) {
					t.Errorf("%s: times %s – %s outside the test's %s – %s", s.Name, s.StartTime, s.EndTime, before, after)
				}
			}
			if c.StartTime.Before(p.StartTime) || c.EndTime.After(p.EndTime) {
				t.Errorf("child %s – %s not within parent %s – %s", c.StartTime, c.EndTime, p.StartTime, p.EndTime)
			}
		})
	}
}
