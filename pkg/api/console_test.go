package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fencedhq/fenced/pkg/clock"
	"github.com/fencedhq/fenced/pkg/daemon"
	"github.com/fencedhq/fenced/pkg/fleet"
	"github.com/fencedhq/fenced/pkg/lease"
	"github.com/fencedhq/fenced/pkg/playbook"
	"github.com/fencedhq/fenced/pkg/report"
	"github.com/fencedhq/fenced/pkg/signals"
)

// liveBackend is a snapshot the test changes while the API reads it.
type liveBackend struct {
	mu   sync.Mutex
	snap daemon.Snapshot
}

func (b *liveBackend) Snapshot() daemon.Snapshot {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.snap
	s.Hosts = append([]fleet.View(nil), b.snap.Hosts...)
	return s
}
func (b *liveBackend) Operate(context.Context, string, playbook.Event, string, string) ([]playbook.Change, error) {
	return nil, nil
}
func (b *liveBackend) SetPaused(context.Context, bool, string, string) error { return nil }

// set changes one host and moves the daemon's clock a tick on.
func (b *liveBackend) set(host string, st playbook.State, d float64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.snap.At = b.snap.At.Add(5 * time.Second)
	for i := range b.snap.Hosts {
		if b.snap.Hosts[i].Host.Name == host {
			b.snap.Hosts[i].Host.State, b.snap.Hosts[i].Verdict.D = st, d
		}
	}
}

var t0 = time.Date(2026, 1, 15, 1, 20, 0, 0, time.UTC)

func contrib(sig signals.Name, v, c float64) []signals.Contribution {
	return []signals.Contribution{{Signal: sig, Value: v, Contribution: c}}
}

// fleetOf is n hosts, every one normal but a few.
func fleetOf(n int) *liveBackend {
	b := &liveBackend{snap: daemon.Snapshot{At: t0, Mode: "approve"}}
	for i := range n {
		name := fmt.Sprintf("cmp-%03d", i)
		v := fleet.View{Host: playbook.Host{Name: name, State: playbook.Normal}, Group: "default",
			Verdict: signals.Verdict{D: 0.01 * float64(i%10), Contributions: contrib(signals.RunqueuePerCore, 1, 0.01*float64(i%10))}}
		b.snap.Hosts = append(b.snap.Hosts, v)
	}
	return b
}

func (b *liveBackend) put(i int, st playbook.State, d float64, sig signals.Name, group string) {
	h := &b.snap.Hosts[i]
	h.Host.State, h.Verdict.D, h.Verdict.Contributions, h.Group = st, d, contrib(sig, 10, d), group
}

func pageOf(t *testing.T, s http.Handler, q string) HostsReply {
	t.Helper()
	code, body := do(t, s, "GET", "/api/v1/hosts?"+q, "", "")
	if code != 200 {
		t.Fatalf("%s: %d %s", q, code, body)
	}
	var rep HostsReply
	if err := json.Unmarshal([]byte(body), &rep); err != nil {
		t.Fatal(err)
	}
	return rep
}

func names(rep HostsReply) string {
	var out []string
	for _, h := range rep.Hosts {
		out = append(out, h.Host)
	}
	return strings.Join(out, " ")
}

