package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fencedhq/fenced/pkg/audit"
	"github.com/fencedhq/fenced/pkg/clock"
	"github.com/fencedhq/fenced/pkg/daemon"
	"github.com/fencedhq/fenced/pkg/fleet"
	"github.com/fencedhq/fenced/pkg/playbook"
	"github.com/fencedhq/fenced/pkg/report"
	"github.com/fencedhq/fenced/pkg/signals"
)

type fakeBackend struct {
	snap daemon.Snapshot
	ops  []string
}

func (f *fakeBackend) Snapshot() daemon.Snapshot { return f.snap }
func (f *fakeBackend) Operate(_ context.Context, host string, ev playbook.Event, op, reason string) ([]playbook.Change, error) {
	f.ops = append(f.ops, host+" "+string(ev)+" "+op+" "+reason)
	if host == "cmp-001" {
		return nil, errors.New("approve not allowed in normal")
	}
	return []playbook.Change{{Host: host, From: playbook.AwaitingApproval, To: playbook.Fenced, Reason: "approved"}}, nil
}

// reads is an audit chain holding one approval, and capacities that make
// cmp-017's r1 1.75 and r2 1.5.
func reads(t *testing.T) Reads {
	t.Helper()
	log := audit.New(audit.NewMemStore(), clock.Real{})
	if _, err := log.Append(context.Background(), audit.Record{Timestamp: time.Date(2026, 1, 15, 1, 19, 0, 0, time.UTC),
		HostID: "cmp-017", Action: "approve", Operator: "alice", Outcome: "ok"}); err != nil {
		t.Fatal(err)
	}
	return Reads{Audit: log, Capacity: func(string) report.Capacity { return report.Capacity{Cores: 16, VCPUs: 28, R2: 1.5, Known: true} }}
}
func (f *fakeBackend) SetPaused(_ context.Context, p bool, op, reason string) error {
	f.ops = append(f.ops, fmt.Sprintf("pause=%v %s %s", p, op, reason))
	return nil
}

func backend() *fakeBackend {
	t := time.Date(2026, 1, 15, 1, 20, 0, 0, time.UTC)
	return &fakeBackend{snap: daemon.Snapshot{At: t, Mode: "approve", Transitions: map[string]int64{"critical": 1}, Leader: true, Token: 42, TickDrift: 3.5,
		Collectors: []signals.CollectorStatus{{Name: "prometheus", Failures: 2}}, SignalAges: map[signals.Name]float64{signals.CPUSteal: 12},
		Webhooks: map[string]int64{"sent": 3}, Unfenceable: map[string]string{"cmp-017": "BMC refused the credentials"},
		Hosts: []fleet.View{
			{Host: playbook.Host{Name: "cmp-001", State: playbook.Normal}, Verdict: signals.Verdict{D: 0.1, AgentDown: "Nova heartbeat 45s old"}},
			{Host: playbook.Host{Name: "cmp-017", State: playbook.AwaitingApproval, ApprovalDeadline: t.Add(15 * time.Minute)},
				Verdict: signals.Verdict{D: 0.82, Incoherent: true, HardFailure: "libvirt failed 3 probes in a row", Contributions: []signals.Contribution{{Signal: signals.HeartbeatLag, Value: 75, Contribution: 0.2}}}},
		}}}
}

func do(t *testing.T, h http.Handler, method, path, token, body string) (int, string) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if method == "POST" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	b, _ := io.ReadAll(rec.Body)
	return rec.Code, string(b)
}

