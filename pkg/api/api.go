// Package api serves fenced's HTTP API, /metrics and the status page.
//
//	GET  /api/v1/hosts                   every host: state, since, d, top signals, incoherence, pending approval, group
//	GET  /api/v1/hosts?group=G           the hosts of one group (404 for a group fenced does not know)
//	GET  /api/v1/hosts/{host}            one host with its verdict and recent state changes
//	GET  /api/v1/hosts?sort=severity&state=&group=&signal=&q=&offset=&limit=   one page of the console's table (console.go)
//	GET  /api/v1/hosts/{host}/report     postmortem: timeline, actions, r1, r2, r_eff, recommendation, history
//	GET  /api/v1/hosts/{host}/report.html, …/report.png, …/history   the incident view (console.go)
//	GET  /api/v1/overview, /api/v1/events   the fleet at a glance; the same as Server-Sent Events (console.go)
//	POST /api/v1/hosts/{host}/approve    body {"operator":"…","reason":"…"}
//	POST /api/v1/hosts/{host}/abort      (same body)
//	POST /api/v1/hosts/{host}/unfence    (same body)
//	POST /api/v1/pause, /api/v1/resume   fleet-wide (same body)
//	POST /api/v1/groups/{group}/pause, …/resume   one group (same body)
//	GET  /api/v1/audit?host=H&since=RFC3339   audit records (JSON Lines)
//	GET  /api/v1/audit/verify            check the hash chain and its signatures
//	GET  /api/v1/audit/export            the chain as stored, and a signed checkpoint (JSON Lines)
//	GET  /api/v1/observations?since=RFC3339   what the leader observed at its last ticks (fenced trace record)
//	POST /api/v1/alerts                  Alertmanager's webhook (v4); token role alerts or operator (alerts.go)
//	GET  /metrics                        Prometheus exposition (client_golang)
//	GET  /, /hosts/{host}                the operator console (console.html; docs/console.md)
//
// With tokens configured, requests carry "Authorization: Bearer TOKEN"; a
// scrape token reads /metrics only, a viewer token reads everything, an
// operator token also writes; an alerts token only posts alerts. The name a write is audited under is the
// token's name; a name in the body is not trusted. The console's page and
// /healthz need no token (the page asks for one and keeps it in the
// browser's session storage).
//
// Writes (POST) must be "Content-Type: application/json" (415 otherwise)
// and, when they carry an Origin header, come from the API's own origin
// (403 otherwise): a page on another site cannot post to the API, not even
// to a dev API without tokens. A body holds exactly one JSON object; a
// reason is at most MaxReason bytes. A write refused for its body is
// audited with at most a short excerpt of it.
package api

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/fencedhq/fenced/internal/escape"
	"github.com/fencedhq/fenced/internal/hostname"
	"github.com/fencedhq/fenced/pkg/audit"
	"github.com/fencedhq/fenced/pkg/clock"
	"github.com/fencedhq/fenced/pkg/daemon"
	"github.com/fencedhq/fenced/pkg/fleet"
	"github.com/fencedhq/fenced/pkg/groups"
	"github.com/fencedhq/fenced/pkg/lease"
	"github.com/fencedhq/fenced/pkg/playbook"
	"github.com/fencedhq/fenced/pkg/report"
)

// Backend is what the API needs from the daemon: its snapshot and its
// operator commands.
type Backend interface {
	Snapshot() daemon.Snapshot
	Operate(ctx context.Context, host string, ev playbook.Event, operator, reason string) ([]playbook.Change, error)
	SetPaused(ctx context.Context, paused bool, operator, reason string) error
}

// GroupPauser pauses and resumes fencing in one group (the daemon does).
type GroupPauser interface {
	SetGroupPaused(ctx context.Context, group string, paused bool, operator, reason string) error
}