// TestHostsPagedAndFiltered: the table's page comes from the API, not
// normal first by severity then d, filtered by state, group, signal and
// text; a query without the new parameters gets every host as before.
func TestHostsPagedAndFiltered(t *testing.T) {
	b := fleetOf(120)
	b.put(50, playbook.Warn, 0.5, signals.CPUSteal, "rack2")
	b.put(60, playbook.Warn, 0.55, signals.HeartbeatLag, "rack2")
	b.put(70, playbook.AwaitingApproval, 0.9, signals.CPUSteal, "rack1")
	b.put(80, playbook.NeedsHuman, 0.3, signals.LibvirtLatency, "rack1")
	b.put(90, playbook.Critical, 0.8, signals.CPUSteal, "rack2")
	b.snap.Groups = []fleet.GroupView{{Group: playbook.Group{Name: "rack1"}}, {Group: playbook.Group{Name: "rack2"}}, {Group: playbook.Group{Name: "default"}}}
	s := New(b, Reads{}, nil)

	rep := pageOf(t, s, "sort=severity&limit=6")
	if got := names(rep); got != "cmp-080 cmp-070 cmp-090 cmp-060 cmp-050 cmp-009" {
		t.Errorf("severity then d: %s", got)
	}
	if rep.Page == nil || rep.Page.Matched != 120 || rep.Page.Limit != 6 || len(rep.Hosts) != 6 {
		t.Errorf("page: %+v, %d rows", rep.Page, len(rep.Hosts))
	}
	if rep := pageOf(t, s, "sort=severity&offset=117&limit=50"); len(rep.Hosts) != 3 || rep.Page.Offset != 117 {
		t.Errorf("last page: %d rows, %+v", len(rep.Hosts), rep.Page)
	}
	if rep := pageOf(t, s, "sort=severity&offset=500"); len(rep.Hosts) != 0 || rep.Page.Matched != 120 {
		t.Errorf("past the end: %d rows, %+v", len(rep.Hosts), rep.Page)
	}
	// limit=0: no rows, the count and the daemon's time (fenced audit --since reads it)
	if rep := pageOf(t, s, "limit=0"); len(rep.Hosts) != 0 || rep.Page.Matched != 120 || !rep.At.Equal(t0) {
		t.Errorf("limit=0: %d rows, %+v, t %v", len(rep.Hosts), rep.Page, rep.At)
	}
	if got := names(pageOf(t, s, "sort=severity&state=not_normal")); got != "cmp-080 cmp-070 cmp-090 cmp-060 cmp-050" {
		t.Errorf("not normal: %s", got)
	}
	if got := names(pageOf(t, s, "sort=severity&state=warn,critical")); got != "cmp-090 cmp-060 cmp-050" {
		t.Errorf("warn or critical: %s", got)
	}
	if got := names(pageOf(t, s, "sort=severity&signal=cpu_steal_pct")); got != "cmp-070 cmp-090 cmp-050" {
		t.Errorf("by signal: %s", got)
	}
	if got := names(pageOf(t, s, "sort=severity&group=rack2&state=not_normal")); got != "cmp-090 cmp-060 cmp-050" {
		t.Errorf("by group: %s", got)
	}
	if got := names(pageOf(t, s, "q=CMP-07&limit=3")); got != "cmp-070 cmp-071 cmp-072" {
		t.Errorf("search (name order without sort): %s", got)
	}
	for q, field := range map[string]string{"limit=501": "limit", "offset=-1": "offset", "state=asleep": "state", "signal=cpu": "signal", "sort=d": "sort", "limit=x": "limit"} {
		code, body := do(t, s, "GET", "/api/v1/hosts?"+q, "", "")
		var e Error
		if code != 400 || json.Unmarshal([]byte(body), &e) != nil || e.Field != field {
			t.Errorf("%s: %d %s, want 400 naming %s", q, code, body, field)
		}
	}
	// no paging parameter: every host in name order, no page
	_, body := do(t, s, "GET", "/api/v1/hosts", "", "")
	var all HostsReply
	if err := json.Unmarshal([]byte(body), &all); err != nil || len(all.Hosts) != 120 || all.Hosts[0].Host != "cmp-000" || strings.Contains(body, `"page"`) {
		t.Errorf("plain hosts changed: %d hosts, page in body %v", len(all.Hosts), strings.Contains(body, `"page"`))
	}
}

