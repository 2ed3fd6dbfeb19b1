package api

// The operator console's reads (the page itself is console.html):
//
//	GET /api/v1/overview                 the fleet at a glance: counts per state and group, banners, one cell per host
//	GET /api/v1/events                   the same as Server-Sent Events: the overview, then only what changed
//	GET /api/v1/hosts?sort=severity&state=S,…&group=G&signal=N&q=TEXT&offset=O&limit=L   one page of the table
//	GET /api/v1/hosts/{host}/history     d, state and the signals through the last ticks
//	GET /api/v1/hosts/{host}/report.html the incident view (?fragment=1: without html/body, for the console)
//	GET /api/v1/hosts/{host}/report.png  its d(t) chart
//	GET /hosts/{host}                    the console opened on a host (a link for webhooks and tickets)

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fencedhq/fenced/internal/escape"
	"github.com/fencedhq/fenced/pkg/clock"
	"github.com/fencedhq/fenced/pkg/daemon"
	"github.com/fencedhq/fenced/pkg/fleet"
	"github.com/fencedhq/fenced/pkg/playbook"
	"github.com/fencedhq/fenced/pkg/policy"
	"github.com/fencedhq/fenced/pkg/report"
	"github.com/fencedhq/fenced/pkg/signals"
)

// Console timings and bounds.
const (
	// EventEvery is how often the API looks at the daemon's snapshot for
	// changes to send (the API's clock, Reads.Clock).
	EventEvery = time.Second
	// KeepAlive is how often an idle event stream gets a comment, so that
	// proxies do not close it.
	KeepAlive = 15 * time.Second
	// HistoryPoints is how many ticks of d the API keeps per host.
	HistoryPoints = 720
	// DetailHosts is how many hosts keep the history of every signal
	// (hosts that left normal or came within half of d_warn, newest kept).
	DetailHosts = 256
	// MaxPage is the most rows one page of GET /api/v1/hosts holds.
	MaxPage = 500
	// subBuffer is how many events a slow subscriber may fall behind
	// before its stream is closed (the page reconnects and starts over).
	subBuffer = 32
)

// policySource is a Backend that says its policy (the daemon does): the
// console draws d's and each signal's thresholds.
type policySource interface {
	Policy() *policy.Policy
}

// severity orders states for the table: the ones that need a person first.
var severity = map[string]int{
	string(playbook.NeedsHuman): 7, string(playbook.AwaitingApproval): 6, string(playbook.Critical): 5,
	string(playbook.Fenced): 4, string(playbook.Rebooting): 3, string(playbook.Warn): 2, string(playbook.Restored): 1,
	string(playbook.Normal): 0,
}

// Cell is one host of the overview: what the heat map, the counts and the
// lists (pending approvals, unfenceable, blind) are drawn from.
type Cell struct {
	Host        string    `json:"h"`
	State       string    `json:"s"`
	D           float64   `json:"d"`
	Group       string    `json:"g,omitempty"`
	Blind       bool      `json:"b,omitempty"`
	Incoherent  bool      `json:"i,omitempty"`
	Unfenceable string    `json:"u,omitempty"`
	Signals     []string  `json:"sig,omitempty"` // signals contributing to d, largest first (at most 3)
	Deadline    time.Time `json:"dl,omitzero"`   // approval deadline (the daemon's clock)
	OnTimeout   string    `json:"ot,omitempty"`  // what happens at it (approval.on_timeout)
}

// GroupCount is one group's hosts per state, its pause and its guard.
type GroupCount struct {
	Name   string         `json:"name"`
	Total  int            `json:"total"`
	States map[string]int `json:"states"`
	Paused bool           `json:"paused,omitempty"`
	Hold   string         `json:"hold,omitempty"` // why the group's guard holds automatic fencing (saturation, …)
}

// Banner is something that holds fencing, shown above everything.
type Banner struct {
	Kind  string `json:"kind"`  // paused, group_paused, guard, membership
	Scope string `json:"scope"` // "fleet" or a group's name
	Text  string `json:"text"`
}