// Reads are what the API reads from their own packages: the audit chain
// (pkg/audit) and, for postmortems (pkg/report), the hosts' capacity.
type Reads struct {
	Audit    *audit.Log
	Capacity func(host string) report.Capacity // nil: unknown
	// Metrics is what /metrics serves: the registry every component put
	// its collectors on (nil: nothing).
	Metrics prometheus.Gatherer
	// Alerts takes POST /api/v1/alerts (alerts.go; nil: inbound alerts off).
	Alerts AlertSink
	// Clock is the API's own clock: how often the console's event stream
	// looks for changes, its keep-alives (nil: the wall clock). Times
	// shown are the daemon's, from its snapshot.
	Clock clock.Clock
	// Servers lists the servers on a host (Nova; nil: unknown), for the
	// incident view.
	Servers func(ctx context.Context, host string) ([]string, error)
}

// Role is what a token may do.
type Role string

// Roles, each allowed what the one before it is.
const (
	Scrape   Role = "scrape" // /metrics only (a Prometheus server's token)
	Viewer   Role = "viewer"
	Operator Role = "operator"
)

// rank orders the roles: a role may do what any lower one may.
var rank = map[Role]int{Scrape: 1, Viewer: 2, Operator: 3}

// Limits of a write's body.
const (
	MaxReason   = 1024     // bytes of a reason
	MaxOperator = 128      // bytes of an operator's name (dev mode: from the body)
	maxBody     = 16 << 10 // bytes of a write's body
)

// Identity is who a token speaks for.
type Identity struct {
	Name string
	Role Role
}

// Server is the HTTP handler.
type Server struct {
	b         Backend
	r         Reads
	tokens    map[string]Identity // nil: no authentication (loopback dev mode)
	mux       *http.ServeMux
	plaintext atomic.Bool
	clk       clock.Clock
	hub       *hub
}

type identityKey struct{}

// New returns the API handler. tokens maps bearer tokens to identities;
// nil disables authentication (only for a listener on loopback).
func New(b Backend, r Reads, tokens map[string]Identity) *Server {
	s := &Server{b: b, r: r, tokens: tokens, mux: http.NewServeMux(), clk: apiClock(r.Clock)}
	s.hub = newHub(s)
	s.mux.HandleFunc("GET /api/v1/hosts", s.auth(Viewer, s.hosts))
	s.mux.HandleFunc("GET /api/v1/overview", s.auth(Viewer, s.overview))
	s.mux.HandleFunc("GET /api/v1/events", s.auth(Viewer, s.events))
	s.mux.HandleFunc("GET /api/v1/hosts/{host}/history", s.auth(Viewer, s.history))
	s.mux.HandleFunc("GET /api/v1/hosts/{host}/report.html", s.auth(Viewer, s.reportHTML))
	s.mux.HandleFunc("GET /api/v1/hosts/{host}/report.png", s.auth(Viewer, s.reportPNG))
	s.mux.HandleFunc("GET /api/v1/hosts/{host}", s.auth(Viewer, s.host))
	s.mux.HandleFunc("GET /api/v1/hosts/{host}/report", s.auth(Viewer, s.report))
	s.mux.HandleFunc("POST /api/v1/hosts/{host}/{action}", s.auth(Operator, s.write(s.operate)))
	s.mux.HandleFunc("POST /api/v1/pause", s.auth(Operator, s.write(s.pause(true))))
	s.mux.HandleFunc("POST /api/v1/resume", s.auth(Operator, s.write(s.pause(false))))
	s.mux.HandleFunc("POST /api/v1/groups/{group}/pause", s.auth(Operator, s.write(s.pauseGroup(true))))
	s.mux.HandleFunc("POST /api/v1/groups/{group}/resume", s.auth(Operator, s.write(s.pauseGroup(false))))
	s.mux.HandleFunc("GET /api/v1/audit", s.auth(Viewer, s.audit))
	s.mux.HandleFunc("GET /api/v1/audit/verify", s.auth(Viewer, s.verify))
	s.mux.HandleFunc("GET /api/v1/audit/export", s.auth(Viewer, s.export))
	s.mux.HandleFunc("GET /api/v1/observations", s.auth(Viewer, s.observations))
	s.mux.HandleFunc("POST /api/v1/alerts", s.authAlerts(s.postAlerts))
	s.mux.HandleFunc("GET /metrics", s.auth(Scrape, s.metrics()))
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	s.mux.HandleFunc("GET /{$}", s.page)
	s.mux.HandleFunc("GET /hosts/{host}", s.page) // the console opened on a host
	return s
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// SetPlaintext says the API listens off loopback without TLS: /metrics
// shows it as fenced_api_plaintext 1 (see Register).
func (s *Server) SetPlaintext(on bool) { s.plaintext.Store(on) }

// Error is the body of every non-2xx answer.
type Error struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func (s *Server) auth(need Role, h http.HandlerFunc) http.HandlerFunc {
	return s.authBy(func(role Role) string {
		switch {
		case rank[role] >= rank[need]:
			return ""
		case role == Viewer:
			return "this token may read but not act (role viewer)"
		}
		return fmt.Sprintf("this token may not do this (role %s)", role)
	}, h)
}

// authBy lets a request through when the API has no tokens, or its bearer
// token is known and refuse says nothing against its role (else refuse's
// words are the 403).
func (s *Server) authBy(refuse func(Role) string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.tokens != nil {
			tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			id, known := s.tokens[tok]
			if !ok || !known {
				w.Header().Set("WWW-Authenticate", `Bearer realm="fenced"`)
				writeJSON(w, http.StatusUnauthorized, Error{Error: "missing or unknown bearer token"})
				return
			}
			if why := refuse(id.Role); why != "" {
				writeJSON(w, http.StatusForbidden, Error{Error: why})
				return
			}
			r = r.WithContext(context.WithValue(r.Context(), identityKey{}, id))
		}
		h(w, r)
	}
}

