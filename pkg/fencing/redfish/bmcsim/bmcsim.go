// Package bmcsim is a Redfish BMC simulator: a service root, a Systems
// collection with ComputerSystem resources shaped after DMTF's public
// mockups (PowerState, Boot, Status, the ComputerSystem.Reset action with
// ResetType@Redfish.AllowableValues), Managers and Chassis, SessionService
// sessions and basic auth, and a power model that takes a configurable time
// to change. Faults are injected per system. Tests, `fenced run --dev` and
// `fenced lab bmc` use it; Debian's redfishtool checks it from outside.
package bmcsim

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// Faults of one system.
type Faults struct {
	Hang        bool          // requests about the system never answer (until the client gives up)
	Slow        time.Duration // every request about the system waits this long
	Conflict409 bool          // ForceOff on a system that is already off answers 409 (some BMCs do)
	Fail5xx     int           // the next N requests about the system answer 503
	NeverOff    bool          // resets are accepted but the power never goes off
	AuthFail    bool          // every request about the system is refused with 401 (other systems of the BMC answer)
}

type system struct {
	id      string
	power   string // On, Off, PoweringOn, PoweringOff
	plan    []step // pending power changes
	faults  Faults
	resets  []string
	changed time.Time
}

type step struct {
	at    time.Time
	state string
}

// AllowedResets are the reset types every system offers.
var AllowedResets = []string{"On", "ForceOff", "GracefulShutdown", "ForceRestart", "GracefulRestart", "PowerCycle", "ForceOn"}

// Sim is the simulator. Create with New; its Handler serves HTTP.
type Sim struct {
	Username, Password string
	PowerDelay         time.Duration // time for each power change
	SessionTTL         time.Duration // idle sessions expire after this (0: never)
	// OnReset, when set, is told of every reset a system accepts (the dev
	// lab reboots its simulated host).
	OnReset func(system, resetType string)
	// OnPower, when set, is told each time a system's power settles at "On"
	// or "Off" after a reset, that is after the power delay (a power cycle
	// reports Off, then On). Calls run on a goroutine of their own, one at a
	// time in the order the changes happened, never under the simulator's
	// lock: the hook may be slow and may call the simulator. SetPower does
	// not report. Set it before serving.
	OnPower func(system, state string)
	// ResetTypes are the reset types the systems offer (their
	// ResetType@Redfish.AllowableValues); nil means AllowedResets.
	ResetTypes []string
	now        func() time.Time

	mu       sync.Mutex
	systems  map[string]*system
	sessions map[string]time.Time // token → last use
	ids      map[string]string    // session id → token
	logins   int
	powerQ   []powerEvent // settled power changes not yet given to OnPower
	powerRun bool         // a goroutine is delivering powerQ
}

type powerEvent struct{ system, state string }

// Logins counts login attempts (sessions requested), good or bad.
func (s *Sim) Logins() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logins
}

// New returns a simulator with the given systems, all powered on.
func New(username, password string, powerDelay time.Duration, systemIDs ...string) *Sim {
	s := &Sim{Username: username, Password: password, PowerDelay: powerDelay, now: time.Now,
		systems: map[string]*system{}, sessions: map[string]time.Time{}, ids: map[string]string{}}
	for _, id := range systemIDs {
		s.systems[id] = &system{id: id, power: "On"}
	}
	return s
}

// SetFaults replaces a system's faults.
func (s *Sim) SetFaults(id string, f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sys, ok := s.systems[id]; ok {
		sys.faults = f
	}
}

// SetPower forces a system's power state (tests).
func (s *Sim) SetPower(id, state string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sys, ok := s.systems[id]; ok {
		sys.power, sys.plan = state, nil
	}
}

// Power returns a system's current power state.
func (s *Sim) Power(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	sys := s.systems[id]
	if sys == nil {
		return ""
	}
	s.advance(sys)
	return sys.power
}

// Resets returns the reset types a system received, in order.
func (s *Sim) Resets(id string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sys := s.systems[id]; sys != nil {
		return append([]string(nil), sys.resets...)
	}
	return nil
}

// ExpireSessions drops every session (a BMC reboot, an idle timeout).
func (s *Sim) ExpireSessions() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sessions, s.ids = map[string]time.Time{}, map[string]string{}
}

// advance applies due power changes.
func (s *Sim) advance(sys *system) {
	now := s.now()
	for len(sys.plan) > 0 && !sys.plan[0].at.After(now) {
		sys.power, sys.changed = sys.plan[0].state, sys.plan[0].at
		if s.OnPower != nil && (sys.power == "On" || sys.power == "Off") {
			s.powerQ = append(s.powerQ, powerEvent{sys.id, sys.power})
		}
		sys.plan = sys.plan[1:]
	}
}

