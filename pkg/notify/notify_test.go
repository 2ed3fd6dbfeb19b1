package notify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/fencedhq/fenced/internal/metrics"
	"github.com/fencedhq/fenced/pkg/playbook"
)

// receiver verifies signatures and counts deliveries; fail makes the first
// n requests answer 503.
type receiver struct {
	secret   []byte
	fail     atomic.Int32
	hang     chan struct{}
	got      atomic.Int32
	badSig   atomic.Int32
	mu       sync.Mutex
	payloads []map[string]any
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if r.hang != nil {
		<-r.hang
	}
	body, _ := io.ReadAll(req.Body)
	if !verifyDocumented(r.secret, req.Header.Get("X-Fenced-Timestamp"), body, req.Header.Get("X-Fenced-Signature")) {
		r.badSig.Add(1)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if r.fail.Add(-1) >= 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	var m map[string]any
	_ = json.Unmarshal(body, &m)
	r.mu.Lock()
	r.payloads = append(r.payloads, m)
	r.mu.Unlock()
	r.got.Add(1)
}

// verifyDocumented checks a delivery the way a receiver reading docs/run.md
// would, without Sign: the timestamp is UNIX seconds and the signature is
// "sha256=" + hex(HMAC-SHA256(secret, TIMESTAMP + "." + BODY)).
func verifyDocumented(secret []byte, ts string, body []byte, sig string) bool {
	if _, err := strconv.ParseInt(ts, 10, 64); err != nil {
		return false
	}
	got, ok := strings.CutPrefix(sig, "sha256=")
	if !ok {
		return false
	}
	raw, err := hex.DecodeString(got)
	if err != nil {
		return false
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts + "." + string(body)))
	return hmac.Equal(raw, m.Sum(nil))
}

type recorder struct {
	mu sync.Mutex
	ds []Delivery
}

func (r *recorder) Delivered(_ context.Context, d Delivery) {
	r.mu.Lock()
	r.ds = append(r.ds, d)
	r.mu.Unlock()
}

func (r *recorder) outcomes() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, d := range r.ds {
		out = append(out, d.Outcome)
	}
	return out
}

var onset = time.Date(2026, 1, 15, 1, 14, 0, 0, time.UTC)

func note(state playbook.State) playbook.Notification {
	return playbook.Notification{Host: "cmp-017", State: state, D: 0.81, Reason: "heartbeat lag", Onset: onset}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRetriesSignaturesAndDedup(t *testing.T) {
	rcv := &receiver{secret: []byte("s3cret")}
	rcv.fail.Store(2)
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	rec := &recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	reg := prometheus.NewRegistry()
	n := New(ctx, Config{Endpoints: []Endpoint{{Name: "oncall", URL: srv.URL, Format: Generic, Secret: rcv.secret}},
		Backoff: time.Millisecond, Recorder: rec, Log: zerolog.Nop(), Metrics: reg})
	n.Notify(ctx, note(playbook.Critical))
	n.Notify(ctx, note(playbook.Critical)) // same incident and state: sent once
	waitFor(t, func() bool { return n.Stats().Sent == 1 })
	if rcv.got.Load() != 1 || rcv.badSig.Load() != 0 {
		t.Fatalf("received %d, bad signatures %d", rcv.got.Load(), rcv.badSig.Load())
	}
	st := n.Stats()
	if st.Retries != 2 || st.Deduplicated != 1 {
		t.Fatalf("stats %+v: want 2 retries after two 503s, 1 deduplicated", st)
	}
	n.Notify(ctx, note(playbook.AwaitingApproval)) // a new state of the same incident is sent
	waitFor(t, func() bool { return n.Stats().Sent == 2 })
	rcv.mu.Lock()
	if rcv.payloads[1]["incident"] != "cmp-017@20260115T011400Z" || rcv.payloads[1]["state"] != "awaiting_approval" {
		t.Fatalf("payload %v", rcv.payloads[1])
	}
	rcv.mu.Unlock()
	cancel()
	n.Wait()
	if got := strings.Join(rec.outcomes(), ","); got != "deduplicated,sent,sent" {
		t.Fatalf("recorded %s", got)
	}
	m, err := metrics.Text(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`fenced_webhook_deliveries_total{endpoint="oncall",outcome="sent"} 2`,
		`fenced_webhook_deliveries_total{endpoint="oncall",outcome="deduplicated"} 1`,
		`fenced_webhook_deliveries_total{endpoint="oncall",outcome="failed"} 0`, `fenced_webhook_retries_total{endpoint="oncall"} 2`,
		`fenced_webhook_delivery_duration_seconds_count{endpoint="oncall"} 2`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s:\n%s", want, m)
		}
	}
	// a notifier built again on the same registerer (a reload) counts on
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	n2 := New(ctx2, Config{Endpoints: []Endpoint{{Name: "oncall", URL: srv.URL}}, Log: zerolog.Nop(), Metrics: reg})
	if n2.m.deliveries != n.m.deliveries {
		t.Error("a second notifier on the same registerer has counters of its own")
	}
}