// HostSummary is one row of GET /api/v1/hosts.
type HostSummary struct {
	Host        string    `json:"host"`
	State       string    `json:"state"`
	Since       time.Time `json:"since"`
	D           float64   `json:"d"`
	Blind       bool      `json:"blind,omitempty"`
	Top         []string  `json:"top_signals"`
	Incoherent  bool      `json:"incoherent,omitempty"`
	Incoherence string    `json:"incoherence,omitempty"`
	// HardFailure says why the corroborated hard-failure rule holds.
	HardFailure string `json:"hard_failure,omitempty"`
	// AgentDown says why the compute agent is down while execution is healthy.
	AgentDown        string    `json:"agent_down,omitempty"`
	ApprovalDeadline time.Time `json:"approval_deadline,omitzero"`
	// ApprovalOnTimeout is what happens at ApprovalDeadline:
	// needs_human, proceed or abort (policy approval.on_timeout).
	ApprovalOnTimeout string `json:"approval_on_timeout,omitempty"`
	Reason            string `json:"reason,omitempty"`
	// Unfenceable says why the host's BMC failed its last fence-path check
	// (empty: it passed, or was not checked).
	Unfenceable string `json:"unfenceable,omitempty"`
	// Group is the host's group ("default": no configured group claims it).
	Group string `json:"group,omitempty"`
	// Reserved is a reserved host's status: "spare" or "in service"
	// (docs/groups.md, Reserved hosts).
	Reserved string `json:"reserved,omitempty"`
}

// HostsReply is the body of GET /api/v1/hosts.
type HostsReply struct {
	At            time.Time      `json:"t"`
	Mode          string         `json:"mode"`
	Paused        bool           `json:"paused"`
	PolicyVersion string         `json:"policy_version"`
	Counts        playbook.Fleet `json:"counts"`
	Hosts         []HostSummary  `json:"hosts"`
	// Groups are the groups with their counts and guards (with ?group=,
	// that group only); PausedGroups the groups an operator paused;
	// GroupMembership the last refresh of groups defined in Nova.
	Groups          []fleet.GroupView           `json:"groups,omitempty"`
	PausedGroups    map[string]lease.GroupPause `json:"paused_groups,omitempty"`
	GroupMembership *groups.Status              `json:"group_membership,omitempty"`
	// Page says which page of the matching hosts Hosts is, when the query
	// asked for one (sort, state, signal, q, offset, limit: console.go).
	Page *HostsPage `json:"page,omitempty"`
}