// Overview is the body of GET /api/v1/overview and of the event stream's
// events: Full says Cells is every host (an overview event), else only the
// hosts that changed since the event before (a delta event).
type Overview struct {
	At            time.Time         `json:"t"` // the daemon's clock: countdowns and "since" count from it
	Seq           uint64            `json:"seq"`
	Full          bool              `json:"full"`
	Mode          string            `json:"mode"`
	Paused        bool              `json:"paused"`
	PolicyVersion string            `json:"policy_version"`
	Thresholds    report.Thresholds `json:"thresholds"`
	Total         int               `json:"total"`
	States        map[string]int    `json:"states"`
	Groups        []GroupCount      `json:"groups"`
	Banners       []Banner          `json:"banners"`
	Cells         []Cell            `json:"cells"`
	Removed       []string          `json:"removed,omitempty"` // hosts gone since the event before
}

func cellOf(v fleet.View, unfenceable map[string]string) Cell {
	c := Cell{Host: v.Host.Name, State: string(v.Host.State), D: math.Round(v.Verdict.D*1000) / 1000, Group: v.Group,
		Blind: v.Verdict.Blind, Incoherent: v.Verdict.Incoherent, Unfenceable: unfenceable[v.Host.Name]}
	for _, t := range v.Verdict.Top(3) {
		if t.Contribution > 0 {
			c.Signals = append(c.Signals, string(t.Signal))
		}
	}
	if v.Host.State == playbook.AwaitingApproval {
		c.Deadline, c.OnTimeout = v.Host.ApprovalDeadline, string(v.Host.ApprovalOnTimeout)
	}
	return c
}

func (c Cell) same(o Cell) bool {
	return c.State == o.State && c.D == o.D && c.Group == o.Group && c.Blind == o.Blind && c.Incoherent == o.Incoherent &&
		c.Unfenceable == o.Unfenceable && c.Deadline.Equal(o.Deadline) && c.OnTimeout == o.OnTimeout &&
		slices.Equal(c.Signals, o.Signals)
}

// overviewOf is the overview of a snapshot, with the given cells.
func (s *Server) overviewOf(snap daemon.Snapshot, all []Cell) Overview {
	o := Overview{At: snap.At, Mode: string(snap.Mode), Paused: snap.Paused, PolicyVersion: snap.PolicyVersion,
		Thresholds: s.thresholds(), Total: len(all), States: map[string]int{}, Groups: []GroupCount{}, Banners: []Banner{}}
	byGroup := map[string]*GroupCount{}
	for _, g := range snap.Groups {
		gc := &GroupCount{Name: g.Name, States: map[string]int{}, Paused: g.Paused, Hold: g.Hold}
		byGroup[g.Name] = gc
	}
	for _, c := range all {
		o.States[c.State]++
		gc := byGroup[c.Group]
		if gc == nil {
			gc = &GroupCount{Name: c.Group, States: map[string]int{}}
			byGroup[c.Group] = gc
		}
		gc.Total++
		gc.States[c.State]++
	}
	for _, g := range snap.Groups { // the daemon's order: configured groups in file order, the default last
		o.Groups = append(o.Groups, *byGroup[g.Name])
		delete(byGroup, g.Name)
	}
	for _, n := range slices.Sorted(maps.Keys(byGroup)) {
		o.Groups = append(o.Groups, *byGroup[n])
	}
	if snap.Paused {
		o.Banners = append(o.Banners, Banner{Kind: "paused", Scope: "fleet", Text: "fencing is paused fleet-wide: hosts are classified and on-call notified, nothing is acted on"})
	}
	for _, n := range slices.Sorted(maps.Keys(snap.PausedGroups)) {
		p := snap.PausedGroups[n]
		o.Banners = append(o.Banners, Banner{Kind: "group_paused", Scope: n, Text: fmt.Sprintf("fencing is paused in group %s by %s: %s", n, p.Operator, p.Reason)})
	}
	for _, g := range snap.Groups {
		if g.Hold != "" {
			o.Banners = append(o.Banners, Banner{Kind: "guard", Scope: g.Name, Text: fmt.Sprintf("the guard holds automatic fencing in %s: %s", groupWords(g.Name), g.Hold)})
		}
	}
	if m := snap.GroupMembership; m != nil && m.Error != "" {
		o.Banners = append(o.Banners, Banner{Kind: "membership", Scope: "fleet", Text: "group membership not refreshed: " + m.Error})
	}
	o.Cells = all
	return o
}

func groupWords(g string) string {
	if g == playbook.DefaultGroup {
		return "the fleet (default group)"
	}
	return "group " + g
}

// thresholds are d's lines of the policy in force (zero: unknown).
func (s *Server) thresholds() report.Thresholds {
	if ps, ok := s.b.(policySource); ok {
		if p := ps.Policy(); p != nil {
			return report.Thresholds{Warn: p.Thresholds.DWarn, Crit: p.Thresholds.DCrit}
		}
	}
	return report.Thresholds{}
}

