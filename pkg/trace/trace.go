// Package trace reads and writes fenced's trace format: JSON Lines, one
// observation a line, time-ordered, unknown fields ignored:
//
//	{"t":"2026-01-15T01:14:00Z","host":"cmp-017","signal":"cpu_steal_pct","value":31.5}
//	{"t":"2026-01-15T01:14:00Z","host":"cmp-017","control":"nova_service","value":"up"}
//	{"t":"2026-01-15T01:20:00Z","host":"cmp-017","fault":"libvirt_unresponsive"}
//	{"host":"cmp-017","cores":48}
//
// A trace recorded by a running replica (pkg/record) adds what the replica
// saw beyond that; a reader of this version takes every line above the same
// way, with or without these:
//
//	{"t":"2026-01-15T01:14:00.012Z","tick":true}
//	{"t":"…","tick":true,"errors":["nova: no answer within 5s"]}
//	{"t":"…","host":"cmp-017","control":"nova_service","value":"up","forced_down":true,"heartbeat_age_s":41.2,"report_interval_s":10}
//	{"t":"…","host":"cmp-017","control":"libvirt","value":3,"answered":true}
//	{"t":"…","host":"cmp-017","control":"bmc_power","value":"On"}
//
// A tick line says the replica evaluated its fleet at t, after the lines
// before it (the collectors' errors of that tick with it); a trace with tick
// lines is replayed at those ticks rather than on a fixed grid. The extra
// fields of nova_service are optional (forced_down: someone forced the
// service down, the value is what the agent last said before; the heartbeat
// age and Nova's report interval feed the hard-failure and agent-down
// rules); libvirt is the probe's failures in a row (answered: it answered at
// least once) and bmc_power the BMC's last power reading. Older readers
// refuse tick, libvirt and bmc_power lines.
//
// A trace may say how the fleet is organised (docs/groups.md): groups, with
// the guard of each, and each host's group; a group's reserved hosts are
// member lines with "reserved". These lines carry no time and may come
// anywhere (a host's last member line is its group); a trace without them
// is one fleet in the default group, as before they existed:
//
//	{"group":"agg-a","min_healthy":"50%","max_concurrent":1}
//	{"host":"cmp-201","group":"agg-a"}
//	{"host":"cmp-209","group":"agg-a","reserved":true}
//	{"host":"cmp-201","group":"default"}
//
// (the last: cmp-201 left its group for none).
//
// A file whose name ends in .gz is read through gzip. A bad line is an error
// that names the file and the line number. Host names follow the rule of the
// API and the run config (internal/hostname); signal values are finite and
// not negative (every B.1 signal is a percentage, a latency, a lag, a rate
// or a queue length).
package trace

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fencedhq/fenced/internal/escape"
	"github.com/fencedhq/fenced/internal/hostname"
	"github.com/fencedhq/fenced/pkg/playbook"
	"github.com/fencedhq/fenced/pkg/signals"
)

// q quotes a value from the file in an error: at most about 200 bytes of
// it, control characters escaped (a line may be a megabyte long).
func q(s string) string { return escape.Excerpt(s, escape.ExcerptLen) }

// Kind says what a record carries.
type Kind int

// Record kinds.
const (
	KindSignal Kind = iota + 1
	KindControl
	KindFault
	KindCores
	KindTick   // the replica evaluated its fleet (a recorded trace)
	KindGroup  // a group and its guard: {"group":"gpu","min_healthy":"60%"}
	KindMember // a host's group: {"host":"gpu-01","group":"gpu"}, "reserved":true for a spare
)

// Controls and faults named by the format.
const (
	ControlNovaService   = "nova_service"
	ControlServersActive = "servers_active"
	ControlLibvirt       = "libvirt"   // the libvirt probe's failures in a row
	ControlBMCPower      = "bmc_power" // the BMC's last power reading

	FaultLibvirtUnresponsive = "libvirt_unresponsive"
	FaultMigrationFails      = "migration_fails"
	FaultBMCUnreachable      = "bmc_unreachable"
	FaultRebootNeverReturns  = "reboot_never_returns"
	FaultCleared             = "cleared"
)

// Faults lists the fault names.
var Faults = []string{FaultLibvirtUnresponsive, FaultMigrationFails, FaultBMCUnreachable, FaultRebootNeverReturns, FaultCleared}

// BMC power readings a bmc_power line may carry.
var BMCPowerStates = []string{"On", "Off", "PoweringOn", "PoweringOff", "Unknown"}