func summarize(snap daemon.Snapshot) HostsReply {
	out := HostsReply{At: snap.At, Mode: string(snap.Mode), Paused: snap.Paused, PolicyVersion: snap.PolicyVersion, Counts: snap.Counts, Hosts: []HostSummary{},
		Groups: snap.Groups, PausedGroups: snap.PausedGroups, GroupMembership: snap.GroupMembership}
	for _, v := range snap.Hosts {
		hs := HostSummary{Host: v.Host.Name, State: string(v.Host.State), Since: v.Host.Since, D: v.Verdict.D,
			Blind: v.Verdict.Blind, Incoherent: v.Verdict.Incoherent, Incoherence: v.Verdict.Incoherence, Reason: v.Host.Reason, Top: []string{},
			HardFailure: v.Verdict.HardFailure, AgentDown: v.Verdict.AgentDown,
			Unfenceable: snap.Unfenceable[v.Host.Name], Group: v.Group, Reserved: v.Reserved}
		if v.Host.State == playbook.AwaitingApproval {
			hs.ApprovalDeadline, hs.ApprovalOnTimeout = v.Host.ApprovalDeadline, string(v.Host.ApprovalOnTimeout)
		}
		for _, c := range v.Verdict.Top(3) {
			if c.Contribution > 0 {
				hs.Top = append(hs.Top, fmt.Sprintf("%s=%.4g", c.Signal, c.Value))
			}
		}
		out.Hosts = append(out.Hosts, hs)
	}
	return out
}

func (s *Server) hosts(w http.ResponseWriter, r *http.Request) {
	snap := s.b.Snapshot()
	q := r.URL.Query()
	if g, ok := q["group"]; ok {
		var known bool
		if snap, known = oneGroup(snap, g[0]); !known {
			writeJSON(w, http.StatusNotFound, Error{Error: fmt.Sprintf("unknown group %s", escape.Excerpt(g[0], 80)), Field: "group"})
			return
		}
	}
	var page *HostsPage
	var ok bool
	if snap.Hosts, page, ok = paged(w, q, snap.Hosts); !ok {
		return
	}
	rep := summarize(snap)
	rep.Page = page
	writeJSON(w, http.StatusOK, rep)
}

// oneGroup keeps the hosts and the group summary of group only, and says
// whether fenced knows the group. The snapshot is shared: its slices are
// not changed, new ones are made.
func oneGroup(snap daemon.Snapshot, group string) (daemon.Snapshot, bool) {
	known := false
	var gs []fleet.GroupView
	for _, g := range snap.Groups {
		if g.Name == group {
			gs, known = append(gs, g), true
		}
	}
	var hosts []fleet.View
	for _, v := range snap.Hosts {
		if v.Group == group {
			hosts, known = append(hosts, v), true
		}
	}
	snap.Groups, snap.Hosts = gs, hosts
	return snap, known
}

// HostReply is the body of GET /api/v1/hosts/{host}.
type HostReply struct {
	At      time.Time         `json:"t"` // the daemon's clock: elapsed times are measured against it
	Host    any               `json:"host"`
	Verdict any               `json:"verdict"`
	Changes []playbook.Change `json:"changes"`
	Group   string            `json:"group,omitempty"` // the host's group
	// Reserved is a reserved host's status ("spare", "in service").
	Reserved string `json:"reserved,omitempty"`
}

func (s *Server) host(w http.ResponseWriter, r *http.Request) {
	name, ok := hostParam(w, r)
	if !ok {
		return
	}
	snap := s.b.Snapshot()
	for _, v := range snap.Hosts {
		if v.Host.Name == name {
			rep := HostReply{At: snap.At, Host: v.Host, Verdict: v.Verdict, Changes: []playbook.Change{}, Group: v.Group, Reserved: v.Reserved}
			for _, c := range snap.Changes {
				if c.Host == name {
					rep.Changes = append(rep.Changes, c)
				}
			}
			writeJSON(w, http.StatusOK, rep)
			return
		}
	}
	writeJSON(w, http.StatusNotFound, Error{Error: fmt.Sprintf("unknown host %q", name)})
}