func TestFailingWebhookNeverBlocks(t *testing.T) {
	rcv := &receiver{secret: []byte("k"), hang: make(chan struct{})}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	defer close(rcv.hang)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := New(ctx, Config{Endpoints: []Endpoint{{Name: "slow", URL: srv.URL, Secret: rcv.secret}},
		Attempt: 50 * time.Millisecond, Deadline: 200 * time.Millisecond, Backoff: 10 * time.Millisecond, Queue: 2, Log: zerolog.Nop()})
	done := make(chan struct{})
	go func() {
		for i := 0; i < 50; i++ {
			nt := note(playbook.Critical)
			nt.Host = "h" + string(rune('a'+i%26)) + string(rune('a'+i/26))
			n.Notify(ctx, nt)
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Notify blocked on a hanging receiver")
	}
	waitFor(t, func() bool { return n.Stats().Failed >= 1 })
	if st := n.Stats(); st.Dropped == 0 {
		t.Fatalf("a full queue must drop and count: %+v", st)
	}
}

func TestPermanentErrorIsNotRetried(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadRequest) }))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := New(ctx, Config{Endpoints: []Endpoint{{Name: "x", URL: srv.URL}}, Backoff: time.Millisecond, Log: zerolog.Nop()})
	n.Notify(ctx, note(playbook.Warn))
	waitFor(t, func() bool { return n.Stats().Failed == 1 })
	if n.Stats().Retries != 0 {
		t.Fatal("a 400 was retried")
	}
}

func TestPayloadFormats(t *testing.T) {
	nt := note(playbook.AwaitingApproval)
	nt.Deadline = onset.Add(20 * time.Minute)
	b, _ := Payload(Endpoint{Format: Slack}, nt, onset, "")
	if !strings.Contains(string(b), `"text":"fenced: cmp-017 is awaiting_approval`) || !strings.Contains(string(b), "fenced approve cmp-017") {
		t.Fatalf("slack: %s", b)
	}
	b, _ = Payload(Endpoint{Format: PagerDuty, RoutingKey: "R"}, nt, onset, "")
	var pd map[string]any
	_ = json.Unmarshal(b, &pd)
	if pd["routing_key"] != "R" || pd["event_action"] != "trigger" || pd["dedup_key"] != "fenced-cmp-017@20260115T011400Z" {
		t.Fatalf("pagerduty: %s", b)
	}
	p := pd["payload"].(map[string]any)
	if p["severity"] != "critical" || p["source"] != "cmp-017" || p["summary"] == "" {
		t.Fatalf("pagerduty payload: %v", p)
	}
	b, _ = Payload(Endpoint{Format: PagerDuty}, note(playbook.Normal), onset, "")
	if !strings.Contains(string(b), `"event_action":"resolve"`) {
		t.Fatalf("back to normal must resolve the PagerDuty incident: %s", b)
	}
}