func TestReadsAndWrites(t *testing.T) {
	b := backend()
	s := New(b, reads(t), nil)
	code, body := do(t, s, "GET", "/api/v1/hosts", "", "")
	if code != 200 || !strings.Contains(body, `"state": "awaiting_approval"`) || !strings.Contains(body, "heartbeat_lag_s=75") ||
		!strings.Contains(body, `"hard_failure": "libvirt failed 3 probes in a row"`) || !strings.Contains(body, `"agent_down": "Nova heartbeat 45s old"`) || !strings.Contains(body, `"approval_deadline": "2026-01-15T01:35:00Z"`) {
		t.Fatalf("%d %s", code, body)
	}
	if code, _ := do(t, s, "GET", "/api/v1/hosts/nope", "", ""); code != 404 {
		t.Fatalf("unknown host: %d", code)
	}
	for _, c := range []struct {
		path, body string
		code       int
		want       string
	}{
		{"/api/v1/hosts/cmp-017/approve", `{"operator":"alice","reason":"VMs down"}`, 200, `"to": "fenced"`},
		{"/api/v1/hosts/cmp-017/approve", `{"operator":"alice"}`, 400, `"field": "reason"`},
		{"/api/v1/hosts/cmp-017/approve", `{"operator":"alice","reason":"x","force":true}`, 400, "unknown field"},
		{"/api/v1/hosts/cmp-017/approve", `not json`, 400, "body must be JSON"},
		{"/api/v1/hosts/cmp-017/approve", `{"operator":"a","reason":"b"} {"operator":"a","reason":"c"}`, 400, "exactly one JSON object"},
		{"/api/v1/hosts/cmp-017/approve", `{"operator":"a","reason":"b"}garbage`, 400, "exactly one JSON object"},
		{"/api/v1/hosts/cmp-017/approve", `{"operator":"a","reason":"b"}}`, 400, "exactly one JSON object"},
		{"/api/v1/hosts/cmp-017/approve", `{"operator":"a\u001b[2J","reason":"b"}`, 400, `"field": "operator"`},
		{"/api/v1/hosts/cmp%0A017/approve", `{"operator":"a","reason":"b"}`, 400, `"field": "host"`},
		{"/api/v1/hosts/cmp-017/reboot", `{"operator":"a","reason":"b"}`, 404, "unknown action"},
		{"/api/v1/hosts/nope/approve", `{"operator":"a","reason":"b"}`, 404, "unknown host"},
		{"/api/v1/hosts/cmp-001/approve", `{"operator":"a","reason":"b"}`, 409, "not allowed"},
	} {
		code, body := do(t, s, "POST", c.path, "", c.body)
		if code != c.code || !strings.Contains(body, c.want) {
			t.Errorf("POST %s %s: %d %s, want %d %q", c.path, c.body, code, body, c.code, c.want)
		}
	}
	if len(b.ops) != 2 || b.ops[0] != "cmp-017 approve alice VMs down" {
		t.Fatalf("backend saw %v", b.ops)
	}
}

func TestTokensAndRoles(t *testing.T) {
	b := backend()
	s := New(b, reads(t), map[string]Identity{"v": {"vic", Viewer}, "o": {"carol", Operator}})
	body := `{"operator":"mallory","reason":"b"}`
	for _, c := range []struct {
		method, path, token string
		code                int
	}{
		{"GET", "/api/v1/hosts", "", 401},
		{"GET", "/api/v1/hosts", "wrong", 401},
		{"GET", "/api/v1/hosts", "v", 200},
		{"POST", "/api/v1/hosts/cmp-017/approve", "v", 403},
		{"POST", "/api/v1/hosts/cmp-017/approve", "o", 200},
	} {
		if code, _ := do(t, s, c.method, c.path, c.token, body); code != c.code {
			t.Errorf("%s %s token %q: %d, want %d", c.method, c.path, c.token, code, c.code)
		}
	}
	// the operator token's name is audited, not the name in the body
	if len(b.ops) != 1 || b.ops[0] != "cmp-017 approve carol b" {
		t.Fatalf("backend saw %v, want carol (the token's name)", b.ops)
	}
	// without a name in the body the token's name is enough
	if code, _ := do(t, s, "POST", "/api/v1/hosts/cmp-017/abort", "o", `{"reason":"x"}`); code != 200 {
		t.Fatalf("abort without operator: %d", code)
	}
}

func TestReadTokens(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ text, want string }{
		{"# ops\noperator carol 0123456789abcdef\nviewer vic fedcba9876543210\n", ""},
		{"operator 0123456789abcdef\n", ":1: want \"ROLE NAME TOKEN\""},
		{"admin carol 0123456789abcdef\n", ":1: want"},
		{"operator carol 0123456789abcdef\nviewer vic fedcba9876543210\nscrape prometheus 00112233445566778899\n", ""},
		{"operator car\u202eol 0123456789abcdef\n", ":1: a NAME of at most"},
		{"operator carol short\n", ":1: token of carol shorter than 16"},
		{"operator carol 0123456789abcdef\nviewer carol fedcba9876543210\n", ":2: name carol already used on line 1"},
		{"operator a 0123456789abcdef\nviewer b 0123456789abcdef\n", ":2: token of b repeats"},
		{"# nothing\n", "no tokens"},
	} {
		p := filepath.Join(dir, "tokens")
		if err := os.WriteFile(p, []byte(c.text), 0o600); err != nil {
			t.Fatal(err)
		}
		ids, err := ReadTokens(p)
		switch {
		case c.want == "" && (err != nil || ids["0123456789abcdef"] != Identity{"carol", Operator} || ids["fedcba9876543210"].Role != Viewer):
			t.Errorf("%q: %v %v", c.text, ids, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%q: %v, want %q", c.text, err, c.want)
		}
	}
}