// signalThresholds are each signal's warn and crit of the policy in force.
func (s *Server) signalThresholds() map[signals.Name]signals.SignalConfig {
	if ps, ok := s.b.(policySource); ok {
		if p := ps.Policy(); p != nil {
			return p.SignalsConfig().Signals
		}
	}
	return nil
}

func cellsOf(snap daemon.Snapshot) []Cell {
	out := make([]Cell, len(snap.Hosts))
	for i, v := range snap.Hosts {
		out[i] = cellOf(v, snap.Unfenceable)
	}
	return out
}

func (s *Server) overview(w http.ResponseWriter, _ *http.Request) {
	snap := s.b.Snapshot()
	o := s.overviewOf(snap, cellsOf(snap))
	o.Full = true
	writeCompact(w, o)
}

// writeCompact writes JSON without indentation (a 10,000-host body).
func writeCompact(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// hub watches the daemon's snapshot: it keeps each host's history and
// sends what changed to the event streams.
type hub struct {
	s      *Server
	mu     sync.Mutex
	live   bool // Run watches the daemon: the event stream works
	seq    uint64
	at     time.Time
	polled bool
	cells  map[string]Cell
	last   Overview // the last poll's overview of every host: a stream's first event
	first  []byte   // last as an event, made for the first subscriber after the poll
	subs   map[chan []byte]struct{}
	hist   *history
}

func newHub(s *Server) *hub {
	return &hub{s: s, cells: map[string]Cell{}, subs: map[chan []byte]struct{}{}, hist: newHistory(HistoryPoints, DetailHosts),
		last: Overview{Full: true, States: map[string]int{}, Groups: []GroupCount{}, Banners: []Banner{}, Cells: []Cell{}}}
}

// Run watches the daemon for the console until ctx ends: every EventEvery
// it takes the snapshot, records each host's history and sends the changes
// to the event streams. Without Run, GET /api/v1/events answers 503 and the
// history is empty.
func (s *Server) Run(ctx context.Context) {
	s.hub.poll()
	s.hub.open()
	defer s.hub.closeAll()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.clk.After(EventEvery):
		}
		s.hub.poll()
	}
}

// poll takes one look at the snapshot.
func (h *hub) poll() {
	snap := h.s.b.Snapshot()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.polled && snap.At.Equal(h.at) {
		return
	}
	if snap.At.After(h.at) {
		h.hist.record(snap, h.s.thresholds(), h.s.signalThresholds())
	}
	all := cellsOf(snap)
	changed := []Cell{}
	for _, c := range all {
		if old, ok := h.cells[c.Host]; !ok || !old.same(c) {
			changed = append(changed, c)
			h.cells[c.Host] = c
		}
	}
	var removed []string
	if len(h.cells) > len(all) { // hosts gone since the poll before
		seen := make(map[string]bool, len(all))
		for _, c := range all {
			seen[c.Host] = true
		}
		for n := range h.cells {
			if !seen[n] {
				removed = append(removed, n)
				delete(h.cells, n)
			}
		}
		sort.Strings(removed)
	}
	h.at, h.polled = snap.At, true
	h.seq++
	h.last = h.s.overviewOf(snap, all)
	h.last.Seq, h.last.Full = h.seq, true
	h.first = nil
	delta := h.last
	delta.Full, delta.Cells, delta.Removed = false, changed, removed
	msg := sse("delta", delta)
	for ch := range h.subs {
		select {
		case ch <- msg:
		default: // too far behind: close; the page reconnects and starts over
			delete(h.subs, ch)
			close(ch)
		}
	}
}

// open lets event streams subscribe (Run watches the daemon).
func (h *hub) open() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.live = true
}

// subscribe returns a stream of events and the first one: the overview of
// every host as of the last poll, which the deltas that follow build on
// (ok false when Run does not watch the daemon).
func (h *hub) subscribe() (ch chan []byte, first []byte, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.live {
		return nil, nil, false
	}
	if h.first == nil { // once per poll, however many pages connect
		h.first = sse("overview", h.last)
	}
	ch = make(chan []byte, subBuffer)
	h.subs[ch] = struct{}{}
	return ch, h.first, true
}

func (h *hub) unsubscribe(ch chan []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[ch]; ok {
		delete(h.subs, ch)
		close(ch)
	}
}

