// Package notify delivers on-call webhooks: generic JSON, Slack-compatible
// and PagerDuty Events v2 payloads, signed with HMAC-SHA256, retried with
// backoff inside a deadline, deduplicated and grouped per incident, and
// recorded. Notify never blocks the playbook: deliveries queue up and a full
// queue drops (and counts) rather than waits.
package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/fencedhq/fenced/internal/metrics"
	"github.com/fencedhq/fenced/internal/obs"
	"github.com/fencedhq/fenced/pkg/clock"
	"github.com/fencedhq/fenced/pkg/playbook"
)

// Format of an endpoint's payload.
type Format string

// Formats.
const (
	Generic   Format = "generic"
	Slack     Format = "slack"
	PagerDuty Format = "pagerduty"
)

// Endpoint is one webhook receiver.
type Endpoint struct {
	Name       string
	URL        string
	Format     Format
	Secret     []byte // HMAC key; empty: unsigned
	RoutingKey string // PagerDuty integration key
	// States to send; empty: every state but normal.
	States []playbook.State
}

// Delivery is the record of one webhook sent (or given up).
type Delivery struct {
	At       time.Time `json:"t"`
	Endpoint string    `json:"endpoint"`
	Host     string    `json:"host"`
	State    string    `json:"state"`
	Incident string    `json:"incident"`
	Attempts int       `json:"attempts"`
	Status   int       `json:"status"`
	Outcome  string    `json:"outcome"` // sent, failed, deduplicated, dropped
	Error    string    `json:"error,omitempty"`
}

// Recorder keeps what was sent (the audit log in the daemon).
type Recorder interface {
	Delivered(ctx context.Context, d Delivery)
}

// Config of a Notifier.
type Config struct {
	Endpoints   []Endpoint
	Client      *http.Client  // default: 10 s timeout
	Attempt     time.Duration // per-attempt timeout, default 5 s
	Deadline    time.Duration // all attempts of one delivery, default 2 min
	Backoff     time.Duration // first retry delay, doubling, default 1 s
	DedupWindow time.Duration // same endpoint, incident and state within this window is sent once; default 30 min
	Queue       int           // default 256
	Clock       clock.Clock
	Log         zerolog.Logger
	Recorder    Recorder
	// Metrics receives the notifier's collectors (nil: none). Notifiers
	// built one after another on the same registerer share them.
	Metrics prometheus.Registerer
	// Tracer receives a span per delivery, a child of the span that
	// notified (nil: tracing off).
	Tracer trace.TracerProvider
	// ConsoleURL is the console's public base URL (api.public_url; ""
	// none): each webhook links the host's incident view under it.
	ConsoleURL string
}

// Stats counts outcomes.
type Stats struct {
	Sent, Failed, Deduplicated, Dropped, Retries int64
}

type job struct {
	ep  Endpoint
	n   playbook.Notification
	key string
	// what the notifying context carried: the delivery's span is a child
	// of its span and its log line has its B.6 fields
	parent trace.SpanContext
	fields obs.Fields
}

// Notifier implements playbook.Notifier.
type Notifier struct {
	cfg   Config
	tr    trace.Tracer
	queue chan job
	mu    sync.Mutex
	seen  map[string]time.Time
	stats Stats
	wg    sync.WaitGroup
	m     notifyMetrics
}

// Delivery outcomes, the outcome label of fenced_webhook_deliveries_total.
var outcomes = []string{"sent", "failed", "deduplicated", "dropped"}

type notifyMetrics struct {
	deliveries *prometheus.CounterVec   // endpoint, outcome
	retries    *prometheus.CounterVec   // endpoint
	duration   *prometheus.HistogramVec // endpoint
}

func newNotifyMetrics(reg prometheus.Registerer, eps []Endpoint) (notifyMetrics, error) {
	// on an error the collectors are still usable, unregistered
	var m notifyMetrics
	var e1, e2, e3 error
	m.deliveries, e1 = metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fenced_webhook_deliveries_total",
		Help: "Webhook deliveries by endpoint and outcome (sent, failed, deduplicated, dropped)."}, []string{"endpoint", "outcome"}))
	m.retries, e2 = metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fenced_webhook_retries_total",
		Help: "Webhook attempts retried after a 5xx, a 429 or a transport error."}, []string{"endpoint"}))
	m.duration, e3 = metrics.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "fenced_webhook_delivery_duration_seconds",
		Help: "Time from the first attempt of a delivery to its outcome, retries included.", Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}},
		[]string{"endpoint"}))
	for _, ep := range eps { // every series exists from the start: rate() sees the first failure
		for _, o := range outcomes {
			m.deliveries.WithLabelValues(ep.Name, o)
		}
		m.retries.WithLabelValues(ep.Name)
	}
	return m, errors.Join(e1, e2, e3)
}