// settleLater applies a system's planned On and Off steps when they are due,
// so OnPower hears of them without anyone asking for the power state.
func (s *Sim) settleLater(sys *system) {
	if s.OnPower == nil {
		return
	}
	now := s.now()
	for _, st := range sys.plan {
		if st.state != "On" && st.state != "Off" {
			continue
		}
		time.AfterFunc(st.at.Sub(now), func() {
			s.mu.Lock()
			s.advance(sys)
			s.mu.Unlock()
			s.deliverPower()
		})
	}
}

// deliverPower hands queued power changes to OnPower on one goroutine, in
// order, outside the lock.
func (s *Sim) deliverPower() {
	s.mu.Lock()
	if s.powerRun || len(s.powerQ) == 0 {
		s.mu.Unlock()
		return
	}
	s.powerRun = true
	s.mu.Unlock()
	go func() {
		for {
			s.mu.Lock()
			if len(s.powerQ) == 0 {
				s.powerRun = false
				s.mu.Unlock()
				return
			}
			ev, hook := s.powerQ[0], s.OnPower
			s.powerQ = s.powerQ[1:]
			s.mu.Unlock()
			hook(ev.system, ev.state)
		}
	}()
}

// reset plans the power changes of a reset type.
func (s *Sim) reset(sys *system, rt string) {
	now := s.now()
	sys.resets = append(sys.resets, rt)
	s.advance(sys)
	d := s.PowerDelay
	off := func(at time.Time) []step {
		if sys.faults.NeverOff {
			return nil
		}
		return []step{{at, "PoweringOff"}, {at.Add(d), "Off"}}
	}
	on := func(at time.Time) []step { return []step{{at, "PoweringOn"}, {at.Add(d), "On"}} }
	switch rt {
	case "ForceOff", "GracefulShutdown":
		if sys.power == "Off" {
			return
		}
		sys.plan = off(now)
	case "On", "ForceOn":
		if sys.power == "On" {
			return
		}
		sys.plan = on(now)
	case "ForceRestart", "GracefulRestart", "PowerCycle":
		if sys.faults.NeverOff {
			return
		}
		sys.plan = append(off(now), on(now.Add(d))...)
	}
	s.advance(sys)
	s.settleLater(sys)
}

func token() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("OData-Version", "4.0")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func redfishError(w http.ResponseWriter, code int, msgID, msg string) {
	writeJSON(w, code, map[string]any{"error": map[string]any{
		"code": "Base.1.8." + msgID, "message": msg,
		"@Message.ExtendedInfo": []any{map[string]any{"MessageId": "Base.1.8." + msgID, "Message": msg, "Severity": "Warning"}},
	}})
}

// authorized checks X-Auth-Token or basic auth.
func (s *Sim) authorized(r *http.Request) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if tok := r.Header.Get("X-Auth-Token"); tok != "" {
		last, ok := s.sessions[tok]
		if !ok || (s.SessionTTL > 0 && s.now().Sub(last) > s.SessionTTL) {
			delete(s.sessions, tok)
			return false
		}
		s.sessions[tok] = s.now()
		return true
	}
	u, p, ok := r.BasicAuth()
	return ok && u == s.Username && p == s.Password
}