// closeAll ends every stream, and lets no new one start.
func (h *hub) closeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.live = false
	for ch := range h.subs {
		delete(h.subs, ch)
		close(ch)
	}
}

// sse is one event of a text/event-stream.
func sse(event string, v any) []byte {
	var b bytes.Buffer
	data, _ := json.Marshal(v)
	fmt.Fprintf(&b, "event: %s\ndata: %s\n\n", event, data)
	return b.Bytes()
}

// events serves the event stream: an overview event, then a delta event
// each time the daemon's snapshot changes, and a comment every KeepAlive
// so proxies keep an idle stream open.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	var ch chan []byte
	var first []byte
	if ok {
		ch, first, ok = s.hub.subscribe()
	}
	if !ok {
		writeJSON(w, http.StatusServiceUnavailable, Error{Error: "no event stream on this server"})
		return
	}
	defer s.hub.unsubscribe(ch)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache, no-transform")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	_, _ = fmt.Fprintf(w, "retry: 3000\n\n")
	if _, err := w.Write(first); err != nil {
		return
	}
	fl.Flush()
	for {
		select {
		case <-r.Context().Done():
			return
		case msg, open := <-ch:
			if !open {
				return
			}
			if _, err := w.Write(msg); err != nil {
				return
			}
		case <-s.clk.After(KeepAlive):
			if _, err := fmt.Fprintf(w, ": keep-alive\n\n"); err != nil {
				return
			}
		}
		fl.Flush()
	}
}

// page of GET /api/v1/hosts: a query with any of these parameters gets
// the hosts filtered, sorted and cut to one page.
var pageParams = []string{"sort", "state", "signal", "q", "offset", "limit"}

// HostsPage says which page of the matching hosts a reply holds.
type HostsPage struct {
	Matched int `json:"matched"` // hosts that match the filters
	Offset  int `json:"offset"`
	Limit   int `json:"limit"`
}