// New starts a notifier; it stops when ctx ends (after the queue drains or
// the deadline of the job in flight passes).
func New(ctx context.Context, cfg Config) *Notifier {
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Attempt <= 0 {
		cfg.Attempt = 5 * time.Second
	}
	if cfg.Deadline <= 0 {
		cfg.Deadline = 2 * time.Minute
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = time.Second
	}
	if cfg.DedupWindow <= 0 {
		cfg.DedupWindow = 30 * time.Minute
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 256
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	n := &Notifier{cfg: cfg, queue: make(chan job, cfg.Queue), seen: map[string]time.Time{}, tr: obs.Tracer(cfg.Tracer)}
	m, err := newNotifyMetrics(cfg.Metrics, cfg.Endpoints)
	if err != nil { // a programming error: the deliveries go on, uncounted
		cfg.Log.Error().Err(err).Str("component", "notify").Msg("webhook metrics not registered")
	}
	n.m = m
	n.wg.Add(1)
	go n.run(ctx)
	return n
}

// Wait blocks until the worker has stopped (after ctx ended).
func (n *Notifier) Wait() { n.wg.Wait() }

// Stats returns the counters.
func (n *Notifier) Stats() Stats {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.stats
}

// Counters returns the stats by outcome, for /metrics.
func (n *Notifier) Counters() map[string]int64 {
	st := n.Stats()
	return map[string]int64{"sent": st.Sent, "failed": st.Failed, "deduplicated": st.Deduplicated, "dropped": st.Dropped, "retry": st.Retries}
}

// SetEndpoints replaces the endpoints (a reloaded config) from the next
// notification on. Deliveries already queued go where they were queued for;
// what was sent stays deduplicated for an endpoint that keeps its name.
func (n *Notifier) SetEndpoints(eps []Endpoint) {
	eps = append([]Endpoint(nil), eps...)
	for _, ep := range eps {
		for _, o := range outcomes {
			n.m.deliveries.WithLabelValues(ep.Name, o)
		}
		n.m.retries.WithLabelValues(ep.Name)
	}
	n.mu.Lock()
	n.cfg.Endpoints = eps
	n.mu.Unlock()
}

// Incident names the episode a notification belongs to: host and onset.
func Incident(n playbook.Notification) string {
	if n.Onset.IsZero() {
		return n.Host
	}
	return n.Host + "@" + n.Onset.UTC().Format("20060102T150405Z")
}

func wants(ep Endpoint, s playbook.State) bool {
	if len(ep.States) == 0 {
		return s != playbook.Normal
	}
	for _, w := range ep.States {
		if w == s {
			return true
		}
	}
	return false
}

// Notify queues the notification for every endpoint that wants it. It never blocks.
func (n *Notifier) Notify(ctx context.Context, note playbook.Notification) {
	now := n.cfg.Clock.Now()
	n.mu.Lock()
	eps := n.cfg.Endpoints
	n.mu.Unlock()
	for _, ep := range eps {
		if !wants(ep, note.State) {
			continue
		}
		key := ep.Name + "|" + Incident(note) + "|" + string(note.State)
		n.mu.Lock()
		last, dup := n.seen[key]
		if dup && now.Sub(last) < n.cfg.DedupWindow {
			n.stats.Deduplicated++
			n.mu.Unlock()
			n.m.deliveries.WithLabelValues(ep.Name, "deduplicated").Inc()
			n.record(ctx, Delivery{At: now, Endpoint: ep.Name, Host: note.Host, State: string(note.State), Incident: Incident(note), Outcome: "deduplicated"})
			continue
		}
		n.seen[key] = now
		n.mu.Unlock()
		select {
		case n.queue <- job{ep: ep, n: note, key: key, parent: trace.SpanContextFromContext(ctx), fields: obs.From(ctx)}:
		default:
			n.mu.Lock()
			n.stats.Dropped++
			n.mu.Unlock()
			n.m.deliveries.WithLabelValues(ep.Name, "dropped").Inc()
			obs.Line(ctx, n.cfg.Log.Error(), obs.Fields{Component: "notify", HostID: note.Host, Action: "webhook"}, 0, "dropped").
				Str("endpoint", ep.Name).Msg("webhook queue full")
			n.record(ctx, Delivery{At: now, Endpoint: ep.Name, Host: note.Host, State: string(note.State), Incident: Incident(note), Outcome: "dropped"})
		}
	}
}

func (n *Notifier) record(ctx context.Context, d Delivery) {
	if n.cfg.Recorder != nil {
		n.cfg.Recorder.Delivered(ctx, d)
	}
}

func (n *Notifier) run(ctx context.Context) {
	defer n.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-n.queue:
			n.deliver(ctx, j)
		}
	}
}