// TestOverview: counts per state and group, the banners that hold fencing,
// one cell per host with what the lists need (deadline and what happens
// then, unfenceable, blind), and the daemon's time.
func TestOverview(t *testing.T) {
	b := fleetOf(6)
	b.put(1, playbook.AwaitingApproval, 0.9, signals.CPUSteal, "rack1")
	b.snap.Hosts[1].Host.ApprovalDeadline, b.snap.Hosts[1].Host.ApprovalOnTimeout = t0.Add(10*time.Minute), "proceed"
	b.put(2, playbook.Warn, 0.5, signals.HeartbeatLag, "rack1")
	b.snap.Hosts[3].Verdict.Blind = true
	b.snap.Unfenceable = map[string]string{"cmp-004": "BMC refused the credentials"}
	b.snap.Paused = true
	b.snap.PausedGroups = map[string]lease.GroupPause{"rack1": {Operator: "alice", Reason: "rack work"}}
	b.snap.Groups = []fleet.GroupView{{Group: playbook.Group{Name: "rack1", Paused: true}, Hold: "saturated: 2 of 2 hosts at warn or worse"}, {Group: playbook.Group{Name: "default"}}}
	s := New(b, Reads{}, nil)
	code, body := do(t, s, "GET", "/api/v1/overview", "", "")
	var o Overview
	if err := json.Unmarshal([]byte(body), &o); err != nil || code != 200 {
		t.Fatalf("%d %v %s", code, err, body)
	}
	if !o.At.Equal(t0) || o.Total != 6 || len(o.Cells) != 6 || !o.Full {
		t.Errorf("overview: t %v total %d cells %d", o.At, o.Total, len(o.Cells))
	}
	if o.States["normal"] != 4 || o.States["awaiting_approval"] != 1 || o.States["warn"] != 1 {
		t.Errorf("states: %v", o.States)
	}
	if len(o.Groups) != 2 || o.Groups[0].Name != "rack1" || o.Groups[0].Total != 2 || o.Groups[0].States["warn"] != 1 || !o.Groups[0].Paused || o.Groups[0].Hold == "" ||
		o.Groups[1].Name != "default" || o.Groups[1].Total != 4 {
		t.Errorf("groups: %+v", o.Groups)
	}
	kinds := map[string]string{}
	for _, bn := range o.Banners {
		kinds[bn.Kind] = bn.Scope + ": " + bn.Text
	}
	if !strings.HasPrefix(kinds["paused"], "fleet") || !strings.Contains(kinds["group_paused"], "alice: rack work") || !strings.Contains(kinds["guard"], "saturated") {
		t.Errorf("banners: %v", kinds)
	}
	c := map[string]Cell{}
	for _, x := range o.Cells {
		c[x.Host] = x
	}
	if x := c["cmp-001"]; !x.Deadline.Equal(t0.Add(10*time.Minute)) || x.OnTimeout != "proceed" || x.Signals[0] != "cpu_steal_pct" {
		t.Errorf("pending cell: %+v", x)
	}
	if !c["cmp-003"].Blind || c["cmp-004"].Unfenceable == "" || !c["cmp-000"].Deadline.IsZero() {
		t.Errorf("cells: %+v", o.Cells)
	}
}

// sseReader reads a text/event-stream line by line.
type sseReader struct {
	t     *testing.T
	lines chan string
}

func openEvents(t *testing.T, url string) (*sseReader, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", url+"/api/v1/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	r := &sseReader{t: t, lines: make(chan string, 100)}
	go func() {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			r.lines <- sc.Text()
		}
		close(r.lines)
	}()
	return r, func() { cancel(); resp.Body.Close() }
}

// next is the next event: its name and data ("" and the comment for a comment).
func (r *sseReader) next() (string, string) {
	r.t.Helper()
	var event, data string
	for {
		select {
		case l, ok := <-r.lines:
			if !ok {
				r.t.Fatal("the event stream ended")
			}
			switch {
			case strings.HasPrefix(l, ":"):
				return "", l
			case strings.HasPrefix(l, "event: "):
				event = l[7:]
			case strings.HasPrefix(l, "data: "):
				data = l[6:]
			case l == "" && event != "":
				return event, data
			}
		case <-time.After(10 * time.Second):
			r.t.Fatal("no event")
		}
	}
}

