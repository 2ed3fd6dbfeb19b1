package record

import (
	"encoding/json"
	"sync"
	"time"

	"github.com/fencedhq/fenced/pkg/signals"
)

// Defaults of a Ring: a poller may miss DefaultRing ticks in a row without
// a gap in what it records; a ring nobody has read for DefaultRingIdle (of
// the observations' time) stops keeping anything.
const (
	DefaultRing     = 6
	DefaultRingIdle = 5 * time.Minute
)

// Ring is a Sink that keeps the last few observations for readers on other
// goroutines (the API). It keeps them only while someone reads: a replica
// nobody records from holds no samples beyond its tick. It is safe for
// concurrent use.
type Ring struct {
	mu      sync.Mutex
	buf     []Observation
	n       int       // observations kept since the ring last started keeping
	forgot  time.Time // time of the newest observation forgotten or not kept
	idle    time.Duration
	lastAt  time.Time // the newest tick seen
	readAt  time.Time // the newest tick when a reader last asked
	reading bool
}

// NewRing keeps the last n observations (DefaultRing if n <= 0) while a
// reader asked within idle of the newest tick (0: always).
func NewRing(n int, idle time.Duration) *Ring {
	if n <= 0 {
		n = DefaultRing
	}
	return &Ring{buf: make([]Observation, n), idle: idle}
}

// Wanted reports whether the ring keeps observations now: a caller may skip
// building one it would not keep.
func (r *Ring) Wanted() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.wanted()
}

func (r *Ring) wanted() bool {
	return r.idle == 0 || r.reading && r.lastAt.Sub(r.readAt) <= r.idle
}

// Tick keeps o, forgetting the oldest (or, nobody reading, only its time).
func (r *Ring) Tick(o Observation) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if o.At.After(r.lastAt) {
		r.lastAt = o.At
	}
	if !r.wanted() {
		if r.n > 0 {
			clear(r.buf)
			r.n = 0
		}
		r.forgot = o.At
		return
	}
	i := r.n % len(r.buf)
	if r.n >= len(r.buf) {
		r.forgot = r.buf[i].At
	}
	r.buf[i] = o
	r.n++
}

// Since returns the kept observations after t, oldest first, and whether
// some after t were already forgotten (the reader missed ticks).
func (r *Ring) Since(t time.Time) (obs []Observation, missed bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reading, r.readAt = true, r.lastAt
	first := max(r.n-len(r.buf), 0)
	for i := first; i < r.n; i++ {
		o := r.buf[i%len(r.buf)]
		if o.At.After(t) {
			obs = append(obs, o)
		}
	}
	return obs, r.forgot.After(t) && !t.IsZero()
}

// The JSON form of an observation (GET /api/v1/observations).
type wireObservation struct {
	T           time.Time              `json:"t"`
	Samples     []wireSample           `json:"samples"`
	Control     map[string]wireControl `json:"control,omitempty"`
	Errors      []string               `json:"errors,omitempty"`
	Unfenceable map[string]string      `json:"unfenceable,omitempty"`
}

type wireSample struct {
	Host   string       `json:"host"`
	Signal signals.Name `json:"signal"`
	Value  float64      `json:"value"`
	T      *time.Time   `json:"t,omitempty"` // when not the observation's time
}

type wireControl struct {
	ServiceUp       bool          `json:"service_up"`
	ForcedDown      bool          `json:"forced_down,omitempty"`
	ServersActive   int           `json:"servers_active"`
	HeartbeatAgeS   *float64      `json:"heartbeat_age_s,omitempty"`
	ReportIntervalS float64       `json:"report_interval_s,omitempty"`
	Libvirt         *wireLiveness `json:"libvirt,omitempty"`
	BMCPower        string        `json:"bmc_power,omitempty"`
}

type wireLiveness struct {
	Answered bool `json:"answered"`
	Failures int  `json:"failures"`
}

// MarshalJSON writes the observation's JSON form.
func (o Observation) MarshalJSON() ([]byte, error) {
	w := wireObservation{T: o.At, Samples: make([]wireSample, len(o.Samples)), Errors: o.Errors, Unfenceable: o.Unfenceable}
	for i, s := range o.Samples {
		w.Samples[i] = wireSample{Host: s.Host, Signal: s.Signal, Value: s.Value}
		if !s.At.Equal(o.At) {
			at := s.At
			w.Samples[i].T = &at
		}
	}
	if len(o.Control) > 0 {
		w.Control = make(map[string]wireControl, len(o.Control))
		for h, c := range o.Control {
			wc := wireControl{ServiceUp: c.ServiceUp, ForcedDown: c.ForcedDown, ServersActive: c.ServersActive,
				ReportIntervalS: c.ReportInterval.Seconds(), BMCPower: c.BMCPower}
			if c.HeartbeatKnown {
				age := c.HeartbeatAge.Seconds()
				wc.HeartbeatAgeS = &age
			}
			if c.Libvirt.Probed {
				wc.Libvirt = &wireLiveness{Answered: c.Libvirt.Answered, Failures: c.Libvirt.Failures}
			}
			w.Control[h] = wc
		}
	}
	return json.Marshal(w)
}

// UnmarshalJSON reads the observation's JSON form.
func (o *Observation) UnmarshalJSON(b []byte) error {
	var w wireObservation
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*o = Observation{At: w.T, Samples: make([]signals.Sample, len(w.Samples)), Errors: w.Errors, Unfenceable: w.Unfenceable}
	for i, s := range w.Samples {
		o.Samples[i] = signals.Sample{Host: s.Host, Signal: s.Signal, Value: s.Value, At: w.T}
		if s.T != nil {
			o.Samples[i].At = *s.T
		}
	}
	if len(w.Control) > 0 {
		o.Control = make(map[string]signals.Control, len(w.Control))
		for h, wc := range w.Control {
			c := signals.Control{ServiceUp: wc.ServiceUp, ForcedDown: wc.ForcedDown, Known: true, ServersActive: wc.ServersActive,
				ReportInterval: time.Duration(wc.ReportIntervalS * float64(time.Second)), BMCPower: wc.BMCPower}
			if wc.HeartbeatAgeS != nil {
				c.HeartbeatAge, c.HeartbeatKnown = time.Duration(*wc.HeartbeatAgeS*float64(time.Second)), true
			}
			if wc.Libvirt != nil {
				c.Libvirt = signals.Liveness{Probed: true, Answered: wc.Libvirt.Answered, Failures: wc.Libvirt.Failures}
			}
			o.Control[h] = c
		}
	}
	return nil
}
