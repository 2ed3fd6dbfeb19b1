package bmcsim

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// FaultsOf returns a system's current faults (false when there is no such
// system). A fail5xx count goes down with each request it answered.
func (s *Sim) FaultsOf(id string) (Faults, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sys, ok := s.systems[id]
	if !ok {
		return Faults{}, false
	}
	return sys.faults, true
}

// AdminHandler changes faults while the simulator runs (chaos tests: a BMC
// that starts hanging, a burst of 5xx, credentials that stop working):
//
//	GET    /faults          {"SYSTEM": "KIND[=VALUE],…"} of every system with a fault
//	PUT    /faults/SYSTEM   body: KIND[=VALUE],… (ParseFaults); replaces the system's faults
//	DELETE /faults/SYSTEM   clears them
//
// It has no authentication: serve it on loopback only, apart from the
// Redfish listener.
func (s *Sim) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /faults", func(w http.ResponseWriter, _ *http.Request) {
		out := map[string]string{}
		for _, id := range s.systemIDs() {
			if f, _ := s.FaultsOf(id); f != (Faults{}) {
				out[id] = f.String()
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	})
	mux.HandleFunc("PUT /faults/{id}", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 4096))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f, err := ParseFaults(string(body))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.setFaultsOf(w, r.PathValue("id"), f)
	})
	mux.HandleFunc("DELETE /faults/{id}", func(w http.ResponseWriter, r *http.Request) {
		s.setFaultsOf(w, r.PathValue("id"), Faults{})
	})
	return mux
}

func (s *Sim) setFaultsOf(w http.ResponseWriter, id string, f Faults) {
	if _, ok := s.FaultsOf(id); !ok {
		http.Error(w, fmt.Sprintf("no system %q", id), http.StatusNotFound)
		return
	}
	s.SetFaults(id, f)
	fmt.Fprintf(w, "%s: %s\n", id, f)
}