// Handler returns the Redfish HTTP API.
func (s *Sim) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /redfish", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, 200, map[string]string{"v1": "/redfish/v1/"})
	})
	root := func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, 200, map[string]any{
			"@odata.id": "/redfish/v1/", "@odata.type": "#ServiceRoot.v1_11_0.ServiceRoot", "Id": "RootService",
			"Name": "fenced BMC simulator", "RedfishVersion": "1.11.0", "UUID": "92384634-2938-2342-8820-489239905423",
			"Systems":        map[string]string{"@odata.id": "/redfish/v1/Systems"},
			"Chassis":        map[string]string{"@odata.id": "/redfish/v1/Chassis"},
			"Managers":       map[string]string{"@odata.id": "/redfish/v1/Managers"},
			"SessionService": map[string]string{"@odata.id": "/redfish/v1/SessionService"},
			"Links":          map[string]any{"Sessions": map[string]string{"@odata.id": "/redfish/v1/SessionService/Sessions"}},
		})
	}
	mux.HandleFunc("GET /redfish/v1", root)
	mux.HandleFunc("GET /redfish/v1/{$}", root)
	mux.HandleFunc("POST /redfish/v1/SessionService/Sessions", s.login)
	mux.HandleFunc("GET /redfish/v1/SessionService", s.auth(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, 200, map[string]any{"@odata.id": "/redfish/v1/SessionService", "@odata.type": "#SessionService.v1_1_8.SessionService",
			"Id": "SessionService", "Name": "Session Service", "ServiceEnabled": true, "SessionTimeout": int(s.SessionTTL.Seconds()),
			"Sessions": map[string]string{"@odata.id": "/redfish/v1/SessionService/Sessions"}})
	}))
	mux.HandleFunc("GET /redfish/v1/SessionService/Sessions", s.auth(func(w http.ResponseWriter, _ *http.Request) {
		s.mu.Lock()
		var members []any
		for id := range s.ids {
			members = append(members, map[string]string{"@odata.id": "/redfish/v1/SessionService/Sessions/" + id})
		}
		s.mu.Unlock()
		writeJSON(w, 200, collection("/redfish/v1/SessionService/Sessions", "#SessionCollection.SessionCollection", "Sessions", members))
	}))
	mux.HandleFunc("DELETE /redfish/v1/SessionService/Sessions/{id}", s.auth(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		if tok, ok := s.ids[r.PathValue("id")]; ok {
			delete(s.sessions, tok)
			delete(s.ids, r.PathValue("id"))
		}
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	mux.HandleFunc("GET /redfish/v1/Systems", s.auth(func(w http.ResponseWriter, _ *http.Request) {
		var members []any
		for _, id := range s.systemIDs() {
			members = append(members, map[string]string{"@odata.id": "/redfish/v1/Systems/" + id})
		}
		writeJSON(w, 200, collection("/redfish/v1/Systems", "#ComputerSystemCollection.ComputerSystemCollection", "Computer System Collection", members))
	}))
	mux.HandleFunc("GET /redfish/v1/Systems/{id}", s.auth(s.withSystem(func(w http.ResponseWriter, _ *http.Request, sys *system) {
		writeJSON(w, 200, s.systemResource(sys))
	})))
	mux.HandleFunc("POST /redfish/v1/Systems/{id}/Actions/ComputerSystem.Reset", s.auth(s.withSystem(s.resetAction)))
	mux.HandleFunc("GET /redfish/v1/Managers", s.auth(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, 200, collection("/redfish/v1/Managers", "#ManagerCollection.ManagerCollection", "Manager Collection",
			[]any{map[string]string{"@odata.id": "/redfish/v1/Managers/BMC"}}))
	}))
	mux.HandleFunc("GET /redfish/v1/Managers/BMC", s.auth(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, 200, map[string]any{"@odata.id": "/redfish/v1/Managers/BMC", "@odata.type": "#Manager.v1_10_0.Manager",
			"Id": "BMC", "Name": "Manager", "ManagerType": "BMC", "FirmwareVersion": "fenced-bmcsim-1", "PowerState": "On",
			"Status": map[string]string{"State": "Enabled", "Health": "OK"}})
	}))
	mux.HandleFunc("GET /redfish/v1/Chassis", s.auth(func(w http.ResponseWriter, _ *http.Request) {
		var members []any
		for _, id := range s.systemIDs() {
			members = append(members, map[string]string{"@odata.id": "/redfish/v1/Chassis/" + id})
		}
		writeJSON(w, 200, collection("/redfish/v1/Chassis", "#ChassisCollection.ChassisCollection", "Chassis Collection", members))
	}))
	mux.HandleFunc("GET /redfish/v1/Chassis/{id}", s.auth(s.withSystem(func(w http.ResponseWriter, _ *http.Request, sys *system) {
		writeJSON(w, 200, map[string]any{"@odata.id": "/redfish/v1/Chassis/" + sys.id, "@odata.type": "#Chassis.v1_14_0.Chassis",
			"Id": sys.id, "Name": "Chassis " + sys.id, "ChassisType": "RackMount", "PowerState": sys.power,
			"Status": map[string]string{"State": "Enabled", "Health": "OK"},
			"Links":  map[string]any{"ComputerSystems": []any{map[string]string{"@odata.id": "/redfish/v1/Systems/" + sys.id}}}})
	})))
	return mux
}

func collection(id, typ, name string, members []any) map[string]any {
	if members == nil {
		members = []any{}
	}
	return map[string]any{"@odata.id": id, "@odata.type": typ, "Name": name, "Members": members, "Members@odata.count": len(members)}
}

