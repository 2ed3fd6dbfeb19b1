package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fencedhq/fenced/pkg/record"
	"github.com/fencedhq/fenced/pkg/signals"
)

type observingBackend struct {
	*fakeBackend
	obs   []record.Observation
	asked time.Time
}

func (o *observingBackend) Observations(since time.Time) ([]record.Observation, bool) {
	o.asked = since
	return o.obs, true
}

func TestObservations(t *testing.T) {
	at := time.Date(2026, 1, 15, 1, 20, 0, 500_000_000, time.UTC)
	b := &observingBackend{fakeBackend: backend(), obs: []record.Observation{{At: at,
		Samples: []signals.Sample{{Host: "cmp-017", Signal: signals.CPUSteal, Value: 31.5, At: at}},
		Control: map[string]signals.Control{"cmp-017": {ServiceUp: true, ServersActive: 14}}}}}
	h := New(b, Reads{}, nil)
	code, body := do(t, h, "GET", "/api/v1/observations?since=2026-01-15T01:19:59.5Z", "", "")
	if code != http.StatusOK {
		t.Fatalf("%d %s", code, body)
	}
	var r ObservationsReply
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatal(err)
	}
	if !r.Leader || !r.Missed || len(r.Observations) != 1 || !b.asked.Equal(at.Add(-time.Second)) {
		t.Fatalf("reply %+v, asked since %s", r, b.asked)
	}
	o := r.Observations[0]
	if !o.At.Equal(at) || len(o.Samples) != 1 || o.Samples[0].Value != 31.5 || o.Control["cmp-017"].ServersActive != 14 {
		t.Fatalf("observation %+v", o)
	}
	if code, body := do(t, h, "GET", "/api/v1/observations?since=yesterday", "", ""); code != http.StatusBadRequest || !strings.Contains(body, "since") {
		t.Fatalf("bad since: %d %s", code, body)
	}
	// a backend that keeps none says so
	if code, _ := do(t, New(backend(), Reads{}, nil), "GET", "/api/v1/observations", "", ""); code != http.StatusNotImplemented {
		t.Fatalf("no observer: %d", code)
	}
	// a viewer's token reads them; a scrape token does not
	toks := map[string]Identity{"v": {Name: "v", Role: Viewer}, "s": {Name: "s", Role: Scrape}}
	if code, _ := do(t, New(b, Reads{}, toks), "GET", "/api/v1/observations", "s", ""); code != http.StatusForbidden {
		t.Fatalf("scrape token: %d", code)
	}
	if code, _ := do(t, New(b, Reads{}, toks), "GET", "/api/v1/observations", "v", ""); code != http.StatusOK {
		t.Fatalf("viewer token: %d", code)
	}
}
