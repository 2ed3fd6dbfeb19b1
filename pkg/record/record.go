// Package record keeps what a running replica observed, in the trace format
// of pkg/trace, so that `fenced simulate` can replay real history under
// another policy.
//
// Each tick the engine (pkg/daemon) hands a Sink one Observation: the
// samples it collected, what the control plane said of each host (the
// signals.Control the evaluator saw), the collectors' errors and the hosts
// whose fence path failed its last check. The Encoder turns observations
// into trace lines: every sample; a host's control lines only when they
// change; the faults the simulated backends obey (libvirt_unresponsive while
// the libvirt probe fails, bmc_unreachable while the BMC check fails); and a
// tick line, so that simulate evaluates at the very ticks the replica did.
//
// Files writes to a directory of rotating files with a bounded total size
// (`record:` in the run config) or to one file (`fenced run --dev
// --record`); Ring keeps the last few observations for the API
// (GET /api/v1/observations), which `fenced trace record` polls.
package record

import (
	"io"
	"math"
	"sort"
	"time"

	"github.com/fencedhq/fenced/internal/hostname"
	"github.com/fencedhq/fenced/pkg/groups"
	"github.com/fencedhq/fenced/pkg/playbook"
	"github.com/fencedhq/fenced/pkg/signals"
	"github.com/fencedhq/fenced/pkg/trace"
)

// Observation is what a replica saw at one tick.
type Observation struct {
	At      time.Time
	Samples []signals.Sample
	// Control is what the evaluator was told of each host (hosts the
	// control plane said nothing about are absent).
	Control map[string]signals.Control
	// Errors are the collectors' errors of this tick.
	Errors []string
	// Unfenceable are the hosts whose fence path (BMC) failed its last
	// check, with why.
	Unfenceable map[string]string
	// Groups is the group membership in force (nil: no groups): the
	// encoder writes the groups and each host's group when they change.
	// Not in the API's observations (GET /api/v1/observations): a trace
	// recorded through `fenced trace record` has no group lines.
	Groups *groups.Membership `json:"-"`
}

// Sink takes one observation a tick. Tick must not block the engine for
// long, and must not modify the observation.
type Sink interface {
	Tick(o Observation)
}

// Tee hands every observation to each sink in turn (nil sinks are left out).
func Tee(sinks ...Sink) Sink {
	var t tee
	for _, s := range sinks {
		if s != nil {
			t = append(t, s)
		}
	}
	return t
}

type tee []Sink

func (t tee) Tick(o Observation) {
	for _, s := range t {
		s.Tick(o)
	}
}

// ErrorStrings splits a collection's error (errors.Join of the collectors'
// errors) into one string per collector.
func ErrorStrings(err error) []string {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []string
		for _, e := range j.Unwrap() {
			out = append(out, ErrorStrings(e)...)
		}
		return out
	}
	return []string{err.Error()}
}

// minHealthy is how a trace writes a guard's min_healthy ("" unset).
func minHealthy(m playbook.MinHealthy) string {
	if !m.Set() {
		return ""
	}
	return m.String()
}

// hostState is what the encoder last wrote of one host.
type hostState struct {
	svc        trace.Service
	svcSet     bool
	servers    int
	serversSet bool
	libvirt    signals.Liveness
	bmc        string
	faults     map[string]bool
	lastUp     bool // what the agent said before any forced down
	upKnown    bool
	group      string // the group last written for the host ("": none yet)
}

// Encoder writes observations as trace lines. It is not safe for
// concurrent use.
type Encoder struct {
	w       *trace.Writer
	hosts   map[string]*hostState
	memb    *groups.Membership // the membership whose groups were last written
	last    time.Time
	Skipped int // samples a trace cannot hold (a bad host name, a negative or non-finite value)
}

// NewEncoder writes to w; call Flush after each Encode that must reach w.
func NewEncoder(w io.Writer) *Encoder {
	tw := trace.NewWriter(w)
	tw.Precise = true
	return &Encoder{w: tw, hosts: map[string]*hostState{}}
}

// Reset forgets what was written: the next observation is written in full
// (each rotated file replays on its own).
func (e *Encoder) Reset() { clear(e.hosts); e.memb = nil }

// Flush writes buffered lines.
func (e *Encoder) Flush() error { return e.w.Flush() }