// Record is one line of a trace.
type Record struct {
	Line    int
	T       time.Time
	Host    string
	Kind    Kind
	Signal  signals.Name
	Value   float64 // signal value, servers_active count, cores, libvirt failures
	Control string
	Up      bool // nova_service
	Fault   string

	// nova_service, optional: forced down, the agent's heartbeat age (if
	// HeartbeatKnown) and Nova's report interval
	ForcedDown     bool
	HeartbeatAge   time.Duration
	HeartbeatKnown bool
	ReportInterval time.Duration
	Answered       bool   // libvirt: the daemon answered at least once
	Power          string // bmc_power
	Errors         string // tick: the collectors' errors, "; "-joined

	// group and member lines
	Group         string
	Reserved      bool   // member: the host is one of the group's reserved hosts
	MinHealthy    string // group: a count or a percentage (playbook.ParseMinHealthy)
	MaxConcurrent int    // group
}

type line struct {
	T       string          `json:"t"`
	Host    string          `json:"host"`
	Signal  string          `json:"signal"`
	Control string          `json:"control"`
	Fault   string          `json:"fault"`
	Value   json.RawMessage `json:"value"`
	Cores   *int            `json:"cores"`

	Tick           *bool    `json:"tick"`
	Errors         []string `json:"errors"`
	ForcedDown     *bool    `json:"forced_down"`
	HeartbeatAge   *float64 `json:"heartbeat_age_s"`
	ReportInterval *float64 `json:"report_interval_s"`
	Answered       *bool    `json:"answered"`

	Group         string          `json:"group"`
	Reserved      *bool           `json:"reserved"`
	MinHealthy    json.RawMessage `json:"min_healthy"`
	MaxConcurrent *int            `json:"max_concurrent"`
}

// Reader reads records and checks them.
type Reader struct {
	name string
	sc   *bufio.Scanner
	n    int
	last time.Time
	c    io.Closer

	// fast path for the common signal line: cached timestamp and interned hosts
	lastTS []byte
	lastT  time.Time
	hosts  map[string]string
}

// Open opens a trace file ("-" is standard input).
func Open(path string) (*Reader, error) {
	if path == "-" {
		return NewReader(os.Stdin, "<stdin>"), nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("trace: %w", err)
	}
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		gz, err := gzip.NewReader(bufio.NewReaderSize(f, 1<<16))
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("trace: %s: %w", path, err)
		}
		r = gz
	}
	rd := NewReader(r, path)
	rd.c = f
	return rd, nil
}

// NewReader reads a trace from r; name is used in errors.
func NewReader(r io.Reader, name string) *Reader {
	sc := bufio.NewScanner(bufio.NewReaderSize(r, 1<<20))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	return &Reader{name: name, sc: sc, hosts: map[string]string{}}
}

// Close closes the underlying file, if any.
func (r *Reader) Close() error {
	if r.c != nil {
		return r.c.Close()
	}
	return nil
}

func (r *Reader) errf(format string, a ...any) error {
	return fmt.Errorf("trace: %s:%d: %s", r.name, r.n, fmt.Sprintf(format, a...))
}

// Next returns the next record, or io.EOF at the end.
func (r *Reader) Next() (Record, error) {
	for r.sc.Scan() {
		r.n++
		b := bytes.TrimSpace(r.sc.Bytes())
		if len(b) == 0 {
			continue
		}
		if rec, ok := r.fast(b); ok {
			return rec, nil
		}
		return r.parse(b)
	}
	if err := r.sc.Err(); err != nil {
		return Record{}, fmt.Errorf("trace: %s: after line %d: %w", r.name, r.n, err)
	}
	return Record{}, io.EOF
}

