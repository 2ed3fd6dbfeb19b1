package api

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/fencedhq/fenced/pkg/record"
)

// observer is a Backend that keeps its last ticks' observations (the
// daemon does; GET /api/v1/observations serves them).
type observer interface {
	Observations(since time.Time) ([]record.Observation, bool)
}

// ObservationsReply is the body of GET /api/v1/observations?since=RFC3339:
// what this replica observed at each tick after since (the samples, what
// the control plane said of each host, the collectors' errors, the
// unfenceable hosts), oldest first. Only the leader ticks; the replica
// keeps the last few ticks once someone asks, so the first answer may be
// empty. Missed says ticks after since were forgotten before this read.
type ObservationsReply struct {
	Leader       bool                 `json:"leader"`
	Missed       bool                 `json:"missed,omitempty"`
	Observations []record.Observation `json:"observations"`
}

func (s *Server) observations(w http.ResponseWriter, r *http.Request) {
	o, ok := s.b.(observer)
	if !ok {
		writeJSON(w, http.StatusNotImplemented, Error{Error: "this server keeps no observations"})
		return
	}
	var since time.Time
	if v := r.URL.Query().Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, Error{Error: "since: want an RFC 3339 time", Field: "since"})
			return
		}
		since = t
	}
	obs, missed := o.Observations(since)
	if obs == nil {
		obs = []record.Observation{}
	}
	w.Header().Set("Content-Type", "application/json")
	// compact: a tick of a large fleet is many samples
	_ = json.NewEncoder(w).Encode(ObservationsReply{Leader: s.b.Snapshot().Leader, Missed: missed, Observations: obs})
}
