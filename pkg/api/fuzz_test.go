package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/fencedhq/fenced/pkg/audit"
	"github.com/fencedhq/fenced/pkg/clock"
	"github.com/fencedhq/fenced/pkg/daemon"
	"github.com/fencedhq/fenced/pkg/fleet"
	"github.com/fencedhq/fenced/pkg/playbook"
)

// fuzzBackend records the writes that reach it.
type fuzzBackend struct{ calls []OperateRequest }

func (b *fuzzBackend) Snapshot() daemon.Snapshot {
	return daemon.Snapshot{Leader: true, Hosts: []fleet.View{{Host: playbook.Host{Name: "cmp-017", State: playbook.AwaitingApproval}}}}
}
func (b *fuzzBackend) Operate(_ context.Context, _ string, _ playbook.Event, op, reason string) ([]playbook.Change, error) {
	b.calls = append(b.calls, OperateRequest{Operator: op, Reason: reason})
	return nil, nil
}
func (b *fuzzBackend) SetPaused(_ context.Context, _ bool, op, reason string) error {
	b.calls = append(b.calls, OperateRequest{Operator: op, Reason: reason})
	return nil
}

// strictOne decodes body as exactly one JSON object with only the fields of
// OperateRequest, independently of the API's own decoding.
func strictOne(body []byte) (OperateRequest, bool) {
	var req OperateRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if dec.Decode(&req) != nil {
		return req, false
	}
	_, err := dec.Token()
	return req, errors.Is(err, io.EOF)
}

// FuzzWriteBodies sends any body to the write endpoints of the dev API
// (no tokens: the operator comes from the body). Whatever the body, the
// answer is short JSON; a write reaches the daemon only when the body is one
// JSON object with a non-empty operator and reason within their limits, and
// then with exactly those values; a refusal is audited without the body.
func FuzzWriteBodies(f *testing.F) {
	f.Add(uint8(0), []byte(`{"operator":"alice","reason":"VMs unreachable"}`))
	f.Add(uint8(1), []byte(`{"operator":"alice","reason":"x"} {"operator":"eve","reason":"y"}`))
	f.Add(uint8(2), []byte(`{"operator":"alice","reason":"x","extra":1}`))
	f.Add(uint8(3), []byte(`{"operator":"al\u001bice","reason":"x"}`))
	f.Add(uint8(4), []byte(`{"operator":"alice","reason":"`+strings.Repeat("r", 2000)+`"}`))
	f.Add(uint8(0), []byte(`[]`))
	paths := []string{"/api/v1/hosts/cmp-017/approve", "/api/v1/hosts/cmp-017/abort", "/api/v1/hosts/cmp-017/unfence", "/api/v1/pause", "/api/v1/resume"}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		b := &fuzzBackend{}
		log := audit.New(audit.NewMemStore(), clock.Real{})
		s := New(b, Reads{Audit: log}, nil)
		req := httptest.NewRequest("POST", paths[int(which)%len(paths)], bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		out := rec.Body.Bytes()
		if !json.Valid(out) {
			t.Fatalf("HTTP %d with a body that is not JSON: %.300q", rec.Code, out)
		}
		if len(out) > 2048 {
			t.Fatalf("HTTP %d with a %d-byte answer: %.300q", rec.Code, len(out), out)
		}
		want, one := strictOne(body)
		if rec.Code/100 == 2 {
			switch {
			case !one:
				t.Fatalf("HTTP %d for a body that is not exactly one JSON object: %q", rec.Code, body)
			case len(b.calls) != 1 || b.calls[0] != want:
				t.Fatalf("HTTP %d: the daemon got %+v for body %q", rec.Code, b.calls, body)
			case strings.TrimSpace(want.Operator) == "" || strings.TrimSpace(want.Reason) == "":
				t.Fatalf("HTTP %d without an operator or a reason: %q", rec.Code, body)
			case len(want.Reason) > MaxReason || len(want.Operator) > MaxOperator:
				t.Fatalf("HTTP %d for a reason of %d bytes, operator of %d", rec.Code, len(want.Reason), len(want.Operator))
			case strings.ContainsFunc(want.Operator, func(r rune) bool { return r < 0x20 || r == 0x7f }):
				t.Fatalf("HTTP %d for an operator with control characters: %q", rec.Code, want.Operator)
			}
		} else if len(b.calls) != 0 {
			t.Fatalf("HTTP %d, yet the daemon got %+v", rec.Code, b.calls)
		}
		if rec.Code == http.StatusInternalServerError {
			t.Fatalf("HTTP 500 for body %q", body)
		}
		recs, err := log.Records(context.Background(), func(audit.Record) bool { return true })
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if len(r.Detail) > 1024 {
				t.Fatalf("an audit record of %d bytes for a %d-byte body", len(r.Detail), len(body))
			}
		}
	})
}