// IncidentURL is the console's incident view of host under base ("": none).
func IncidentURL(base, host string) string {
	if base == "" {
		return ""
	}
	return strings.TrimSuffix(base, "/") + "/hosts/" + url.PathEscape(host)
}

// Payload builds the body for an endpoint's format; link is the host's
// incident view in the console ("": none), in every format.
func Payload(ep Endpoint, note playbook.Notification, at time.Time, link string) ([]byte, error) {
	summary := fmt.Sprintf("fenced: %s is %s (d=%.2f): %s", note.Host, note.State, note.D, note.Reason)
	if !note.Deadline.IsZero() {
		summary += fmt.Sprintf(" — approve before %s: fenced approve %s --reason …", note.Deadline.UTC().Format(time.RFC3339), note.Host)
		if note.OnTimeout != "" {
			summary += "; at the deadline, on_timeout " + note.OnTimeout.Describe()
		}
	}
	var v any
	switch ep.Format {
	case Slack:
		text := summary
		if link != "" {
			text += " <" + link + "|incident view>"
		}
		v = map[string]any{"text": text}
	case PagerDuty:
		action, severity := "trigger", "warning"
		switch note.State {
		case playbook.Critical, playbook.AwaitingApproval, playbook.Fenced, playbook.Rebooting, playbook.NeedsHuman:
			severity = "critical"
		case playbook.Normal, playbook.Restored:
			action, severity = "resolve", "info"
		}
		details := map[string]any{"d": note.D, "reason": note.Reason, "state": note.State}
		if !note.Deadline.IsZero() {
			details["approval_deadline"], details["approval_on_timeout"] = note.Deadline.UTC(), note.OnTimeout
		}
		ev := map[string]any{
			"routing_key": ep.RoutingKey, "event_action": action, "dedup_key": "fenced-" + Incident(note),
			"payload": map[string]any{"summary": summary, "source": note.Host, "severity": severity,
				"component": "nova-compute", "group": "fenced", "class": string(note.State), "timestamp": at.UTC().Format(time.RFC3339),
				"custom_details": details},
		}
		if link != "" {
			ev["links"] = []map[string]string{{"href": link, "text": "fenced incident view of " + note.Host}}
		}
		v = ev
	default:
		g := map[string]any{"host": note.Host, "state": note.State, "d": note.D, "reason": note.Reason,
			"incident": Incident(note), "approval_deadline": note.Deadline, "approval_on_timeout": note.OnTimeout, "t": at.UTC()}
		if link != "" {
			g["url"] = link
		}
		v = g
	}
	return json.Marshal(v)
}

// Sign returns the signature header value for body: "sha256=<hex>" over
// "<timestamp>.<body>".
func Sign(secret []byte, ts string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte("."))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Headers carrying the signature.
const (
	HeaderSignature = "X-Fenced-Signature"
	HeaderTimestamp = "X-Fenced-Timestamp"
)

