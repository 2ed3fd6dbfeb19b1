// Package obs gives each action and external call of fenced its B.6
// record (Appendix B.6): one OpenTelemetry span and one log line, both
// with the same fields — timestamp, component, request_id, rpc_latency_ms,
// cpu_steal_pct, host_id, vm_id, action, outcome — and the leader's fencing
// token. A caller that knows a field (the daemon knows the host, its steal
// and the token; the playbook the request id) puts it in the context with
// With; the component that makes the call (the Nova client, the Redfish
// fencer, the etcd store, the notifier) starts the call with Start and
// ends it with End, and every field the context carries is on both.
package obs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"time"

	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/fencedhq/fenced/pkg/clock"
)

// Fields are the B.6 fields a context carries. Zero values are unknown.
type Fields struct {
	Component   string
	RequestID   string
	HostID      string
	VMID        string
	Action      string
	CPUStealPct float64
	FenceToken  int64
}

type fieldsKey struct{}

// With returns ctx carrying f over the fields ctx already carries (each
// non-zero field of f wins).
func With(ctx context.Context, f Fields) context.Context {
	return context.WithValue(ctx, fieldsKey{}, From(ctx).merge(f))
}

// From returns the fields ctx carries.
func From(ctx context.Context) Fields {
	f, _ := ctx.Value(fieldsKey{}).(Fields)
	return f
}

func (f Fields) merge(o Fields) Fields {
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&f.Component, o.Component)
	set(&f.RequestID, o.RequestID)
	set(&f.HostID, o.HostID)
	set(&f.VMID, o.VMID)
	set(&f.Action, o.Action)
	if o.CPUStealPct != 0 {
		f.CPUStealPct = o.CPUStealPct
	}
	if o.FenceToken != 0 {
		f.FenceToken = o.FenceToken
	}
	return f
}

// Attributes are f as span attributes (the B.6 names; unknown fields left out).
func (f Fields) Attributes() []attribute.KeyValue {
	var a []attribute.KeyValue
	for _, kv := range [...]struct{ k, v string }{{"component", f.Component}, {"request_id", f.RequestID},
		{"host_id", f.HostID}, {"vm_id", f.VMID}, {"action", f.Action}} {
		if kv.v != "" {
			a = append(a, attribute.String(kv.k, kv.v))
		}
	}
	if f.CPUStealPct != 0 {
		a = append(a, attribute.Float64("cpu_steal_pct", f.CPUStealPct))
	}
	if f.FenceToken != 0 {
		a = append(a, attribute.Int64("fence_token", f.FenceToken))
	}
	return a
}

// Log adds the nine B.6 fields to ev, every one of them, unknown ones
// empty (zerolog adds the timestamp), and the fencing token when known.
func (f Fields) Log(ev *zerolog.Event, latency time.Duration, outcome string) *zerolog.Event {
	ev = ev.Str("component", f.Component).Str("request_id", f.RequestID).Int64("rpc_latency_ms", latency.Milliseconds()).
		Float64("cpu_steal_pct", f.CPUStealPct).Str("host_id", f.HostID).Str("vm_id", f.VMID).
		Str("action", f.Action).Str("outcome", outcome)
	if f.FenceToken != 0 {
		ev = ev.Int64("fence_token", f.FenceToken)
	}
	return ev
}

// Tracer is tp's tracer for fenced, or a no-op one when tp is nil
// (tracing off).
func Tracer(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	return tp.Tracer("github.com/fencedhq/fenced")
}

// Call is one action or external call in flight.
type Call struct {
	span  trace.Span
	f     Fields
	clk   clock.Clock
	start time.Time
}

// Start starts a call named name (e.g. "nova.disable", "redfish.power_off")
// as a child of ctx's span, with f over ctx's fields. The returned context
// carries the span and the fields, for the calls it makes in turn.
func Start(ctx context.Context, tr trace.Tracer, clk clock.Clock, name string, f Fields, kind trace.SpanKind) (context.Context, *Call) {
	f = From(ctx).merge(f)
	ctx, sp := tr.Start(ctx, name, trace.WithSpanKind(kind), trace.WithAttributes(f.Attributes()...))
	return With(ctx, f), &Call{span: sp, f: f, clk: clk, start: clk.Now()}
}

// Set adds attributes to the call's span.
func (c *Call) Set(kv ...attribute.KeyValue) { c.span.SetAttributes(kv...) }

// Fields are the call's fields.
func (c *Call) Fields() Fields { return c.f }

// End ends the call with its outcome (metrics.Outcome, or the component's
// own word) and err, and returns ev (a log event whose level the caller
// chose; nil when that level is off) with the B.6 fields and the error on
// it, for the caller to add its own and send.
func (c *Call) End(ev *zerolog.Event, outcome string, err error) *zerolog.Event {
	lat := c.clk.Now().Sub(c.start)
	c.span.SetAttributes(attribute.String("outcome", outcome), attribute.Int64("rpc_latency_ms", lat.Milliseconds()))
	if err != nil {
		c.span.RecordError(err)
		c.span.SetStatus(codes.Error, err.Error())
	}
	c.span.End()
	ev = c.f.Log(ev, lat, outcome)
	if err != nil {
		ev = ev.AnErr("error", err)
	}
	return ev
}

// Line adds to ev the B.6 fields of ctx with f over them, for a line that
// is not a call of its own (a step inside one, or an outcome seen later).
func Line(ctx context.Context, ev *zerolog.Event, f Fields, latency time.Duration, outcome string) *zerolog.Event {
	return From(ctx).merge(f).Log(ev, latency, outcome)
}

// NewRequestID returns a fresh request id, "req-" and a random UUID: the
// form OpenStack takes as a global request id, so that the Nova calls of
// an action carry it and Nova's own logs name it (pkg/nova).
func NewRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])  // crypto/rand never fails on Linux
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	h := hex.EncodeToString(b[:])
	return "req-" + h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