func (r *Reader) parse(b []byte) (Record, error) {
	var l line
	if err := json.Unmarshal(b, &l); err != nil {
		return Record{}, r.errf("not a JSON object: %v", err)
	}
	rec := Record{Line: r.n, Host: l.Host}
	if l.Tick != nil {
		return r.tick(l, rec)
	}
	if l.Group != "" || l.Reserved != nil || l.MinHealthy != nil || l.MaxConcurrent != nil {
		return r.group(l, rec)
	}
	if l.Host == "" {
		return rec, r.errf(`missing "host"`)
	}
	if err := hostname.Check(l.Host); err != nil {
		return rec, r.errf(`"host": %v`, err)
	}
	if l.Cores != nil {
		if *l.Cores <= 0 {
			return rec, r.errf(`"cores" must be a positive integer`)
		}
		rec.Kind, rec.Value = KindCores, float64(*l.Cores)
		return rec, nil
	}
	t, err := r.time(l.T)
	if err != nil {
		return rec, err
	}
	rec.T = t
	set := 0
	for _, s := range []string{l.Signal, l.Control, l.Fault} {
		if s != "" {
			set++
		}
	}
	if set != 1 {
		return rec, r.errf(`want exactly one of "signal", "control", "fault"`)
	}
	switch {
	case l.Signal != "":
		rec.Kind, rec.Signal = KindSignal, signals.Name(l.Signal)
		if !rec.Signal.Valid() {
			return rec, r.errf("unknown signal %s", q(l.Signal))
		}
		v, err := number(l.Value)
		if err != nil {
			return rec, r.errf(`"value" of %s: %v`, l.Signal, err)
		}
		if v < 0 {
			return rec, r.errf(`"value" of %s: %g is negative`, l.Signal, v)
		}
		rec.Value = v
	case l.Control != "":
		rec.Kind, rec.Control = KindControl, l.Control
		switch l.Control {
		case ControlNovaService:
			var s string
			if json.Unmarshal(l.Value, &s) != nil || (s != "up" && s != "down") {
				return rec, r.errf(`"value" of nova_service must be "up" or "down"`)
			}
			rec.Up = s == "up"
			if err := r.service(l, &rec); err != nil {
				return rec, err
			}
		case ControlServersActive:
			v, err := number(l.Value)
			if err != nil || v < 0 || v != math.Trunc(v) {
				return rec, r.errf(`"value" of servers_active must be a count`)
			}
			rec.Value = v
		case ControlLibvirt:
			v, err := number(l.Value)
			if err != nil || v < 0 || v != math.Trunc(v) {
				return rec, r.errf(`"value" of libvirt must be a count of failed probes`)
			}
			rec.Value = v
			rec.Answered = l.Answered != nil && *l.Answered
		case ControlBMCPower:
			var s string
			if json.Unmarshal(l.Value, &s) != nil || !slices.Contains(BMCPowerStates, s) {
				return rec, r.errf(`"value" of bmc_power must be one of %s`, strings.Join(BMCPowerStates, ", "))
			}
			rec.Power = s
		default:
			return rec, r.errf("unknown control %s (want nova_service, servers_active, libvirt or bmc_power)", q(l.Control))
		}
	default:
		rec.Kind, rec.Fault = KindFault, l.Fault
		known := false
		for _, f := range Faults {
			known = known || f == l.Fault
		}
		if !known {
			return rec, r.errf("unknown fault %s (want one of %s)", q(l.Fault), strings.Join(Faults, ", "))
		}
	}
	return rec, nil
}

// tick checks a tick line: a time and nothing about a host.
func (r *Reader) tick(l line, rec Record) (Record, error) {
	if !*l.Tick {
		return rec, r.errf(`"tick" must be true`)
	}
	if l.Host != "" || l.Signal != "" || l.Control != "" || l.Fault != "" || l.Cores != nil || l.Group != "" {
		return rec, r.errf(`a tick line carries no "host", "signal", "control", "fault", "cores" or "group"`)
	}
	t, err := r.time(l.T)
	if err != nil {
		return rec, err
	}
	rec.T, rec.Kind = t, KindTick
	for _, e := range l.Errors {
		if rec.Errors != "" {
			rec.Errors += "; "
		}
		rec.Errors += e
	}
	return rec, nil
}

