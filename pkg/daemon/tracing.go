package daemon

import (
	"context"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/fencedhq/fenced/internal/obs"
	"github.com/fencedhq/fenced/pkg/fleet"
	"github.com/fencedhq/fenced/pkg/playbook"
	"github.com/fencedhq/fenced/pkg/signals"
)

// incidents give each host's episode one trace: a root span
// "fenced.incident" from the first step the playbook takes for the host
// (its entry into warn or critical) to its return to restored or normal.
// Every state entry, action and external call made for the host is a
// descendant, so one trace shows a fence from critical through the
// evacuation to restored; each state change is an event on the root. The
// root lives in this replica's memory: after a leader change the new leader
// opens a new one (attribute resumed) for the rest of the episode.
type incidents struct {
	tr   trace.Tracer
	mu   sync.Mutex
	open map[string]trace.Span
	// resumed hosts had an episode under an earlier leader
	resumed map[string]bool
}

// span is host's incident span, opened if none is.
func (in *incidents) span(host string, token int64) trace.Span {
	in.mu.Lock()
	defer in.mu.Unlock()
	if sp, ok := in.open[host]; ok {
		return sp
	}
	if in.open == nil {
		in.open = map[string]trace.Span{}
	}
	attrs := []attribute.KeyValue{attribute.String("host_id", host), attribute.Int64("fence_token", token)}
	if in.resumed[host] {
		attrs = append(attrs, attribute.Bool("resumed", true))
		delete(in.resumed, host)
	}
	_, sp := in.tr.Start(context.Background(), "fenced.incident", trace.WithNewRoot(), trace.WithAttributes(attrs...))
	in.open[host] = sp
	return sp
}

// changed puts a state change on host's incident and ends the incident
// when the host is back.
func (in *incidents) changed(c playbook.Change) {
	in.mu.Lock()
	defer in.mu.Unlock()
	sp, ok := in.open[c.Host]
	if !ok {
		return
	}
	sp.AddEvent("state "+string(c.From)+"→"+string(c.To), trace.WithTimestamp(c.At),
		trace.WithAttributes(attribute.String("from", string(c.From)), attribute.String("to", string(c.To)),
			attribute.Float64("d", c.D), attribute.String("reason", c.Reason)))
	switch c.To {
	case playbook.Restored, playbook.Normal:
		sp.SetAttributes(attribute.String("outcome", string(c.To)))
		sp.End()
		delete(in.open, c.Host)
	case playbook.NeedsHuman:
		sp.SetStatus(codes.Error, c.Reason)
	}
}

// endAll ends every open incident (leadership ended); a later leader
// resumes them.
func (in *incidents) endAll(why string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	for h, sp := range in.open {
		sp.SetAttributes(attribute.String("outcome", why))
		sp.End()
		if in.resumed == nil {
			in.resumed = map[string]bool{}
		}
		in.resumed[h] = true
	}
	in.open = nil
}

// scope is the context host's actions run in (playbook.Actor.Scope): its
// incident's span and the B.6 fields the daemon knows — the fencing token
// and the host's latest CPU steal. Safe off the loop.
func (d *Daemon) scope(ctx context.Context, host string) context.Context {
	f := obs.Fields{HostID: host}
	if l := d.ha.get(); l != nil {
		f.FenceToken = l.Token
	}
	if v, ok := d.Get(host); ok {
		f.CPUStealPct = steal(v)
	}
	return obs.With(trace.ContextWithSpan(ctx, d.incidents.span(host, f.FenceToken)), f)
}

// steal is the host's CPU steal in its latest verdict (0 when unknown).
func steal(v fleet.View) float64 {
	for _, k := range v.Verdict.Contributions {
		if k.Signal == signals.CPUSteal {
			return k.Value
		}
	}
	return 0
}