// Encode writes one observation: its samples, the control lines that
// changed, the faults that began or ended, and the tick line. An
// observation older than the previous one is dropped (a trace is
// time-ordered).
func (e *Encoder) Encode(o Observation) {
	if o.At.Before(e.last) {
		return
	}
	smp := make([]signals.Sample, 0, len(o.Samples))
	for _, s := range o.Samples {
		if !s.Signal.Valid() || !(s.Value >= 0) || math.IsInf(s.Value, 0) || hostname.Check(s.Host) != nil {
			e.Skipped++
			continue
		}
		// a line's t is the sample's own time, kept between the previous
		// tick and this one so that the trace stays ordered
		if s.At.Before(e.last) {
			s.At = e.last
		}
		if s.At.After(o.At) || s.At.IsZero() {
			s.At = o.At
		}
		smp = append(smp, s)
	}
	sort.SliceStable(smp, func(i, j int) bool { return smp[i].At.Before(smp[j].At) })
	for _, s := range smp {
		e.w.Signal(s.At, s.Host, s.Signal, s.Value)
	}
	hosts := make([]string, 0, len(o.Control)+len(o.Unfenceable))
	for h := range o.Control {
		hosts = append(hosts, h)
	}
	for h := range o.Unfenceable {
		if _, ok := o.Control[h]; !ok {
			hosts = append(hosts, h)
		}
	}
	for h := range e.hosts {
		if _, ok := o.Control[h]; !ok && o.Unfenceable[h] == "" && len(e.hosts[h].faults) > 0 {
			hosts = append(hosts, h) // its faults may have ended
		}
	}
	sort.Strings(hosts)
	regroup := o.Groups != nil && o.Groups != e.memb
	if regroup {
		// the groups and their guards, again whenever the membership changes
		for _, d := range o.Groups.Defs() {
			e.w.Group(d.Name, minHealthy(d.Guard.MinHealthy), d.Guard.MaxConcurrent)
		}
		e.memb = o.Groups
	}
	for _, h := range hosts {
		if hostname.Check(h) != nil {
			continue
		}
		e.host(o.At, h, o, regroup)
	}
	e.w.Tick(o.At, o.Errors)
	e.last = o.At
}

// host writes what changed of h; regroup says the membership changed since
// the last observation (a host's group can change only then, or when the
// host is new).
func (e *Encoder) host(at time.Time, h string, o Observation, regroup bool) {
	st := e.hosts[h]
	if st == nil {
		st = &hostState{faults: map[string]bool{}}
		e.hosts[h] = st
	}
	if o.Groups != nil && (regroup || st.group == "") {
		// a member line when the host's group changes (the first time only
		// for a host in a named group: none is the trace's default)
		g := o.Groups.Of(h)
		if g != st.group && (st.group != "" || g != playbook.DefaultGroup) {
			e.w.Member(h, g, false)
		}
		st.group = g
	}
	c, known := o.Control[h]
	if known {
		// Nova hides what the agent says while the service is forced down:
		// the line keeps what it said before (forced_down says why)
		up := c.ServiceUp
		if c.ForcedDown {
			up = st.upKnown && st.lastUp
		} else {
			st.lastUp, st.upKnown = c.ServiceUp, true
		}
		svc := trace.Service{Up: up, ForcedDown: c.ForcedDown, HeartbeatAge: c.HeartbeatAge, HeartbeatKnown: c.HeartbeatKnown,
			ReportInterval: c.ReportInterval}
		if !st.svcSet || svc != st.svc {
			e.w.ServiceDetail(at, h, svc)
			st.svc, st.svcSet = svc, true
		}
		if !st.serversSet || c.ServersActive != st.servers {
			e.w.ServersActive(at, h, c.ServersActive)
			st.servers, st.serversSet = c.ServersActive, true
		}
		if c.Libvirt.Probed && c.Libvirt != st.libvirt {
			e.w.Libvirt(at, h, c.Libvirt.Failures, c.Libvirt.Answered)
			st.libvirt = c.Libvirt
		}
		if c.BMCPower != "" && c.BMCPower != st.bmc && validPower(c.BMCPower) {
			e.w.BMCPower(at, h, c.BMCPower)
			st.bmc = c.BMCPower
		}
	}
	want := map[string]bool{}
	if known && c.Libvirt.Probed && c.Libvirt.Failures > 0 || !known && st.faults[trace.FaultLibvirtUnresponsive] {
		want[trace.FaultLibvirtUnresponsive] = true // unknown this tick: as it was
	}
	if o.Unfenceable[h] != "" {
		want[trace.FaultBMCUnreachable] = true
	}
	ended := false
	for f := range st.faults {
		ended = ended || !want[f]
	}
	if ended {
		// the format clears a host's faults all at once
		e.w.Fault(at, h, trace.FaultCleared)
		clear(st.faults)
	}
	for _, f := range []string{trace.FaultLibvirtUnresponsive, trace.FaultBMCUnreachable} {
		if want[f] && !st.faults[f] {
			e.w.Fault(at, h, f)
			st.faults[f] = true
		}
	}
}

func validPower(s string) bool {
	for _, p := range trace.BMCPowerStates {
		if p == s {
			return true
		}
	}
	return false
}