func (s *Sim) systemIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0, len(s.systems))
	for id := range s.systems {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

func (s *Sim) resetTypes() []string {
	if s.ResetTypes != nil {
		return s.ResetTypes
	}
	return AllowedResets
}

func (s *Sim) systemResource(sys *system) map[string]any {
	return map[string]any{
		"@odata.id": "/redfish/v1/Systems/" + sys.id, "@odata.type": "#ComputerSystem.v1_13_0.ComputerSystem",
		"Id": sys.id, "Name": sys.id, "SystemType": "Physical", "Manufacturer": "fenced", "Model": "bmcsim",
		"SerialNumber": "SIM-" + strings.ToUpper(sys.id), "PowerState": sys.power,
		"Status": map[string]string{"State": "Enabled", "Health": "OK"},
		"Boot": map[string]any{"BootSourceOverrideEnabled": "Disabled", "BootSourceOverrideTarget": "None",
			"BootSourceOverrideTarget@Redfish.AllowableValues": []string{"None", "Pxe", "Hdd"}},
		"ProcessorSummary": map[string]any{"Count": 2, "Model": "Simulated CPU"},
		"MemorySummary":    map[string]any{"TotalSystemMemoryGiB": 256},
		"Actions": map[string]any{"#ComputerSystem.Reset": map[string]any{
			"target":                            "/redfish/v1/Systems/" + sys.id + "/Actions/ComputerSystem.Reset",
			"ResetType@Redfish.AllowableValues": s.resetTypes(),
		}},
		"Links": map[string]any{"Chassis": []any{map[string]string{"@odata.id": "/redfish/v1/Chassis/" + sys.id}},
			"ManagedBy": []any{map[string]string{"@odata.id": "/redfish/v1/Managers/BMC"}}},
	}
}

func (s *Sim) login(w http.ResponseWriter, r *http.Request) {
	var body struct{ UserName, Password string }
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		redfishError(w, 400, "MalformedJSON", "the request body is not JSON")
		return
	}
	s.mu.Lock()
	s.logins++
	s.mu.Unlock()
	if body.UserName != s.Username || body.Password != s.Password {
		redfishError(w, 401, "NoValidSession", "invalid credentials")
		return
	}
	tok, id := token(), token()[:8]
	s.mu.Lock()
	s.sessions[tok], s.ids[id] = s.now(), tok
	s.mu.Unlock()
	loc := "/redfish/v1/SessionService/Sessions/" + id
	w.Header().Set("X-Auth-Token", tok)
	w.Header().Set("Location", loc)
	writeJSON(w, 201, map[string]any{"@odata.id": loc, "@odata.type": "#Session.v1_3_0.Session", "Id": id, "Name": "User Session", "UserName": body.UserName})
}

func (s *Sim) auth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Basic realm="bmcsim"`)
			redfishError(w, 401, "NoValidSession", "no valid session or credentials")
			return
		}
		h(w, r)
	}
}

// withSystem finds the system and applies its faults.
func (s *Sim) withSystem(h func(http.ResponseWriter, *http.Request, *system)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		sys := s.systems[r.PathValue("id")]
		if sys == nil {
			s.mu.Unlock()
			redfishError(w, 404, "ResourceMissingAtURI", fmt.Sprintf("no system %q", r.PathValue("id")))
			return
		}
		f := sys.faults
		if f.Fail5xx > 0 {
			sys.faults.Fail5xx--
		}
		s.mu.Unlock()
		if f.AuthFail {
			w.Header().Set("WWW-Authenticate", `Basic realm="bmcsim"`)
			redfishError(w, 401, "NoValidSession", "no valid session or credentials")
			return
		}
		if f.Hang {
			<-r.Context().Done()
			return
		}
		if f.Slow > 0 {
			select {
			case <-time.After(f.Slow):
			case <-r.Context().Done():
				return
			}
		}
		if f.Fail5xx > 0 {
			redfishError(w, 503, "ServiceTemporarilyUnavailable", "the service is temporarily unavailable")
			return
		}
		s.mu.Lock()
		s.advance(sys)
		s.mu.Unlock()
		h(w, r, sys)
	}
}

func (s *Sim) resetAction(w http.ResponseWriter, r *http.Request, sys *system) {
	var body struct{ ResetType string }
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		redfishError(w, 400, "MalformedJSON", "the request body is not JSON")
		return
	}
	ok := false
	for _, a := range s.resetTypes() {
		ok = ok || a == body.ResetType
	}
	if !ok {
		redfishError(w, 400, "ActionParameterValueNotInList", fmt.Sprintf("ResetType %q is not allowed", body.ResetType))
		return
	}
	s.mu.Lock()
	if sys.faults.Conflict409 && body.ResetType == "ForceOff" && sys.power == "Off" {
		sys.resets = append(sys.resets, body.ResetType)
		s.mu.Unlock()
		redfishError(w, 409, "ActionNotSupported", "the system is already powered off")
		return
	}
	s.reset(sys, body.ResetType)
	never := sys.faults.NeverOff
	s.mu.Unlock()
	s.deliverPower()
	if s.OnReset != nil && !never {
		s.OnReset(sys.id, body.ResetType)
	}
	w.WriteHeader(http.StatusNoContent)
}