// TestEventStream: the stream starts with the overview of every host, then
// sends only the hosts that changed, nothing when nothing changed, and a
// keep-alive comment when idle; it needs the viewer's token like every read.
func TestEventStream(t *testing.T) {
	b := fleetOf(50)
	fake := clock.NewFake(t0)
	s := New(b, Reads{Clock: fake}, nil)
	s.hub.poll() // as Run does; the test polls itself
	s.hub.open()
	srv := httptest.NewServer(s)
	defer srv.Close()
	r, stop := openEvents(t, srv.URL)
	defer stop()

	ev, data := r.next()
	var o Overview
	if err := json.Unmarshal([]byte(data), &o); ev != "overview" || err != nil || !o.Full || len(o.Cells) != 50 || o.States["normal"] != 50 {
		t.Fatalf("first event %s: %v, full %v, %d cells", ev, err, o.Full, len(o.Cells))
	}
	seq := o.Seq

	b.set("cmp-017", playbook.Critical, 0.81)
	s.hub.poll()
	ev, data = r.next()
	o = Overview{}
	if err := json.Unmarshal([]byte(data), &o); ev != "delta" || err != nil || o.Full || len(o.Cells) != 1 {
		t.Fatalf("delta %s: %v %s", ev, err, data)
	}
	if c := o.Cells[0]; c.Host != "cmp-017" || c.State != "critical" || c.D != 0.81 || o.Seq != seq+1 || o.States["critical"] != 1 || !o.At.Equal(t0.Add(5*time.Second)) {
		t.Errorf("delta: %+v seq %d states %v t %v", c, o.Seq, o.States, o.At)
	}
	// the same snapshot again: nothing to send; then a change is the next event
	s.hub.poll()
	b.set("cmp-002", playbook.Warn, 0.45)
	s.hub.poll()
	if _, data := r.next(); !strings.Contains(data, `"h":"cmp-002"`) || strings.Contains(data, "cmp-017") {
		t.Errorf("after an idle poll: %s", data)
	}
	// idle: a keep-alive comment once KeepAlive passed on the API's clock
	got := make(chan string, 1)
	go func() {
		_, c := r.next()
		got <- c
	}()
	for i := 1; ; i++ {
		fake.Set(t0.Add(time.Duration(i) * KeepAlive))
		select {
		case c := <-got:
			if c != ": keep-alive" {
				t.Errorf("idle stream: %q", c)
			}
			return
		case <-time.After(50 * time.Millisecond):
		}
		if i > 200 {
			t.Fatal("no keep-alive")
		}
	}
}

// TestEventStreamStartsAtTheLastPoll: the first event is the overview as
// of the hub's last poll (its seq and time), not a newer snapshot: a host
// that changed and changed back between two polls is shown as it is.
func TestEventStreamStartsAtTheLastPoll(t *testing.T) {
	b := fleetOf(5)
	s := New(b, Reads{Clock: clock.NewFake(t0)}, nil)
	s.hub.poll()
	s.hub.open()
	b.set("cmp-002", playbook.Critical, 0.8) // between polls
	ch, first, ok := s.hub.subscribe()
	if !ok {
		t.Fatal("no stream while the hub runs")
	}
	b.set("cmp-002", playbook.Normal, 0.02) // back as at the last poll
	s.hub.poll()
	// the page's view: the overview, then the delta
	seen := map[string]Cell{}
	var seqs []uint64
	for _, msg := range [][]byte{first, <-ch} {
		_, data, _ := strings.Cut(strings.TrimSpace(string(msg)), "data: ")
		var o Overview
		if err := json.Unmarshal([]byte(data), &o); err != nil {
			t.Fatalf("%v: %s", err, msg)
		}
		for _, c := range o.Cells {
			seen[c.Host] = c
		}
		seqs = append(seqs, o.Seq)
		if len(seqs) == 1 && !o.At.Equal(t0) {
			t.Errorf("the first event is at %v, want the last poll's %v", o.At, t0)
		}
	}
	if c := seen["cmp-002"]; c.State != "normal" || c.D != 0.02 {
		t.Errorf("the page shows cmp-002 %s d=%v; the daemon says normal d=0.02", c.State, c.D)
	}
	if seqs[1] != seqs[0]+1 {
		t.Errorf("seq %v: the delta does not follow the overview", seqs)
	}
	// once Run ends, no one subscribes to a stream that never closes
	s.hub.closeAll()
	if _, _, ok := s.hub.subscribe(); ok {
		t.Error("subscribed after the hub closed")
	}
}