// paged filters, sorts and cuts the daemon's views as the query asks,
// before any is summarized (a page of 50 rows out of 10,000 hosts); page
// is nil when the query asks for none; ok false (with the error answered)
// for a bad parameter.
func paged(w http.ResponseWriter, q map[string][]string, views []fleet.View) (_ []fleet.View, page *HostsPage, ok bool) {
	asked := false
	for _, p := range pageParams {
		_, has := q[p]
		asked = asked || has
	}
	if !asked {
		return views, nil, true
	}
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	num := func(k string, def, hi int) (int, bool) {
		v := get(k)
		if v == "" {
			return def, true
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > hi {
			writeJSON(w, http.StatusBadRequest, Error{Error: fmt.Sprintf("%s: want a whole number from 0 to %d, have %s", k, hi, escape.Excerpt(v, 40)), Field: k})
			return 0, false
		}
		return n, true
	}
	offset, ok := num("offset", 0, math.MaxInt32)
	if !ok {
		return nil, nil, false
	}
	limit, ok := num("limit", 50, MaxPage)
	if !ok {
		return nil, nil, false
	}
	states := map[string]bool{}
	for _, st := range strings.Split(get("state"), ",") {
		if st = strings.TrimSpace(st); st == "" {
			continue
		}
		if _, known := severity[st]; !known && st != "not_normal" {
			writeJSON(w, http.StatusBadRequest, Error{Error: fmt.Sprintf("state: unknown state %s", escape.Excerpt(st, 40)), Field: "state"})
			return nil, nil, false
		}
		states[st] = true
	}
	signal := get("signal")
	if signal != "" && !signals.Name(signal).Valid() {
		writeJSON(w, http.StatusBadRequest, Error{Error: fmt.Sprintf("signal: unknown signal %s", escape.Excerpt(signal, 60)), Field: "signal"})
		return nil, nil, false
	}
	switch get("sort") {
	case "", "name", "severity":
	default:
		writeJSON(w, http.StatusBadRequest, Error{Error: "sort: want severity or name", Field: "sort"})
		return nil, nil, false
	}
	text := strings.ToLower(get("q"))
	var kept []*fleet.View
	for i := range views {
		v := &views[i]
		switch st := string(v.Host.State); {
		case len(states) > 0 && !states[st] && !(states["not_normal"] && v.Host.State != playbook.Normal):
		case signal != "" && !hasSignal(v.Verdict, signal):
		case text != "" && !strings.Contains(strings.ToLower(v.Host.Name), text) && !strings.Contains(strings.ToLower(v.Host.Reason), text):
		default:
			kept = append(kept, v)
		}
	}
	if get("sort") == "severity" {
		slices.SortStableFunc(kept, func(a, b *fleet.View) int {
			if sa, sb := severity[string(a.Host.State)], severity[string(b.Host.State)]; sa != sb {
				return sb - sa
			}
			if c := cmp.Compare(b.Verdict.D, a.Verdict.D); c != 0 {
				return c
			}
			return strings.Compare(a.Host.Name, b.Host.Name)
		})
	}
	page = &HostsPage{Matched: len(kept), Offset: offset, Limit: limit}
	offset = min(offset, len(kept))
	out := make([]fleet.View, 0, min(limit, len(kept)-offset))
	for _, v := range kept[offset:min(offset+limit, len(kept))] {
		out = append(out, *v)
	}
	return out, page, true
}

// hasSignal says whether signal is among a verdict's top signals (as
// GET /api/v1/hosts lists them: the three largest contributions above 0).
func hasSignal(v signals.Verdict, signal string) bool {
	for _, c := range v.Top(3) {
		if c.Contribution > 0 && string(c.Signal) == signal {
			return true
		}
	}
	return false
}

// view finds a host in the snapshot.
func view(snap daemon.Snapshot, host string) (fleet.View, bool) {
	i := sort.Search(len(snap.Hosts), func(i int) bool { return snap.Hosts[i].Host.Name >= host })
	if i < len(snap.Hosts) && snap.Hosts[i].Host.Name == host {
		return snap.Hosts[i], true
	}
	for _, v := range snap.Hosts { // a backend that does not sort
		if v.Host.Name == host {
			return v, true
		}
	}
	return fleet.View{}, false
}

func (s *Server) history(w http.ResponseWriter, r *http.Request) {
	host, ok := hostParam(w, r)
	if !ok {
		return
	}
	if _, known := view(s.b.Snapshot(), host); !known {
		writeJSON(w, http.StatusNotFound, Error{Error: fmt.Sprintf("unknown host %q", host)})
		return
	}
	writeCompact(w, s.hub.history(host))
}

func (h *hub) history(host string) report.History {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.hist.of(host)
}

// incident answers the {host} of the path with its postmortem and the
// incident view's parts, or answers the error itself. withServers asks
// Nova for the servers on the host (the d(t) chart does not show them).
func (s *Server) incident(w http.ResponseWriter, r *http.Request, withServers bool) (report.Report, bool) {
	host, ok := hostParam(w, r)
	if !ok {
		return report.Report{}, false
	}
	snap := s.b.Snapshot()
	v, ok := view(snap, host)
	if !ok {
		writeJSON(w, http.StatusNotFound, Error{Error: fmt.Sprintf("unknown host %q", host)})
		return report.Report{}, false
	}
	recs, err := s.records(r.Context(), host, time.Time{})
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, Error{Error: err.Error()})
		return report.Report{}, false
	}
	var c report.Capacity
	if s.r.Capacity != nil {
		c = s.r.Capacity(host)
	}
	hist := s.hub.history(host)
	e := report.Extras{At: snap.At, History: &hist, Thresholds: s.thresholds()}
	if withServers && s.r.Servers != nil {
		sctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		if names, err := s.r.Servers(sctx, host); err == nil {
			e.Servers = names
		} else {
			e.Servers = []string{"(Nova did not answer: " + err.Error() + ")"}
		}
	}
	return report.Build(v, recs, c).WithExtras(recs, e), true
}

func (s *Server) reportHTML(w http.ResponseWriter, r *http.Request) {
	rep, ok := s.incident(w, r, true)
	if !ok {
		return
	}
	var b bytes.Buffer
	if err := rep.HTML(&b, r.URL.Query().Get("fragment") == "1"); err != nil {
		writeJSON(w, http.StatusInternalServerError, Error{Error: err.Error()})
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(b.Bytes())
}

func (s *Server) reportPNG(w http.ResponseWriter, r *http.Request) {
	rep, ok := s.incident(w, r, false)
	if !ok {
		return
	}
	var b bytes.Buffer
	if err := rep.PNG(&b); err != nil {
		writeJSON(w, http.StatusInternalServerError, Error{Error: err.Error()})
		return
	}
	w.Header().Set("Content-Type", "image/png")
	_, _ = w.Write(b.Bytes())
}

// apiClock is the API's clock for its own waits.
func apiClock(c clock.Clock) clock.Clock {
	if c == nil {
		return clock.Real{}
	}
	return c
}