func (s *Server) report(w http.ResponseWriter, r *http.Request) {
	if rep, ok := s.incident(w, r, true); ok {
		writeJSON(w, http.StatusOK, rep)
	}
}

// records reads the audit chain: a host's records (all: "") since a time.
func (s *Server) records(ctx context.Context, host string, since time.Time) ([]audit.Record, error) {
	if s.r.Audit == nil {
		return nil, errors.New("api: no audit log")
	}
	return s.r.Audit.Records(ctx, func(r audit.Record) bool {
		return (host == "" || r.HostID == host) && !r.Timestamp.Before(since)
	})
}

// OperateRequest is the body of the write endpoints.
type OperateRequest struct {
	Operator string `json:"operator"`
	Reason   string `json:"reason"`
}

// write guards every write before its body is read: the request comes from
// the API's own origin (when the browser says where it comes from) and says
// it carries JSON. A cross-site form or fetch can send text/plain without
// asking; it carries a foreign Origin and is refused here, tokens or not.
func (s *Server) write(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if o := r.Header.Get("Origin"); o != "" && !sameOrigin(o, r) {
			// not audited: a page elsewhere must not be able to fill the audit log
			writeJSON(w, http.StatusForbidden, Error{Error: fmt.Sprintf("write from another origin (%s) refused: use the status page of this API or the CLI", escape.Excerpt(o, 100))})
			return
		}
		if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
			s.refuse(w, r, http.StatusUnsupportedMediaType, Error{Error: "Content-Type must be application/json", Field: "Content-Type"}, nil)
			return
		}
		h(w, r)
	}
}

// sameOrigin reports whether an Origin header names this API: the scheme
// the request came in on and the Host it was sent to.
func sameOrigin(origin string, r *http.Request) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || u.Path != "" || u.User != nil {
		return false // "null", opaque and malformed origins are foreign
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return strings.EqualFold(u.Scheme, scheme) && strings.EqualFold(withPort(u.Host, scheme), withPort(r.Host, scheme))
}

// withPort adds the scheme's default port to a host that has none.
func withPort(host, scheme string) string {
	if _, _, err := net.SplitHostPort(host); err == nil {
		return host
	}
	port := "80"
	if scheme == "https" {
		port = "443"
	}
	return net.JoinHostPort(strings.Trim(host, "[]"), port)
}

// refuse answers a write with an error and audits the refusal without the
// body: its length and an excerpt of at most escape.ExcerptLen bytes. A
// refusal is audited only after the caller passed authentication (a
// token, or the loopback dev API) and the origin check.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, code int, e Error, body []byte) {
	writeJSON(w, code, e)
	if s.r.Audit == nil {
		return
	}
	// the action as the daemon audits it (approve, pause, …); a path the
	// API does not know is "write"
	action := r.PathValue("action")
	if _, known := actions[action]; !known {
		switch action = strings.TrimPrefix(r.URL.Path, "/api/v1/"); {
		case action == "pause", action == "resume":
		case r.PathValue("group") != "" && strings.HasSuffix(action, "/pause"):
			action = "pause_group"
		case r.PathValue("group") != "" && strings.HasSuffix(action, "/resume"):
			action = "resume_group"
		default:
			action = "write"
		}
	}
	host := r.PathValue("host")
	if hostname.Check(host) != nil {
		host = ""
	}
	rec := audit.Record{Component: "api", HostID: host, Action: action, Outcome: "rejected",
		Detail: fmt.Sprintf("HTTP %d: %s; body of %d bytes: %s", code, e.Error, len(body), escape.Excerpt(string(body), escape.ExcerptLen))}
	if id, ok := r.Context().Value(identityKey{}).(Identity); ok {
		rec.Operator = id.Name
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	_, _ = s.r.Audit.Append(ctx, rec) // the answer is already the refusal
}