// TestMetricsAndPage: /metrics serves the registry it is given (each
// component's collectors are tested in its own package), and the page.
func TestMetricsAndPage(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fenced_test_total", Help: "A test counter."}, []string{"host"})
	reg.MustRegister(c)
	c.WithLabelValues("cmp-017").Add(3)
	r := reads(t)
	r.Metrics = reg
	s := New(backend(), r, nil)
	code, m := do(t, s, "GET", "/metrics", "", "")
	if code != 200 || !strings.Contains(m, "# TYPE fenced_test_total counter\n") || !strings.Contains(m, `fenced_test_total{host="cmp-017"} 3`) {
		t.Errorf("metrics: %d\n%s", code, m)
	}
	// without a registry: an empty exposition, not an error
	if code, m := do(t, New(backend(), reads(t), nil), "GET", "/metrics", "", ""); code != 200 || strings.TrimSpace(m) != "" {
		t.Errorf("metrics without a registry: %d %q", code, m)
	}
	code, page := do(t, s, "GET", "/", "", "")
	if code != 200 || !strings.Contains(page, "fenced — fleet status") || strings.Contains(page, "http://") && strings.Contains(page, "cdn") {
		t.Fatalf("status page: %d", code)
	}
}

func TestUnfenceable(t *testing.T) {
	s := New(backend(), reads(t), nil)
	var rep HostsReply
	_, body := do(t, s, "GET", "/api/v1/hosts", "", "")
	if err := json.Unmarshal([]byte(body), &rep); err != nil || len(rep.Hosts) != 2 {
		t.Fatalf("%v %s", err, body)
	}
	for _, h := range rep.Hosts {
		want := map[string]string{"cmp-017": "BMC refused the credentials"}[h.Host]
		if h.Unfenceable != want {
			t.Errorf("%s: unfenceable %q, want %q", h.Host, h.Unfenceable, want)
		}
	}
	if strings.Count(body, `"unfenceable"`) != 1 {
		t.Errorf("a fenceable host carries the field: %s", body)
	}
	_, page := do(t, s, "GET", "/", "", "")
	if !strings.Contains(page, "h.unfenceable ?") || !strings.Contains(page, `class="unfenceable"`) {
		t.Error("the status page does not mark unfenceable hosts")
	}
}

func TestAuditEndpoints(t *testing.T) {
	s := New(backend(), reads(t), nil)
	code, body := do(t, s, "GET", "/api/v1/audit?host=cmp-017", "", "")
	if code != 200 || !strings.Contains(body, `"operator":"alice"`) {
		t.Fatalf("%d %s", code, body)
	}
	if code, body := do(t, s, "GET", "/api/v1/audit?since=yesterday", "", ""); code != 400 || !strings.Contains(body, `"field": "since"`) {
		t.Fatalf("%d %s", code, body)
	}
	if code, body := do(t, s, "GET", "/api/v1/hosts/cmp-017/report", "", ""); code != 200 || !strings.Contains(body, `"r_eff": 2.625`) {
		t.Fatalf("report: %d %s", code, body)
	}
	if code, _ := do(t, s, "GET", "/api/v1/hosts/nope/report", "", ""); code != 404 {
		t.Fatal("report of an unknown host")
	}
	if code, body := do(t, s, "GET", "/api/v1/audit/verify", "", ""); code != 200 || !strings.Contains(body, `"ok": true`) {
		t.Fatalf("%d %s", code, body)
	}
}

func TestPauseResume(t *testing.T) {
	b := backend()
	s := New(b, reads(t), map[string]Identity{"v": {"vic", Viewer}, "o": {"a", Operator}})
	if code, _ := do(t, s, "POST", "/api/v1/pause", "v", `{"operator":"a","reason":"maintenance"}`); code != 403 {
		t.Fatalf("viewer paused the fleet: %d", code)
	}
	if code, body := do(t, s, "POST", "/api/v1/pause", "o", `{"operator":"a"}`); code != 400 || !strings.Contains(body, "reason") {
		t.Fatalf("%d %s", code, body)
	}
	if code, _ := do(t, s, "POST", "/api/v1/pause", "o", `{"operator":"a","reason":"maintenance"}`); code != 200 {
		t.Fatal(code)
	}
	if code, _ := do(t, s, "POST", "/api/v1/resume", "o", `{"operator":"a","reason":"done"}`); code != 200 {
		t.Fatal(code)
	}
	if strings.Join(b.ops, "|") != "pause=true a maintenance|pause=false a done" {
		t.Fatalf("%v", b.ops)
	}
}

