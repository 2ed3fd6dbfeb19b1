package lab

import (
	"github.com/fencedhq/fenced/pkg/fencing"

	"encoding/json"
	"net/http"
	"sync"
	"time"
)

// Action is one thing a replica asked the lab to do.
type Action struct {
	At      time.Time `json:"t"`
	Replica string    `json:"replica"`
	Host    string    `json:"host"`
	Action  string    `json:"action"`
}

// Server serves a World and its Generator over HTTP so that several fenced
// replicas (separate processes) act on one simulated world: the lab of the
// HA integration tests. Every action is logged with the replica that asked
// (header X-Fenced-Replica).
type Server struct {
	World      *World
	Gen        *Generator
	PowerDelay time.Duration // how long a power cycle request takes to answer

	mu      sync.Mutex
	actions []Action
	collect []Action
}

// Counters returns what the world was asked to do so far.
func (s *Server) Counters() Counters {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.World.Counters
}

// ReplicaHeader names the calling replica.
const ReplicaHeader = "X-Fenced-Replica"

// Handler returns the HTTP API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /lab/v1/samples", s.locked(func(w http.ResponseWriter, r *http.Request) {
		s.collect = append(s.collect, Action{At: time.Now(), Replica: r.Header.Get(ReplicaHeader), Action: "collect"})
		raw := s.Gen.Samples(s.World.now())
		out := raw[:0]
		for _, smp := range raw {
			if v, keep := s.World.Sample(smp); keep {
				smp.Value = v
				out = append(out, smp)
			}
		}
		reply(w, out, nil)
	}))
	mux.HandleFunc("GET /lab/v1/hosts/{host}/control", s.locked(func(w http.ResponseWriter, r *http.Request) {
		c, ok := s.World.Control(r.PathValue("host"))
		if !ok {
			http.NotFound(w, r)
			return
		}
		reply(w, c, nil)
	}))
	mux.HandleFunc("GET /lab/v1/hosts/{host}/servers", s.locked(func(w http.ResponseWriter, r *http.Request) {
		srv, err := s.World.Servers(r.Context(), r.PathValue("host"))
		reply(w, srv, err)
	}))
	mux.HandleFunc("GET /lab/v1/hosts/{host}/gate", s.locked(func(w http.ResponseWriter, r *http.Request) {
		reply(w, s.World.Check(r.Context(), r.PathValue("host")), nil)
	}))
	mux.HandleFunc("GET /lab/v1/hosts/{host}/power", s.locked(func(w http.ResponseWriter, r *http.Request) {
		h := r.PathValue("host")
		back, _ := s.World.Back(r.Context(), h)
		st, _ := s.World.PowerState(r.Context(), h)
		reply(w, PowerStatus{RebootedAt: s.World.RebootedAt(h), On: s.World.Power(h), Back: back, State: st}, nil)
	}))
	mux.HandleFunc("GET /lab/v1/hosts/{host}/destination", s.locked(func(w http.ResponseWriter, r *http.Request) {
		reply(w, map[string]string{"dest": s.World.destination(r.PathValue("host"))}, nil)
	}))
	mux.HandleFunc("GET /lab/v1/actions", s.locked(func(w http.ResponseWriter, _ *http.Request) {
		reply(w, map[string]any{"actions": s.actions, "collect": s.collect}, nil)
	}))
	// a new incident: the host starts starving now (tests; not a replica's action)
	mux.HandleFunc("POST /lab/v1/hosts/{host}/starve", s.locked(func(w http.ResponseWriter, r *http.Request) {
		h := r.PathValue("host")
		if _, ok := s.World.Control(h); !ok {
			http.NotFound(w, r)
			return
		}
		s.Gen.StarveAt(h, s.World.now())
		reply(w, map[string]bool{"ok": true}, nil)
	}))
	mux.HandleFunc("POST /lab/v1/hosts/{host}/{action}", func(w http.ResponseWriter, r *http.Request) {
		host, action := r.PathValue("host"), r.PathValue("action")
		var body struct {
			Reason string `json:"reason"`
			Down   bool   `json:"down"`
			Dest   string `json:"dest"`
			Server string `json:"server"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		s.mu.Lock()
		s.actions = append(s.actions, Action{At: time.Now(), Replica: r.Header.Get(ReplicaHeader), Host: host, Action: action})
		var err error
		ctx := r.Context()
		switch action {
		case "disable":
			err = s.World.Disable(ctx, host, body.Reason)
		case "enable":
			err = s.World.Enable(ctx, host)
		case "force_down":
			err = s.World.ForceDown(ctx, host, body.Down)
		case "live_migrate":
			err = s.World.LiveMigrate(ctx, body.Server, body.Dest)
		case "evacuate":
			err = s.World.Evacuate(ctx, body.Server, body.Dest)
		case "power_cycle":
			// the BMC takes the reset at once and answers later: a replica
			// killed while waiting has still reset the host
			err = s.World.PowerCycle(ctx, host)
		case "power_off":
			err = s.World.PowerOff(ctx, host)
		case "power_on":
			err = s.World.PowerOn(ctx, host)
		default:
			s.mu.Unlock()
			http.NotFound(w, r)
			return
		}
		s.mu.Unlock()
		if (action == "power_cycle" || action == "power_off" || action == "power_on") && s.PowerDelay > 0 {
			time.Sleep(s.PowerDelay)
		}
		reply(w, map[string]bool{"ok": err == nil}, err)
	})
	return mux
}

func (s *Server) locked(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		h(w, r)
	}
}

// PowerStatus is what the lab's BMC says about a host.
type PowerStatus struct {
	RebootedAt time.Time `json:"rebooted_at"`
	On         bool      `json:"on"`
	Back       bool      `json:"back"`
	// State is the BMC's power state.
	State fencing.PowerState `json:"state"`
}

type errBody struct {
	Error string `json:"error"`
}

func reply(w http.ResponseWriter, v any, err error) {
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		w.WriteHeader(http.StatusConflict)
		_ = json.NewEncoder(w).Encode(errBody{err.Error()})
		return
	}
	_ = json.NewEncoder(w).Encode(v)
}