// TestPayloadsSayWhatHappensAtTheDeadline: every format carries the
// approval deadline and approval.on_timeout of a pending approval.
func TestPayloadsSayWhatHappensAtTheDeadline(t *testing.T) {
	nt := note(playbook.AwaitingApproval)
	nt.Deadline, nt.OnTimeout = onset.Add(20*time.Minute), playbook.OnTimeoutProceed
	for _, f := range []Format{Generic, Slack, PagerDuty} {
		b, err := Payload(Endpoint{Format: f}, nt, onset, "")
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		switch f {
		case Generic:
			if m["approval_deadline"] != "2026-01-15T01:34:00Z" || m["approval_on_timeout"] != "proceed" {
				t.Errorf("generic: %s", b)
			}
		case Slack:
			text, _ := m["text"].(string)
			if !strings.Contains(text, "approve before 2026-01-15T01:34:00Z") || !strings.Contains(text, "at the deadline, on_timeout proceed: fenced if still critical and the storm guard consents, else needs_human") {
				t.Errorf("slack: %s", text)
			}
		case PagerDuty:
			p, _ := m["payload"].(map[string]any)
			cd, _ := p["custom_details"].(map[string]any)
			if cd["approval_deadline"] != "2026-01-15T01:34:00Z" || cd["approval_on_timeout"] != "proceed" {
				t.Errorf("pagerduty custom_details: %v", cd)
			}
			if s, _ := p["summary"].(string); !strings.Contains(s, "on_timeout proceed") {
				t.Errorf("pagerduty summary: %s", s)
			}
		}
	}
	// abort and needs_human say so too
	for _, o := range []playbook.OnTimeout{playbook.OnTimeoutAbort, playbook.OnTimeoutNeedsHuman} {
		nt.OnTimeout = o
		b, _ := Payload(Endpoint{Format: Slack}, nt, onset, "")
		if !strings.Contains(string(b), "on_timeout "+string(o)+": ") {
			t.Errorf("slack for %s: %s", o, b)
		}
	}
	// no approval pending: nothing about a deadline
	b, _ := Payload(Endpoint{Format: PagerDuty}, note(playbook.Critical), onset, "")
	if strings.Contains(string(b), "approval_") || strings.Contains(string(b), "on_timeout") {
		t.Errorf("pagerduty without a pending approval: %s", b)
	}
	var g map[string]any
	b, _ = Payload(Endpoint{Format: Generic}, note(playbook.Critical), onset, "")
	_ = json.Unmarshal(b, &g)
	if g["approval_on_timeout"] != "" {
		t.Errorf("generic without a pending approval: %s", b)
	}
}

// TestSignKnownAnswer pins the format documented in docs/run.md with values
// computed outside Go:
//
//	printf '%s' '1768439640.{"host":"cmp-017","state":"critical"}' | openssl dgst -sha256 -hmac s3cret
func TestSignKnownAnswer(t *testing.T) {
	const ts, body = "1768439640", `{"host":"cmp-017","state":"critical"}`
	for _, c := range []struct {
		secret, body, want string
	}{
		{"s3cret", body, "sha256=e8f43639aa2313a96a2e0f7385fdc873f28a03e07a08e185500875317a859c1f"},
		{"s3cret", "", "sha256=5781d65885645e205e15b132d0cfe22c35811d3eff6b5babbdd8172aba2062f7"},
		{"", body, "sha256=8cab2f19b7a384ac2516672dc41e5c898963a3fb9d41d3b2c6392b306eeabf25"},
	} {
		if got := Sign([]byte(c.secret), ts, []byte(c.body)); got != c.want {
			t.Errorf("Sign(%q, %s, %q) = %s, want %s", c.secret, ts, c.body, got, c.want)
		}
		if !verifyDocumented([]byte(c.secret), ts, []byte(c.body), c.want) {
			t.Errorf("the test's own verifier rejects the known answer for secret %q body %q", c.secret, c.body)
		}
	}
}

// TestWebhooksLinkTheIncidentView: with the console's public URL, every
// format links the host's incident view (the name escaped); without it,
// none does; the delivered body carries it.
func TestWebhooksLinkTheIncidentView(t *testing.T) {
	if got := IncidentURL("https://fenced.example/ops/", "cmp 017"); got != "https://fenced.example/ops/hosts/cmp%20017" {
		t.Fatalf("IncidentURL: %s", got)
	}
	link := IncidentURL("https://fenced.example", "cmp-017")
	nt := note(playbook.AwaitingApproval)
	for f, want := range map[Format]string{
		Generic:   `"url":"https://fenced.example/hosts/cmp-017"`,
		Slack:     `<https://fenced.example/hosts/cmp-017|incident view>`,
		PagerDuty: `"links":[{"href":"https://fenced.example/hosts/cmp-017","text":"fenced incident view of cmp-017"}]`,
	} {
		b, err := Payload(Endpoint{Format: f}, nt, onset, link)
		// JSON escapes < and > (\u003c): a JSON reader sees the characters
		text := strings.NewReplacer(`\u003c`, "<", `\u003e`, ">").Replace(string(b))
		if err != nil || !strings.Contains(text, want) {
			t.Errorf("%s: %v %s", f, err, b)
		}
		if b, _ := Payload(Endpoint{Format: f}, nt, onset, ""); strings.Contains(string(b), "/hosts/") {
			t.Errorf("%s without a console URL links: %s", f, b)
		}
	}
	got := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- string(b)
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := New(ctx, Config{Endpoints: []Endpoint{{Name: "x", URL: srv.URL}}, ConsoleURL: "https://fenced.example", Log: zerolog.Nop()})
	n.Notify(ctx, nt)
	if b := <-got; !strings.Contains(b, `"url":"https://fenced.example/hosts/cmp-017"`) {
		t.Fatalf("delivered: %s", b)
	}
}