func (n *Notifier) deliver(ctx context.Context, j job) {
	start := n.cfg.Clock.Now()
	ctx, call := obs.Start(trace.ContextWithRemoteSpanContext(obs.With(ctx, j.fields), j.parent), n.tr, n.cfg.Clock, "webhook.deliver",
		obs.Fields{Component: "notify", HostID: j.n.Host, Action: "webhook"}, trace.SpanKindClient)
	call.Set(attribute.String("webhook.endpoint", j.ep.Name), attribute.String("state", string(j.n.State)))
	d := Delivery{At: start, Endpoint: j.ep.Name, Host: j.n.Host, State: string(j.n.State), Incident: Incident(j.n)}
	body, err := Payload(j.ep, j.n, start, IncidentURL(n.cfg.ConsoleURL, j.n.Host))
	if err != nil {
		d.Outcome, d.Error = "failed", err.Error()
		n.finish(ctx, d, call)
		return
	}
	dctx, cancel := context.WithTimeout(ctx, n.cfg.Deadline)
	defer cancel()
	wait := n.cfg.Backoff
	for {
		d.Attempts++
		status, retry, err := n.attempt(dctx, j.ep, body)
		d.Status = status
		if err == nil {
			d.Outcome, d.Error = "sent", ""
			n.finish(ctx, d, call)
			return
		}
		d.Error = err.Error()
		if !retry {
			break
		}
		select {
		case <-dctx.Done():
		case <-n.cfg.Clock.After(wait):
			n.mu.Lock()
			n.stats.Retries++
			n.mu.Unlock()
			n.m.retries.WithLabelValues(j.ep.Name).Inc()
			wait *= 2
			continue
		}
		break
	}
	d.Outcome = "failed"
	// a failed delivery may be tried again on the next notification
	n.mu.Lock()
	delete(n.seen, j.key)
	n.mu.Unlock()
	n.finish(ctx, d, call)
}

// finished counts a delivery's outcome and how long it took.
func (n *Notifier) finished(d Delivery) {
	n.m.deliveries.WithLabelValues(d.Endpoint, d.Outcome).Inc()
	n.m.duration.WithLabelValues(d.Endpoint).Observe(n.cfg.Clock.Now().Sub(d.At).Seconds())
}

func (n *Notifier) finish(ctx context.Context, d Delivery, call *obs.Call) {
	n.finished(d)
	n.mu.Lock()
	if d.Outcome == "sent" {
		n.stats.Sent++
	} else {
		n.stats.Failed++
	}
	n.mu.Unlock()
	ev := n.cfg.Log.Info()
	if d.Outcome != "sent" {
		ev = n.cfg.Log.Warn()
	}
	var err error
	if d.Error != "" {
		err = errors.New(d.Error)
	}
	call.Set(attribute.Int("http.status_code", d.Status), attribute.Int("attempts", d.Attempts))
	call.End(ev, d.Outcome, err).Str("endpoint", d.Endpoint).Int("attempts", d.Attempts).Int("status", d.Status).Msg("webhook delivery")
	n.record(ctx, d)
}

// attempt sends once; retry says whether another attempt could help.
func (n *Notifier) attempt(ctx context.Context, ep Endpoint, body []byte) (int, bool, error) {
	actx, cancel := context.WithTimeout(ctx, n.cfg.Attempt)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, ep.URL, bytes.NewReader(body))
	if err != nil {
		return 0, false, fmt.Errorf("notify: %s: %w", ep.Name, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "fenced-webhook/1")
	if len(ep.Secret) > 0 {
		ts := strconv.FormatInt(n.cfg.Clock.Now().Unix(), 10)
		req.Header.Set(HeaderTimestamp, ts)
		req.Header.Set(HeaderSignature, Sign(ep.Secret, ts, body))
	}
	resp, err := n.cfg.Client.Do(req)
	if err != nil {
		return 0, true, fmt.Errorf("notify: %s: %w", ep.Name, err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode/100 == 2:
		return resp.StatusCode, false, nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return resp.StatusCode, true, fmt.Errorf("notify: %s: HTTP %d", ep.Name, resp.StatusCode)
	default:
		return resp.StatusCode, false, fmt.Errorf("notify: %s: HTTP %d (not retried)", ep.Name, resp.StatusCode)
	}
}

// Fanout sends every notification to several notifiers.
type Fanout []playbook.Notifier

// Notify calls each notifier.
func (f Fanout) Notify(ctx context.Context, n playbook.Notification) {
	for _, x := range f {
		if x != nil {
			x.Notify(ctx, n)
		}
	}
}