func TestEventStreamAuthAndSlowSubscribers(t *testing.T) {
	b := fleetOf(3)
	s := New(b, Reads{Clock: clock.NewFake(t0)}, map[string]Identity{"v": {Name: "viewer", Role: Viewer}, "m": {Name: "prom", Role: Scrape}})
	s.hub.open()
	if code, _ := do(t, s, "GET", "/api/v1/events", "", ""); code != 401 {
		t.Errorf("events without a token: %d", code)
	}
	if code, _ := do(t, s, "GET", "/api/v1/events", "m", ""); code != 403 {
		t.Errorf("events with a scrape token: %d", code)
	}
	// not running: 503, never a stream that stays silent
	if code, _ := do(t, New(b, Reads{}, nil), "GET", "/api/v1/events", "", ""); code != 503 {
		t.Errorf("events without Run: %d", code)
	}
	// a subscriber that does not read is dropped once subBuffer events wait
	ch, _, _ := s.hub.subscribe()
	for i := 0; i <= subBuffer; i++ {
		b.set("cmp-001", playbook.Normal, float64(i)/100)
		s.hub.poll()
	}
	n := 0
	for range ch {
		n++
	}
	if n != subBuffer {
		t.Errorf("a slow subscriber got %d events before its stream closed, want %d", n, subBuffer)
	}
}

