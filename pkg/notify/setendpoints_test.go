package notify

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/rs/zerolog"

	"github.com/fencedhq/fenced/pkg/playbook"
)

// TestSetEndpoints: after SetEndpoints the next notification goes to the
// new endpoints only; an endpoint that keeps its name keeps its
// deduplication.
func TestSetEndpoints(t *testing.T) {
	var a, b atomic.Int32
	srvA := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { a.Add(1) }))
	defer srvA.Close()
	srvB := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { b.Add(1) }))
	defer srvB.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel() }()
	n := New(ctx, Config{Endpoints: []Endpoint{{Name: "oncall", URL: srvA.URL, Format: Generic}}, Log: zerolog.Nop()})
	n.Notify(ctx, note(playbook.Critical))
	waitFor(t, func() bool { return n.Stats().Sent == 1 })

	n.SetEndpoints([]Endpoint{{Name: "oncall", URL: srvB.URL, Format: Generic}, {Name: "chat", URL: srvB.URL, Format: Slack}})
	n.Notify(ctx, note(playbook.Critical)) // oncall: already sent for this incident and state; chat: new
	waitFor(t, func() bool { return n.Stats().Sent == 2 })
	n.Notify(ctx, note(playbook.AwaitingApproval)) // both, at B
	waitFor(t, func() bool { return n.Stats().Sent == 4 })
	if a.Load() != 1 || b.Load() != 3 || n.Stats().Deduplicated != 1 {
		t.Fatalf("A got %d, B %d, %+v", a.Load(), b.Load(), n.Stats())
	}
	n.SetEndpoints(nil)
	n.Notify(ctx, note(playbook.NeedsHuman))
	cancel()
	n.Wait()
	if a.Load()+b.Load() != 4 {
		t.Fatalf("a notification went out with no endpoints: A %d B %d", a.Load(), b.Load())
	}
}