// group checks a group line (no host: the group and its guard) or a
// member line (a host and its group). Neither has a time: like cores, they
// describe the fleet, and may come anywhere in the trace; a host's last
// member line is its group.
func (r *Reader) group(l line, rec Record) (Record, error) {
	if l.Group == "" {
		return rec, r.errf(`"reserved", "min_healthy" and "max_concurrent" belong on a line with "group"`)
	}
	if err := hostname.Check(l.Group); err != nil {
		return rec, r.errf(`"group": a group name is letters, digits, '.', '-' and '_': %v`, err)
	}
	if l.Group == playbook.DefaultGroup && (l.Host == "" || l.Reserved != nil) {
		// a member line may say a host left its group for none
		return rec, r.errf(`"group": %q is the implicit group of hosts in no group; choose another name`, l.Group)
	}
	if l.T != "" || l.Signal != "" || l.Control != "" || l.Fault != "" || l.Cores != nil || l.Value != nil {
		return rec, r.errf(`a group line carries "group" and, without "host", its guard (min_healthy, max_concurrent), or, with "host", "reserved"; no "t", "signal", "control", "fault", "cores" or "value"`)
	}
	rec.Group = l.Group
	if l.Host != "" {
		if err := hostname.Check(l.Host); err != nil {
			return rec, r.errf(`"host": %v`, err)
		}
		if l.MinHealthy != nil || l.MaxConcurrent != nil {
			return rec, r.errf(`a member line ("host" and "group") carries no guard: give min_healthy and max_concurrent on the group's line, without "host"`)
		}
		rec.Kind, rec.Reserved = KindMember, l.Reserved != nil && *l.Reserved
		return rec, nil
	}
	if l.Reserved != nil {
		return rec, r.errf(`"reserved" is about a host: give "host" too`)
	}
	rec.Kind = KindGroup
	if l.MinHealthy != nil {
		var s string
		if json.Unmarshal(l.MinHealthy, &s) != nil {
			s = string(l.MinHealthy) // a bare count
		}
		if _, err := playbook.ParseMinHealthy(s); err != nil {
			return rec, r.errf(`"min_healthy": %v`, err)
		}
		rec.MinHealthy = s
	}
	if l.MaxConcurrent != nil {
		if *l.MaxConcurrent < 0 {
			return rec, r.errf(`"max_concurrent" must not be negative`)
		}
		rec.MaxConcurrent = *l.MaxConcurrent
	}
	return rec, nil
}

// time parses and orders a line's "t".
func (r *Reader) time(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, r.errf(`missing "t"`)
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return t, r.errf(`"t": %s is not an RFC 3339 time`, q(s))
	}
	if t.Before(r.last) {
		return t, r.errf(`"t" %s is before the previous line's %s: a trace must be time-ordered`, t.Format(time.RFC3339Nano), r.last.Format(time.RFC3339))
	}
	r.last = t
	return t, nil
}

// service reads the optional fields of a nova_service line.
func (r *Reader) service(l line, rec *Record) error {
	rec.ForcedDown = l.ForcedDown != nil && *l.ForcedDown
	for _, f := range []struct {
		name string
		v    *float64
		d    *time.Duration
	}{{"heartbeat_age_s", l.HeartbeatAge, &rec.HeartbeatAge}, {"report_interval_s", l.ReportInterval, &rec.ReportInterval}} {
		if f.v == nil {
			continue
		}
		if !(*f.v >= 0) || math.IsInf(*f.v, 0) || *f.v > 1e9 {
			return r.errf(`%q of nova_service must be a number of seconds, have %g`, f.name, *f.v)
		}
		*f.d = time.Duration(*f.v * float64(time.Second))
	}
	rec.HeartbeatKnown = l.HeartbeatAge != nil
	return nil
}

func number(raw json.RawMessage) (float64, error) {
	if len(raw) == 0 {
		return 0, fmt.Errorf("missing")
	}
	v, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%s is not a finite number", q(string(raw)))
	}
	return v, nil
}

// Writer writes records in the trace format.
type Writer struct {
	w   *bufio.Writer
	buf []byte
	// Precise writes times to the nanosecond and values unrounded (a
	// recorded trace); otherwise times are to the second and values to two
	// decimals (a generated one).
	Precise bool
}

// NewWriter writes to w; call Flush at the end.
func NewWriter(w io.Writer) *Writer { return &Writer{w: bufio.NewWriterSize(w, 1<<16)} }

func (w *Writer) head(t time.Time, host string) {
	w.buf = append(w.buf[:0], `{"t":"`...)
	w.buf = w.appendTime(w.buf, t)
	w.buf = append(w.buf, `","host":"`...)
	w.buf = append(w.buf, host...)
	w.buf = append(w.buf, '"')
}

// Group writes a group line: a group and its guard (minHealthy "" and
// maxConcurrent 0 leave them unset).
func (w *Writer) Group(name, minHealthy string, maxConcurrent int) {
	w.buf = append(w.buf[:0], `{"group":"`...)
	w.buf = append(w.buf, name...)
	w.buf = append(w.buf, '"')
	if minHealthy != "" {
		w.buf = append(w.buf, `,"min_healthy":`...)
		w.buf = strconv.AppendQuote(w.buf, minHealthy)
	}
	if maxConcurrent > 0 {
		w.buf = append(w.buf, `,"max_concurrent":`...)
		w.buf = strconv.AppendInt(w.buf, int64(maxConcurrent), 10)
	}
	w.buf = append(w.buf, "}\n"...)
	w.w.Write(w.buf)
}