// TestHistoryAndIncident: the API keeps each host's d through the ticks
// and the signals of a host that left normal; the incident view (HTML,
// with its charts) and the d(t) PNG are drawn from it.
func TestHistoryAndIncident(t *testing.T) {
	b := fleetOf(4)
	r := reads(t)
	novaAsked := 0 // the incident view asks Nova for the servers; the d(t) chart does not
	r.Servers = func(context.Context, string) ([]string, error) {
		novaAsked++
		return []string{"vm-1 (abc) ACTIVE"}, nil
	}
	s := New(b, r, nil)
	for i := 0; i < 5; i++ {
		st := playbook.Normal
		if i >= 2 {
			st = playbook.Warn
		}
		b.set("cmp-002", st, 0.1*float64(i+1))
		s.hub.poll()
	}
	code, body := do(t, s, "GET", "/api/v1/hosts/cmp-002/history", "", "")
	var h struct {
		T       []time.Time `json:"t"`
		D       []float64   `json:"d"`
		State   []string    `json:"state"`
		Detail  int         `json:"detail_from"`
		Signals []struct {
			Signal string    `json:"signal"`
			Value  []float64 `json:"value"`
		} `json:"signals"`
	}
	if err := json.Unmarshal([]byte(body), &h); err != nil || code != 200 {
		t.Fatalf("%d %v %s", code, err, body)
	}
	if len(h.D) != 5 || h.D[4] != 0.5 || h.State[1] != "normal" || h.State[2] != "warn" || !h.T[4].Equal(t0.Add(25*time.Second)) {
		t.Errorf("history: %+v", h)
	}
	if h.Detail != 2 || len(h.Signals) != len(signals.All) || len(h.Signals[0].Value) != 3 {
		t.Errorf("signal detail from the first tick out of normal: from %d, %d signals", h.Detail, len(h.Signals))
	}
	if code, _ := do(t, s, "GET", "/api/v1/hosts/nope/history", "", ""); code != 404 {
		t.Errorf("unknown host: %d", code)
	}
	// a normal host far from warn keeps d only
	_, body = do(t, s, "GET", "/api/v1/hosts/cmp-001/history", "", "")
	if strings.Contains(body, `"signals"`) {
		t.Errorf("a quiet host keeps signal detail: %s", body)
	}

	code, page := do(t, s, "GET", "/api/v1/hosts/cmp-002/report.html", "", "")
	if code != 200 || !strings.HasPrefix(page, "<!doctype html>") || strings.Count(page, "<svg") < 2+len(signals.All) || !strings.Contains(page, `class="series" data-series="d"`) {
		t.Fatalf("report.html: %d, %d charts", code, strings.Count(page, "<svg"))
	}
	if !strings.Contains(page, "vm-1 (abc) ACTIVE") || novaAsked != 1 {
		t.Errorf("report.html: servers shown %v, Nova asked %d times", strings.Contains(page, "vm-1 (abc) ACTIVE"), novaAsked)
	}
	for _, never := range []string{"<script", "src=", "href=\"http", "@import", "url("} {
		if strings.Contains(page, never) {
			t.Errorf("the incident page is not self-contained: %s", never)
		}
	}
	if !strings.Contains(page, "r_eff") || !strings.Contains(page, "recommendation") && !strings.Contains(page, "lower the CPU allocation ratio") {
		t.Error("the incident page lacks r_eff or the recommendation")
	}
	if _, frag := do(t, s, "GET", "/api/v1/hosts/cmp-002/report.html?fragment=1", "", ""); strings.Contains(frag, "<html") || !strings.Contains(frag, `id="incident"`) {
		t.Error("the fragment is a whole page")
	}
	req := httptest.NewRequest("GET", "/api/v1/hosts/cmp-002/report.png", nil)
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	img, err := png.Decode(bytes.NewReader(rec.Body.Bytes()))
	if err != nil || rec.Header().Get("Content-Type") != "image/png" || img.Bounds().Dx() != 900 {
		t.Fatalf("report.png: %v %s", err, rec.Header().Get("Content-Type"))
	}
	if novaAsked != 2 { // the fragment asked once more; the PNG never
		t.Errorf("Nova asked %d times after the page, its fragment and the PNG, want 2", novaAsked)
	}
	for _, path := range []string{"/api/v1/hosts/nope/report.png", "/api/v1/hosts/nope/report.html", "/api/v1/hosts/nope/report"} {
		if code, body := do(t, s, "GET", path, "", ""); code != 404 || !strings.Contains(body, `unknown host \"nope\"`) {
			t.Errorf("%s: %d %s", path, code, body)
		}
	}
	// the JSON report gains the history, additively
	_, body = do(t, s, "GET", "/api/v1/hosts/cmp-002/report", "", "")
	for _, want := range []string{`"history"`, `"timeline"`, `"recommendation"`, `"r_eff"`} {
		if !strings.Contains(body, want) {
			t.Errorf("report lacks %s", want)
		}
	}
	// the console's page opens on a host at its own URL
	if code, page := do(t, s, "GET", "/hosts/cmp-002", "", ""); code != 200 || !strings.Contains(page, `id="incident-view"`) {
		t.Errorf("/hosts/cmp-002: %d", code)
	}
}

// TestHistoryRing: the ring keeps the newest points, and signal detail for
// at most maxDetail hosts, the least recently interesting dropped first.
func TestHistoryRing(t *testing.T) {
	h := newHistory(4, 1)
	b := fleetOf(3)
	for i := 0; i < 6; i++ {
		switch i {
		case 1:
			b.set("cmp-000", playbook.Warn, 0.5)
		case 3:
			b.set("cmp-000", playbook.Normal, 0.0)
			b.set("cmp-001", playbook.Critical, 0.8)
		default:
			b.set("cmp-002", playbook.Normal, float64(i)/100)
		}
		h.record(b.Snapshot(), t0Thresholds, nil)
	}
	got := h.of("cmp-002")
	if len(got.T) != 4 || !got.T[0].Equal(b.snap.At.Add(-20*time.Second)) || got.D[3] != 0.05 {
		t.Errorf("ring: %v %v", got.T, got.D)
	}
	if h.of("cmp-000").Signals != nil || h.of("cmp-001").Signals == nil {
		t.Errorf("detail kept for the wrong host: cmp-000 %v, cmp-001 %v", h.of("cmp-000").Signals != nil, h.of("cmp-001").Signals != nil)
	}
}

var t0Thresholds = report.Thresholds{Warn: 0.4, Crit: 0.7}

