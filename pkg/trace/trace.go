// Package trace reads and writes fenced's trace format: JSON Lines, one
// observation a line, time-ordered, unknown fields ignored:
//
//	{"t":"2026-01-15T01:14:00Z","host":"cmp-017","signal":"cpu_steal_pct","value":31.5}
//	{"t":"2026-01-15T01:14:00Z","host":"cmp-017","control":"nova_service","value":"up"}
//	{"t":"2026-01-15T01:20:00Z","host":"cmp-017","fault":"libvirt_unresponsive"}
//	{"host":"cmp-017","cores":48}
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
	"strconv"
	"strings"
	"time"

	"github.com/fencedhq/fenced/internal/escape"
	"github.com/fencedhq/fenced/internal/hostname"
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
)

// Controls and faults named by the format.
const (
	ControlNovaService   = "nova_service"
	ControlServersActive = "servers_active"

	FaultLibvirtUnresponsive = "libvirt_unresponsive"
	FaultMigrationFails      = "migration_fails"
	FaultBMCUnreachable      = "bmc_unreachable"
	FaultRebootNeverReturns  = "reboot_never_returns"
	FaultCleared             = "cleared"
)

// Faults lists the fault names.
var Faults = []string{FaultLibvirtUnresponsive, FaultMigrationFails, FaultBMCUnreachable, FaultRebootNeverReturns, FaultCleared}

// Record is one line of a trace.
type Record struct {
	Line    int
	T       time.Time
	Host    string
	Kind    Kind
	Signal  signals.Name
	Value   float64 // signal value, servers_active count, cores
	Control string
	Up      bool // nova_service
	Fault   string
}

type line struct {
	T       string          `json:"t"`
	Host    string          `json:"host"`
	Signal  string          `json:"signal"`
	Control string          `json:"control"`
	Fault   string          `json:"fault"`
	Value   json.RawMessage `json:"value"`
	Cores   *int            `json:"cores"`
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
	if l.T == "" {
		return rec, r.errf(`missing "t"`)
	}
	t, err := time.Parse(time.RFC3339Nano, l.T)
	if err != nil {
		return rec, r.errf(`"t": %s is not an RFC 3339 time`, q(l.T))
	}
	if t.Before(r.last) {
		return rec, r.errf(`"t" %s is before the previous line's %s: a trace must be time-ordered`, t.Format(time.RFC3339Nano), r.last.Format(time.RFC3339))
	}
	r.last, rec.T = t, t
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
		case ControlServersActive:
			v, err := number(l.Value)
			if err != nil || v < 0 || v != math.Trunc(v) {
				return rec, r.errf(`"value" of servers_active must be a count`)
			}
			rec.Value = v
		default:
			return rec, r.errf("unknown control %s (want nova_service or servers_active)", q(l.Control))
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
}

// NewWriter writes to w; call Flush at the end.
func NewWriter(w io.Writer) *Writer { return &Writer{w: bufio.NewWriterSize(w, 1<<16)} }

func (w *Writer) head(t time.Time, host string) {
	w.buf = append(w.buf[:0], `{"t":"`...)
	w.buf = t.UTC().AppendFormat(w.buf, time.RFC3339)
	w.buf = append(w.buf, `","host":"`...)
	w.buf = append(w.buf, host...)
	w.buf = append(w.buf, '"')
}

// Signal writes a signal sample.
func (w *Writer) Signal(t time.Time, host string, n signals.Name, v float64) {
	w.head(t, host)
	w.buf = append(w.buf, `,"signal":"`...)
	w.buf = append(w.buf, n...)
	w.buf = append(w.buf, `","value":`...)
	w.buf = strconv.AppendFloat(w.buf, math.Round(v*100)/100, 'f', -1, 64)
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