// Member writes a member line: host is in group (reserved: as a spare).
func (w *Writer) Member(host, group string, reserved bool) {
	w.buf = append(w.buf[:0], `{"host":"`...)
	w.buf = append(w.buf, host...)
	w.buf = append(w.buf, `","group":"`...)
	w.buf = append(w.buf, group...)
	w.buf = append(w.buf, '"')
	if reserved {
		w.buf = append(w.buf, `,"reserved":true`...)
	}
	w.buf = append(w.buf, "}\n"...)
	w.w.Write(w.buf)
}

// Signal writes a signal sample.
func (w *Writer) Signal(t time.Time, host string, n signals.Name, v float64) {
	w.head(t, host)
	w.buf = append(w.buf, `,"signal":"`...)
	w.buf = append(w.buf, n...)
	w.buf = append(w.buf, `","value":`...)
	if !w.Precise {
		v = math.Round(v*100) / 100
	}
	w.buf = strconv.AppendFloat(w.buf, v, 'f', -1, 64)
	w.buf = append(w.buf, "}\n"...)
	w.w.Write(w.buf)
}

func (w *Writer) appendTime(b []byte, t time.Time) []byte {
	if w.Precise {
		return t.UTC().AppendFormat(b, time.RFC3339Nano)
	}
	return t.UTC().AppendFormat(b, time.RFC3339)
}

// Service is a nova_service line with its optional fields.
type Service struct {
	Up             bool // what the agent last said (before any forced down)
	ForcedDown     bool
	HeartbeatAge   time.Duration // written if HeartbeatKnown
	HeartbeatKnown bool
	ReportInterval time.Duration // written if positive
}

// ServiceDetail writes a nova_service control line with its optional fields.
func (w *Writer) ServiceDetail(t time.Time, host string, s Service) {
	w.head(t, host)
	v := "down"
	if s.Up {
		v = "up"
	}
	w.buf = append(w.buf, `,"control":"nova_service","value":"`+v+`"`...)
	if s.ForcedDown {
		w.buf = append(w.buf, `,"forced_down":true`...)
	}
	if s.HeartbeatKnown {
		w.buf = append(w.buf, `,"heartbeat_age_s":`...)
		w.buf = strconv.AppendFloat(w.buf, s.HeartbeatAge.Seconds(), 'f', -1, 64)
	}
	if s.ReportInterval > 0 {
		w.buf = append(w.buf, `,"report_interval_s":`...)
		w.buf = strconv.AppendFloat(w.buf, s.ReportInterval.Seconds(), 'f', -1, 64)
	}
	w.buf = append(w.buf, "}\n"...)
	w.w.Write(w.buf)
}

// Libvirt writes a libvirt control line: the probe's failures in a row,
// and whether the daemon ever answered.
func (w *Writer) Libvirt(t time.Time, host string, failures int, answered bool) {
	w.head(t, host)
	w.buf = append(w.buf, `,"control":"libvirt","value":`...)
	w.buf = strconv.AppendInt(w.buf, int64(failures), 10)
	if answered {
		w.buf = append(w.buf, `,"answered":true`...)
	}
	w.buf = append(w.buf, "}\n"...)
	w.w.Write(w.buf)
}

// BMCPower writes a bmc_power control line (one of BMCPowerStates).
func (w *Writer) BMCPower(t time.Time, host, state string) {
	w.head(t, host)
	w.buf = append(w.buf, `,"control":"bmc_power","value":`...)
	w.buf = strconv.AppendQuote(w.buf, state)
	w.buf = append(w.buf, "}\n"...)
	w.w.Write(w.buf)
}

// Tick writes a tick line: the replica evaluated its fleet at t, with the
// collectors' errors of that tick.
func (w *Writer) Tick(t time.Time, errs []string) {
	w.buf = append(w.buf[:0], `{"t":"`...)
	w.buf = w.appendTime(w.buf, t)
	w.buf = append(w.buf, `","tick":true`...)
	if len(errs) > 0 {
		b, _ := json.Marshal(errs) // strings always marshal
		w.buf = append(w.buf, `,"errors":`...)
		w.buf = append(w.buf, b...)
	}
	w.buf = append(w.buf, "}\n"...)
	w.w.Write(w.buf)
}