// short is an error's text cut to about escape.ExcerptLen bytes: the JSON
// decoder quotes what it did not like (an unknown field's name) in full.
func short(err error) string {
	msg := err.Error()
	if len(msg) <= escape.ExcerptLen {
		return msg
	}
	return strings.ToValidUTF8(msg[:escape.ExcerptLen], "") + "…"
}

// readOperate decodes and checks a write's body, answering 4xx itself.
func (s *Server) readOperate(w http.ResponseWriter, r *http.Request) (OperateRequest, bool) {
	var req OperateRequest
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.refuse(w, r, http.StatusRequestEntityTooLarge, Error{Error: fmt.Sprintf("body over %d bytes (a reason is at most %d)", maxBody, MaxReason)}, body)
			return req, false
		}
		writeJSON(w, http.StatusBadRequest, Error{Error: "reading the body: " + short(err)})
		return req, false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		s.refuse(w, r, http.StatusBadRequest, Error{Error: "body must be JSON {\"operator\":…,\"reason\":…}: " + short(err)}, body)
		return req, false
	}
	if err := dec.Decode(new(json.RawMessage)); !errors.Is(err, io.EOF) {
		s.refuse(w, r, http.StatusBadRequest, Error{Error: "body must hold exactly one JSON object: something follows it"}, body)
		return req, false
	}
	if id, ok := r.Context().Value(identityKey{}).(Identity); ok {
		// the token says who acts; a name in the body is not trusted
		req.Operator = id.Name
	}
	for _, f := range []struct {
		name, v string
		max     int
	}{{"operator", req.Operator, MaxOperator}, {"reason", req.Reason, MaxReason}} {
		switch {
		case strings.TrimSpace(f.v) == "":
			s.refuse(w, r, http.StatusBadRequest, Error{Error: f.name + " is required", Field: f.name}, body)
			return req, false
		case len(f.v) > f.max:
			s.refuse(w, r, http.StatusBadRequest, Error{Error: fmt.Sprintf("%s: at most %d bytes, have %d", f.name, f.max, len(f.v)), Field: f.name}, body)
			return req, false
		}
	}
	if escape.Terminal(req.Operator) != req.Operator {
		s.refuse(w, r, http.StatusBadRequest, Error{Error: "operator: a name without control characters, backslashes or bidi overrides", Field: "operator"}, body)
		return req, false
	}
	return req, true
}

// hostParam is the {host} of the path, answering 400 itself when it is not
// a host name.
func hostParam(w http.ResponseWriter, r *http.Request) (string, bool) {
	name := r.PathValue("host")
	if err := hostname.Check(name); err != nil {
		writeJSON(w, http.StatusBadRequest, Error{Error: err.Error(), Field: "host"})
		return "", false
	}
	return name, true
}

func (s *Server) pause(p bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		req, ok := s.readOperate(w, r)
		if !ok {
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
		defer cancel()
		if err := s.b.SetPaused(ctx, p, req.Operator, req.Reason); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, Error{Error: err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]bool{"paused": p})
	}
}