// post sends a write with the given headers (Content-Type and Origin are
// not set unless given).
func post(t *testing.T, h http.Handler, path, body string, header map[string]string) (int, string) {
	t.Helper()
	req := httptest.NewRequest("POST", path, strings.NewReader(body))
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

// TestWritesNeedJSONFromTheOwnOrigin: a page on another site can POST
// text/plain without a CORS preflight; the dev API (no tokens) refuses it,
// and refuses any write from a foreign Origin.
func TestWritesNeedJSONFromTheOwnOrigin(t *testing.T) {
	b := backend()
	s := New(b, reads(t), nil)
	const body = `{"operator":"mallory","reason":"csrf"}`
	const path = "/api/v1/hosts/cmp-017/approve" // httptest requests go to example.com
	for _, c := range []struct {
		header map[string]string
		code   int
		want   string
	}{
		{map[string]string{"Content-Type": "text/plain", "Origin": "http://evil.example"}, 403, "another origin"},
		{map[string]string{"Content-Type": "text/plain"}, 415, "application/json"},
		{map[string]string{}, 415, "application/json"},
		{map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 415, "application/json"},
		{map[string]string{"Content-Type": "application/json", "Origin": "http://evil.example"}, 403, "another origin"},
		{map[string]string{"Content-Type": "application/json", "Origin": "null"}, 403, "another origin"},
		{map[string]string{"Content-Type": "application/json", "Origin": "https://example.com"}, 403, "another origin"},
		{map[string]string{"Content-Type": "application/json", "Origin": "http://example.com:8080"}, 403, "another origin"},
		{map[string]string{"Content-Type": "application/json", "Origin": "http://example.com"}, 200, "changes"},
		{map[string]string{"Content-Type": "application/json; charset=utf-8"}, 200, "changes"},
	} {
		code, out := post(t, s, path, body, c.header)
		if code != c.code || !strings.Contains(out, c.want) {
			t.Errorf("%v: %d %s, want %d %q", c.header, code, out, c.code, c.want)
		}
	}
	if code, _ := post(t, s, "/api/v1/pause", body, map[string]string{"Content-Type": "text/plain", "Origin": "http://evil.example"}); code != 403 {
		t.Errorf("cross-site pause: %d", code)
	}
	if len(b.ops) != 2 {
		t.Fatalf("the backend saw %v, want only the two same-origin approvals", b.ops)
	}
}

// TestReasonCapAndRefusalsAudited: an over-long reason is refused with a
// 400 that names the field and the limit, never reaches the backend, and
// the refusal is audited with a short excerpt of the body, not the body.
func TestReasonCapAndRefusalsAudited(t *testing.T) {
	b := backend()
	r := reads(t)
	s := New(b, r, map[string]Identity{"operator-token-000": {"carol", Operator}})
	hdr := map[string]string{"Content-Type": "application/json", "Authorization": "Bearer operator-token-000"}
	ok := strings.Repeat("r", MaxReason)
	if code, out := post(t, s, "/api/v1/hosts/cmp-017/approve", `{"reason":"`+ok+`"}`, hdr); code != 200 {
		t.Fatalf("a reason of %d bytes: %d %s", MaxReason, code, out)
	}
	code, out := post(t, s, "/api/v1/hosts/cmp-017/approve", `{"reason":"`+ok+`x"}`, hdr)
	if code != 400 || !strings.Contains(out, `"field": "reason"`) || !strings.Contains(out, "at most 1024 bytes") {
		t.Fatalf("a reason of %d bytes: %d %s", MaxReason+1, code, out)
	}
	big := strings.Repeat("A", 64<<10)
	if code, out := post(t, s, "/api/v1/hosts/cmp-017/abort", `{"reason":"`+big+`"}`, hdr); code != 413 || len(out) > 300 {
		t.Fatalf("a 64 KB body: %d %.300s", code, out)
	}
	if code, out := post(t, s, "/api/v1/hosts/cmp-017/abort", `{"reason":"x","`+big[:4000]+`":1}`, hdr); code != 400 || len(out) > 500 {
		t.Fatalf("an unknown 4 KB field: %d %.600s", code, out)
	}
	if len(b.ops) != 1 {
		t.Fatalf("refused writes reached the backend: %d ops", len(b.ops))
	}
	recs, err := r.Audit.Records(context.Background(), func(rec audit.Record) bool { return rec.Outcome == "rejected" })
	if err != nil || len(recs) != 3 {
		t.Fatalf("want 3 audited refusals, have %d (%v)", len(recs), err)
	}
	for i, rec := range recs {
		if want := []string{"approve", "abort", "abort"}[i]; rec.Action != want {
			t.Errorf("refusal %d: action %q, want %q", i, rec.Action, want)
		}
		if rec.Operator != "carol" || rec.HostID != "cmp-017" || len(rec.Detail) > 600 || !strings.Contains(rec.Detail, "bytes") {
			t.Errorf("audited refusal: %+v", rec)
		}
	}
	if !strings.Contains(recs[1].Detail, "HTTP 413") || !strings.Contains(recs[0].Detail, "at most 1024 bytes") {
		t.Errorf("refusals say why: %q / %q", recs[0].Detail, recs[1].Detail)
	}
	// a foreign origin and a missing token are not audited: no one can fill the log from outside
	post(t, s, "/api/v1/hosts/cmp-017/approve", `{"reason":"x"}`, map[string]string{"Content-Type": "application/json", "Authorization": "Bearer operator-token-000", "Origin": "http://evil.example"})
	post(t, s, "/api/v1/hosts/cmp-017/approve", `{"reason":"x"}`, map[string]string{"Content-Type": "application/json"})
	if n, _ := r.Audit.Records(context.Background(), func(rec audit.Record) bool { return rec.Outcome == "rejected" }); len(n) != 3 {
		t.Fatalf("%d refusals audited, want still 3", len(n))
	}
}

// TestMetricsNeedAToken: with tokens, /metrics takes a scrape, viewer or
// operator token; a scrape token reads nothing else.
func TestMetricsNeedAToken(t *testing.T) {
	s := New(backend(), reads(t), map[string]Identity{"s": {"prometheus", Scrape}, "v": {"vic", Viewer}, "o": {"carol", Operator}})
	for _, c := range []struct {
		path, token string
		code        int
	}{
		{"/metrics", "", 401}, {"/metrics", "wrong", 401},
		{"/metrics", "s", 200}, {"/metrics", "v", 200}, {"/metrics", "o", 200},
		{"/api/v1/hosts", "s", 403}, {"/api/v1/audit", "s", 403}, {"/api/v1/hosts/cmp-017/report", "s", 403},
		{"/healthz", "", 200}, {"/", "", 200},
	} {
		code, body := do(t, s, "GET", c.path, c.token, "")
		if code != c.code {
			t.Errorf("GET %s token %q: %d, want %d", c.path, c.token, code, c.code)
		}
		if code == 401 && strings.Contains(body, "cmp-017") {
			t.Errorf("GET %s without a token shows a host: %s", c.path, body)
		}
	}
	if code, _ := do(t, s, "POST", "/api/v1/pause", "s", `{"reason":"x"}`); code != 403 {
		t.Errorf("a scrape token paused: %d", code)
	}
}

func TestPlaintextMetric(t *testing.T) {
	reg := prometheus.NewRegistry()
	r := reads(t)
	r.Metrics = reg
	s := New(backend(), r, nil)
	if err := s.Register(reg); err != nil {
		t.Fatal(err)
	}
	if _, m := do(t, s, "GET", "/metrics", "", ""); !strings.Contains(m, "\nfenced_api_plaintext 0\n") {
		t.Errorf("metrics lack fenced_api_plaintext 0")
	}
	s.SetPlaintext(true)
	if _, m := do(t, s, "GET", "/metrics", "", ""); !strings.Contains(m, "# TYPE fenced_api_plaintext gauge\nfenced_api_plaintext 1\n") {
		t.Errorf("metrics lack fenced_api_plaintext 1")
	}
}

// TestStatusPageSendsTheToken: the page asks for a token on 401, keeps it
// in sessionStorage and sends it with every request (the browser test
// drives the page without tokens).
func TestStatusPageSendsTheToken(t *testing.T) {
	_, page := do(t, New(backend(), reads(t), nil), "GET", "/", "", "")
	for _, want := range []string{`sessionStorage.setItem(TOKEN_KEY`, `"Authorization"] = "Bearer " + token()`, `fetch("/api/v1/hosts?" + p, authed())`, `fetch("/api/v1/events", authed(`,
		`authed({`, `r.status === 401`, `id="login"`, `type="password"`, `\u202a-\u202e\u2066-\u2069`} {
		if !strings.Contains(page, want) {
			t.Errorf("status page lacks %s", want)
		}
	}
	if strings.Contains(page, "localStorage") {
		t.Error("the token must not outlive the tab (sessionStorage, not localStorage)")
	}
	for _, never := range []string{"?token=", "&token=", "access_token", "new EventSource"} { // EventSource cannot send a header
		if strings.Contains(page, never) {
			t.Errorf("the page may put the token in a URL: it has %s", never)
		}
	}
}