// Service writes a nova_service control line.
func (w *Writer) Service(t time.Time, host string, up bool) {
	w.head(t, host)
	s := "down"
	if up {
		s = "up"
	}
	w.buf = append(w.buf, `,"control":"nova_service","value":"`+s+`"}`+"\n"...)
	w.w.Write(w.buf)
}

// ServersActive writes a servers_active control line.
func (w *Writer) ServersActive(t time.Time, host string, n int) {
	w.head(t, host)
	w.buf = append(w.buf, `,"control":"servers_active","value":`...)
	w.buf = strconv.AppendInt(w.buf, int64(n), 10)
	w.buf = append(w.buf, "}\n"...)
	w.w.Write(w.buf)
}

// Fault writes a fault line.
func (w *Writer) Fault(t time.Time, host, fault string) {
	w.head(t, host)
	w.buf = append(w.buf, `,"fault":"`+fault+`"}`+"\n"...)
	w.w.Write(w.buf)
}

// Cores writes a cores line.
func (w *Writer) Cores(host string, n int) {
	fmt.Fprintf(w.w, `{"host":"%s","cores":%d}`+"\n", host, n)
}

// Flush writes buffered lines.
func (w *Writer) Flush() error { return w.w.Flush() }

var signalByName = func() map[string]signals.Name {
	m := map[string]signals.Name{}
	for _, n := range signals.All {
		m[string(n)] = n
	}
	return m
}()

var (
	fastT      = []byte(`{"t":"`)
	fastHost   = []byte(`","host":"`)
	fastSignal = []byte(`","signal":"`)
	fastValue  = []byte(`","value":`)
)

// fast parses the canonical signal line that Writer produces,
//
//	{"t":"…","host":"…","signal":"…","value":N}
//
// without reflection. Anything else (other field order, escapes, extra
// fields, errors) returns false and goes through the full parser.
func (r *Reader) fast(b []byte) (Record, bool) {
	if !bytes.HasPrefix(b, fastT) || b[len(b)-1] != '}' {
		return Record{}, false
	}
	b = b[len(fastT):]
	i := bytes.IndexByte(b, '"')
	if i < 0 {
		return Record{}, false
	}
	ts := b[:i]
	b = b[i:]
	if !bytes.HasPrefix(b, fastHost) {
		return Record{}, false
	}
	b = b[len(fastHost):]
	i = bytes.IndexByte(b, '"')
	if i <= 0 {
		return Record{}, false
	}
	hostB := b[:i]
	b = b[i:]
	if !bytes.HasPrefix(b, fastSignal) {
		return Record{}, false
	}
	b = b[len(fastSignal):]
	i = bytes.IndexByte(b, '"')
	if i < 0 {
		return Record{}, false
	}
	sig, known := signalByName[string(b[:i])]
	b = b[i:]
	if !bytes.HasPrefix(b, fastValue) || !known {
		return Record{}, false
	}
	num := b[len(fastValue) : len(b)-1]
	if len(ts) == 0 || !jsonNumber(num) || !plainString(hostB) {
		return Record{}, false
	}
	v, err := strconv.ParseFloat(string(num), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return Record{}, false
	}
	host, known := r.hosts[string(hostB)]
	if !known && hostname.Check(string(hostB)) != nil {
		return Record{}, false // the full parser names the problem
	}
	var t time.Time
	if bytes.Equal(ts, r.lastTS) {
		t = r.lastT
	} else {
		t, err = time.Parse(time.RFC3339Nano, string(ts))
		if err != nil || t.Before(r.last) {
			return Record{}, false
		}
		r.lastTS = append(r.lastTS[:0], ts...)
		r.lastT = t
	}
	r.last = t
	if !known {
		host = string(hostB)
		r.hosts[host] = host
	}
	return Record{Line: r.n, T: t, Host: host, Kind: KindSignal, Signal: sig, Value: v}, true
}

// jsonNumber reports whether b uses only the characters of a JSON number and
// starts like one (strconv alone would also take hex, "inf" and underscores).
func jsonNumber(b []byte) bool {
	if len(b) == 0 || (b[0] != '-' && (b[0] < '0' || b[0] > '9')) {
		return false
	}
	for _, c := range b {
		if !(c >= '0' && c <= '9' || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-') {
			return false
		}
	}
	return true
}

// plainString reports whether b needs no JSON unescaping.
func plainString(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c == '\\' || c == '"' {
			return false
		}
	}
	return true
}