// pauseGroup pauses or resumes fencing in the group of the path.
func (s *Server) pauseGroup(p bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		group := r.PathValue("group")
		if err := hostname.Check(group); err != nil {
			writeJSON(w, http.StatusBadRequest, Error{Error: "not a group name: " + err.Error(), Field: "group"})
			return
		}
		gp, ok := s.b.(GroupPauser)
		if !ok {
			writeJSON(w, http.StatusNotImplemented, Error{Error: "this server cannot pause a group"})
			return
		}
		req, ok := s.readOperate(w, r)
		if !ok {
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
		defer cancel()
		if err := gp.SetGroupPaused(ctx, group, p, req.Operator, req.Reason); err != nil {
			code := http.StatusServiceUnavailable
			// a follower forwards the command and gets the leader's text back
			if errors.Is(err, daemon.ErrUnknownGroup) || strings.Contains(err.Error(), daemon.ErrUnknownGroup.Error()) {
				code = http.StatusNotFound
			}
			writeJSON(w, code, Error{Error: err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"group": group, "paused": p})
	}
}

var actions = map[string]playbook.Event{"approve": playbook.EvApprove, "abort": playbook.EvAbort, "unfence": playbook.EvUnfence}

func (s *Server) operate(w http.ResponseWriter, r *http.Request) {
	ev, ok := actions[r.PathValue("action")]
	if !ok {
		writeJSON(w, http.StatusNotFound, Error{Error: fmt.Sprintf("unknown action %s (want approve, abort or unfence)", escape.Excerpt(r.PathValue("action"), 40))})
		return
	}
	name, ok := hostParam(w, r)
	if !ok {
		return
	}
	req, ok := s.readOperate(w, r)
	if !ok {
		return
	}
	known := false
	for _, v := range s.b.Snapshot().Hosts {
		known = known || v.Host.Name == name
	}
	if !known {
		writeJSON(w, http.StatusNotFound, Error{Error: fmt.Sprintf("unknown host %q", name)})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	ch, err := s.b.Operate(ctx, name, ev, req.Operator, req.Reason)
	if err != nil {
		code := http.StatusConflict
		if errors.Is(err, context.DeadlineExceeded) {
			code = http.StatusGatewayTimeout
		}
		writeJSON(w, code, Error{Error: err.Error()})
		return
	}
	if ch == nil {
		ch = []playbook.Change{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"changes": ch})
}

func (s *Server) audit(w http.ResponseWriter, r *http.Request) {
	var since time.Time
	if v := r.URL.Query().Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, Error{Error: "since must be RFC 3339, e.g. 2026-01-15T01:00:00Z", Field: "since"})
			return
		}
		since = t
	}
	recs, err := s.records(r.Context(), r.URL.Query().Get("host"), since)
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, Error{Error: err.Error()})
		return
	}
	w.Header().Set("Content-Type", "application/jsonl")
	_ = audit.WriteJSONL(w, recs)
}

// VerifyReply is the body of GET /api/v1/audit/verify: what the check
// found (records, signatures, the witness) and whether the chain holds.
type VerifyReply struct {
	audit.Report
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

func (s *Server) verify(w http.ResponseWriter, r *http.Request) {
	if s.r.Audit == nil {
		writeJSON(w, http.StatusServiceUnavailable, Error{Error: "api: no audit log"})
		return
	}
	found, err := s.r.Audit.Verify(r.Context())
	rep := VerifyReply{Report: found, OK: err == nil}
	if err != nil {
		rep.Error = err.Error()
	}
	writeJSON(w, http.StatusOK, rep)
}

// export streams the chain for offline verification (fenced audit export).
func (s *Server) export(w http.ResponseWriter, r *http.Request) {
	if s.r.Audit == nil {
		writeJSON(w, http.StatusServiceUnavailable, Error{Error: "api: no audit log"})
		return
	}
	var buf bytes.Buffer // a read error must still be able to answer 503
	if err := s.r.Audit.Export(r.Context(), &buf); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, Error{Error: err.Error()})
		return
	}
	w.Header().Set("Content-Type", "application/jsonl")
	_, _ = w.Write(buf.Bytes())
}

// metrics serves the registry (client_golang's exposition, negotiated with
// the scraper).
func (s *Server) metrics() http.HandlerFunc {
	g := s.r.Metrics
	if g == nil {
		g = prometheus.NewRegistry()
	}
	// one failing collector leaves the others' figures in the scrape
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}).ServeHTTP
}

// Register puts the API's own collector on reg: fenced_api_plaintext.
func (s *Server) Register(reg prometheus.Registerer) error {
	err := reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "fenced_api_plaintext",
		Help: "1 when this API listens off loopback without TLS: tokens and data cross the network in clear."},
		func() float64 {
			if s.plaintext.Load() {
				return 1
			}
			return 0
		}))
	if err != nil {
		return fmt.Errorf("api: %w", err)
	}
	return nil
}

//go:embed console.html
var statusPage []byte

func (s *Server) page(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(statusPage)
}