// TestHistoryStorm: with more hosts interesting than keep signal detail,
// the hosts that have it keep it while they stay interesting (it is not
// passed around among them each tick); a host that cools gives its detail
// to one that is interesting now.
func TestHistoryStorm(t *testing.T) {
	h := newHistory(8, 2)
	b := fleetOf(5)
	for tick, hot := range [][]int{{0, 1}, {0, 1, 2, 3, 4}, {1, 2, 3, 4}} {
		for i := range b.snap.Hosts {
			b.snap.Hosts[i].Host.State = playbook.Normal
		}
		for _, i := range hot {
			b.snap.Hosts[i].Host.State = playbook.Warn
		}
		b.snap.At = t0.Add(time.Duration(tick) * 5 * time.Second)
		h.record(b.Snapshot(), t0Thresholds, nil)
	}
	if got := h.of("cmp-001"); got.Signals == nil || got.Detail != 0 || len(got.Signals[0].Value) != 3 {
		t.Errorf("cmp-001, interesting throughout, lost its detail: from %d, signals %v", got.Detail, got.Signals != nil)
	}
	if got := h.of("cmp-002"); got.Signals == nil || got.Detail != 2 || len(got.Signals[0].Value) != 1 {
		t.Errorf("cmp-002 did not take the detail cmp-000 gave up when it cooled: from %d, signals %v", got.Detail, got.Signals != nil)
	}
	for _, host := range []string{"cmp-000", "cmp-003", "cmp-004"} {
		if h.of(host).Signals != nil {
			t.Errorf("%s keeps detail: more than 2 hosts do", host)
		}
	}
}

// TestHistoryForgetsGoneHosts: a host that left the snapshot is forgotten
// with its detail; if it comes back, its history starts anew.
func TestHistoryForgetsGoneHosts(t *testing.T) {
	h := newHistory(8, 1)
	b := fleetOf(3)
	b.put(2, playbook.Warn, 0.5, signals.CPUSteal, "default")
	h.record(b.Snapshot(), t0Thresholds, nil)
	all := b.snap.Hosts
	b.snap.Hosts, b.snap.At = all[:2], t0.Add(5*time.Second)
	h.record(b.Snapshot(), t0Thresholds, nil)
	if _, kept := h.hosts["cmp-002"]; kept || len(h.detailed) != 0 {
		t.Errorf("a gone host is kept: %v, %d hosts with detail", kept, len(h.detailed))
	}
	b.snap.Hosts, b.snap.At = all, t0.Add(10*time.Second)
	h.record(b.Snapshot(), t0Thresholds, nil)
	if got := h.of("cmp-002"); len(got.T) != 1 || !got.T[0].Equal(b.snap.At) || got.Signals == nil {
		t.Errorf("the host back: %v, signals %v", got.T, got.Signals != nil)
	}
}

// BenchmarkPoll10000: what the console's sampler costs once a second at
// 10,000 hosts, in a quiet fleet and in a storm (1,000 hosts not normal,
// more than DetailHosts).
func BenchmarkPoll10000(b *testing.B) {
	for _, hot := range []int{10, 1000} {
		b.Run(fmt.Sprintf("not_normal=%d", hot), func(b *testing.B) {
			be := fleetOf(10000)
			for i := range hot {
				be.put(i*(10000/hot), playbook.Warn, 0.5, signals.CPUSteal, "default")
			}
			d := &fakeBackend{snap: be.snap} // shares its snapshot as the daemon does
			s := New(d, Reads{}, nil)
			for b.Loop() {
				d.snap.At = d.snap.At.Add(time.Second)
				s.hub.poll()
			}
		})
	}
}

// BenchmarkHostsPage10000: one page of the console's table at 10,000
// hosts, as each open console asks for it once a second while hosts change.
func BenchmarkHostsPage10000(b *testing.B) {
	be := fleetOf(10000)
	for i := range 100 {
		be.put(i*100, playbook.Warn, 0.5, signals.CPUSteal, "default")
	}
	s := New(&fakeBackend{snap: be.snap}, Reads{}, nil)
	for b.Loop() {
		s.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/api/v1/hosts?sort=severity&offset=0&limit=50", nil))
	}
}
