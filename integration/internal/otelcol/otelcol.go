// Package otelcol runs a real OpenTelemetry Collector for integration tests:
// the distribution in integration/otelcol (the OTLP receiver over gRPC and
// HTTP, the file exporter), built once per test binary and cached across
// packages, on free loopback ports. What it receives is written as OTLP JSON
// lines, which Spans reads back.
package otelcol

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fencedhq/fenced/integration/internal/harness"
)

// buildTimeout bounds a cold build of the collector (all of its modules
// compiled on a two-core machine, while other tests may be running).
const buildTimeout = 15 * time.Minute

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Collector is a started collector process.
type Collector struct {
	grpcAddr  string
	httpAddr  string
	spansPath string
	logPath   string
	cmd       *exec.Cmd
	exited    chan struct{}
}

// Span is one span as the collector received it, from the file exporter's
// OTLP JSON. IDs are lower-case hex; ParentSpanID is "" for a root span.
type Span struct {
	TraceID            string
	SpanID             string
	ParentSpanID       string
	Name               string
	Kind               string // OTLP enum name: "SPAN_KIND_INTERNAL", "SPAN_KIND_SERVER", ...
	StatusCode         string // OTLP enum name: "STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"
	StatusMessage      string
	StartTime          time.Time
	EndTime            time.Time
	Attributes         map[string]any // string, int64, float64, bool, []any, map[string]any, []byte
	Events             []Event
	ResourceAttributes map[string]any
	ScopeName          string
}

// Event is a span event (a recorded error is an "exception" event).
type Event struct {
	Name       string
	Time       time.Time
	Attributes map[string]any
}

// String is a one-line summary for failure messages.
func (s Span) String() string {
	return fmt.Sprintf("%s trace=%s span=%s parent=%s %s %s %v", s.Name, s.TraceID, s.SpanID, s.ParentSpanID, s.Kind, s.StatusCode, s.Attributes)
}

// Binary builds the collector once per test binary and returns its path. The
// binary is kept under the user's cache directory, keyed by the collector
// module's sources, so the next package's test binary does not build it again.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() { binPath, buildErr = build() })
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// moduleDir is integration/otelcol, the collector's own Go module.
func moduleDir() string { return filepath.Join(harness.Root(), "integration", "otelcol") }

func build() (string, error) {
	dir := moduleDir()
	key, err := sourceKey(dir)
	if err != nil {
		return "", fmt.Errorf("otelcol: hash the collector module: %w", err)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	cacheDir := filepath.Join(cache, "fenced-test", "otelcol-"+key[:16])
	bin := filepath.Join(cacheDir, "fenced-otelcol")
	if fi, err := os.Stat(bin); err == nil && fi.Mode().IsRegular() {
		return bin, nil
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", fmt.Errorf("otelcol: %w", err)
	}
	// Build beside the final name and rename, so that a test binary building
	// at the same time never runs a half-written file.
	tmp, err := os.CreateTemp(cacheDir, "fenced-otelcol-*.tmp")
	if err != nil {
		return "", fmt.Errorf("otelcol: %w", err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name())

	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", tmp.Name(), ".")
	cmd.Dir = dir
	// The collector is a module of its own, built with its own go.mod.
	cmd.Env = append(os.Environ(), "GOWORK=off")
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w after %s", ctx.Err(), buildTimeout)
		}
		return "", fmt.Errorf("otelcol: go build in %s: %w\n%s", dir, err, out)
	}
	if err := os.Rename(tmp.Name(), bin); err != nil {
		return "", fmt.Errorf("otelcol: %w", err)
	}
	fmt.Fprintf(os.Stderr, "otelcol: built the collector in %s (%s)\n", time.Since(start).Round(time.Second), bin)
	pruneCache(filepath.Dir(cacheDir), cacheDir)
	return bin, nil
}

// sourceKey hashes what the binary is built from: the module's go.mod, go.sum
// and Go files, and the Go toolchain and platform.
func sourceKey(dir string) (string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != dir && (strings.HasPrefix(name, ".") || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if name == "go.mod" || name == "go.sum" || strings.HasSuffix(name, ".go") {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	slices.Sort(files)
	h := sha256.New()
	fmt.Fprintf(h, "%s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		rel, _ := filepath.Rel(dir, f)
		fmt.Fprintf(h, "%s %d\n", rel, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// pruneCache removes the binaries of other sources (about 40 MB each) built
// more than a week ago: not one that another checkout may be running now.
func pruneCache(parent, keep string) {
	old, _ := filepath.Glob(filepath.Join(parent, "otelcol-*"))
	for _, d := range old {
		if fi, err := os.Stat(d); err == nil && d != keep && time.Since(fi.ModTime()) > 7*24*time.Hour {
			_ = os.RemoveAll(d)
		}
	}
}

// Start builds the collector if needed, starts it on free loopback ports with
// a traces pipeline from the OTLP receiver to the file exporter, waits until
// both receiver ports accept connections, and stops it when the test ends.
func Start(t testing.TB) *Collector {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir()
	c := &Collector{
		spansPath: filepath.Join(dir, "spans.jsonl"),
		logPath:   filepath.Join(dir, "collector.log"),
		exited:    make(chan struct{}),
	}
	var ports [2]int
	for i := range ports {
		p, err := harness.PickPort()
		if err != nil {
			t.Fatalf("otelcol: pick a port: %v", err)
		}
		ports[i] = p
	}
	c.grpcAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
	c.httpAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1]))
	cfgPath := filepath.Join(dir, "collector.yaml")
	if err := os.WriteFile(cfgPath, []byte(c.config()), 0o644); err != nil {
		t.Fatalf("otelcol: %v", err)
	}
	logf, err := os.Create(c.logPath)
	if err != nil {
		t.Fatalf("otelcol: %v", err)
	}
	c.cmd = exec.Command(bin, "--config", cfgPath)
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("otelcol: start %s: %v", bin, err)
	}
	go func() {
		_ = c.cmd.Wait()
		logf.Close()
		close(c.exited)
	}()
	t.Cleanup(func() {
		c.stop()
		if t.Failed() {
			t.Logf("collector log (%s):\n%s", c.logPath, c.log())
		}
	})
	if err := c.waitReady(30 * time.Second); err != nil {
		t.Fatalf("otelcol: %v", err)
	}
	return c
}

// config is the collector's configuration. The file exporter rotates (at a
// size no test reaches) because in that mode it writes each batch straight
// to the file rather than through a buffer flushed on a timer.
func (c *Collector) config() string {
	return fmt.Sprintf(`receivers:
  otlp:
    protocols:
      grpc:
        endpoint: %q
      http:
        endpoint: %q
exporters:
  file:
    path: %q
    format: json
    rotation:
      max_megabytes: 1024
service:
  telemetry:
    logs:
      level: info
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [file]
`, c.grpcAddr, c.httpAddr, c.spansPath)
}

func (c *Collector) waitReady(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		var err error
		for _, addr := range []string{c.grpcAddr, c.httpAddr} {
			var conn net.Conn
			d := net.Dialer{Timeout: time.Second}
			if conn, err = d.DialContext(ctx, "tcp", addr); err != nil {
				break
			}
			conn.Close()
		}
		if err == nil {
			return nil
		}
		select {
		case <-c.exited:
			return fmt.Errorf("collector exited before it listened (%v):\n%s", c.cmd.ProcessState, c.log())
		case <-ctx.Done():
			return fmt.Errorf("collector not listening on %s and %s within %s: %w\n%s", c.grpcAddr, c.httpAddr, timeout, err, c.log())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stop sends SIGTERM to the process group, then SIGKILL after 10 s, and waits.
func (c *Collector) stop() {
	select {
	case <-c.exited:
		return
	default:
	}
	_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		<-c.exited
	}
}

func (c *Collector) log() string {
	b, err := os.ReadFile(c.logPath)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// GRPCEndpoint is the OTLP/gRPC receiver's host:port.
func (c *Collector) GRPCEndpoint() string { return c.grpcAddr }

// HTTPEndpoint is the OTLP/HTTP receiver's host:port (traces are POSTed to
// /v1/traces under it).
func (c *Collector) HTTPEndpoint() string { return c.httpAddr }

// Spans returns every span the collector has written so far, in the order
// it wrote them.
func (c *Collector) Spans(t testing.TB) []Span {
	t.Helper()
	spans, err := c.readSpans()
	if err != nil {
		t.Fatalf("otelcol: %v", err)
	}
	return spans
}

// WaitForSpans polls the collector's output until pred holds for the spans
// written so far, and returns them; it fails the test after timeout.
func (c *Collector) WaitForSpans(t testing.TB, timeout time.Duration, pred func([]Span) bool) []Span {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		spans, err := c.readSpans()
		if err != nil {
			t.Fatalf("otelcol: %v", err)
		}
		if pred(spans) {
			return spans
		}
		select {
		case <-c.exited:
			t.Fatalf("otelcol: collector exited (%v) while waiting for spans; %d received:\n%s", c.cmd.ProcessState, len(spans), summary(spans))
		case <-ctx.Done():
			t.Fatalf("otelcol: spans not as expected within %s; %d received:\n%s", timeout, len(spans), summary(spans))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func summary(spans []Span) string {
	var b strings.Builder
	for _, s := range spans {
		b.WriteString("  " + s.String() + "\n")
	}
	return b.String()
}

// readSpans parses the file exporter's output: one OTLP JSON
// ExportTraceServiceRequest a line. A last line without its newline is being
// written and is left for the next read.
func (c *Collector) readSpans() ([]Span, error) {
	data, err := os.ReadFile(c.spansPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if i := bytes.LastIndexByte(data, '\n'); i >= 0 {
		data = data[:i+1]
	} else {
		data = nil
	}
	var spans []Span
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), len(data)+1)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		got, err := parseLine(line)
		if err != nil {
			return nil, fmt.Errorf("%s line %d: %w", c.spansPath, n, err)
		}
		spans = append(spans, got...)
	}
	return spans, sc.Err()
}

// The OTLP JSON encoding (protobuf JSON with lowerCamelCase names; IDs in hex).
type jsonTraces struct {
	ResourceSpans []struct {
		Resource struct {
			Attributes []jsonKeyValue `json:"attributes"`
		} `json:"resource"`
		ScopeSpans []struct {
			Scope struct {
				Name string `json:"name"`
			} `json:"scope"`
			Spans []jsonSpan `json:"spans"`
		} `json:"scopeSpans"`
	} `json:"resourceSpans"`
}

type jsonSpan struct {
	TraceID      string          `json:"traceId"`
	SpanID       string          `json:"spanId"`
	ParentSpanID string          `json:"parentSpanId"`
	Name         string          `json:"name"`
	Kind         json.RawMessage `json:"kind"`
	Start        json.RawMessage `json:"startTimeUnixNano"`
	End          json.RawMessage `json:"endTimeUnixNano"`
	Attributes   []jsonKeyValue  `json:"attributes"`
	Events       []struct {
		Time       json.RawMessage `json:"timeUnixNano"`
		Name       string          `json:"name"`
		Attributes []jsonKeyValue  `json:"attributes"`
	} `json:"events"`
	Status struct {
		Message string          `json:"message"`
		Code    json.RawMessage `json:"code"`
	} `json:"status"`
}

type jsonKeyValue struct {
	Key   string    `json:"key"`
	Value jsonValue `json:"value"`
}

type jsonValue struct {
	StringValue *string         `json:"stringValue"`
	BoolValue   *bool           `json:"boolValue"`
	IntValue    json.RawMessage `json:"intValue"`
	DoubleValue json.RawMessage `json:"doubleValue"`
	BytesValue  []byte          `json:"bytesValue"`
	ArrayValue  *struct {
		Values []jsonValue `json:"values"`
	} `json:"arrayValue"`
	KvlistValue *struct {
		Values []jsonKeyValue `json:"values"`
	} `json:"kvlistValue"`
}

var (
	spanKinds   = []string{"SPAN_KIND_UNSPECIFIED", "SPAN_KIND_INTERNAL", "SPAN_KIND_SERVER", "SPAN_KIND_CLIENT", "SPAN_KIND_PRODUCER", "SPAN_KIND_CONSUMER"}
	statusCodes = []string{"STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"}
)

func parseLine(line []byte) ([]Span, error) {
	var tr jsonTraces
	if err := json.Unmarshal(line, &tr); err != nil {
		return nil, fmt.Errorf("parse OTLP JSON: %w", err)
	}
	var out []Span
	for _, rs := range tr.ResourceSpans {
		res, err := attributes(rs.Resource.Attributes)
		if err != nil {
			return nil, fmt.Errorf("resource: %w", err)
		}
		for _, ss := range rs.ScopeSpans {
			for _, js := range ss.Spans {
				s, err := convertSpan(js)
				if err != nil {
					return nil, fmt.Errorf("span %q: %w", js.Name, err)
				}
				s.ResourceAttributes, s.ScopeName = res, ss.Scope.Name
				out = append(out, s)
			}
		}
	}
	return out, nil
}

func convertSpan(js jsonSpan) (Span, error) {
	s := Span{
		TraceID:       strings.ToLower(js.TraceID),
		SpanID:        strings.ToLower(js.SpanID),
		ParentSpanID:  strings.ToLower(js.ParentSpanID),
		Name:          js.Name,
		StatusMessage: js.Status.Message,
	}
	var err error
	if s.Kind, err = enum(js.Kind, spanKinds, "SPAN_KIND_UNSPECIFIED"); err != nil {
		return Span{}, fmt.Errorf("kind: %w", err)
	}
	if s.StatusCode, err = enum(js.Status.Code, statusCodes, "STATUS_CODE_UNSET"); err != nil {
		return Span{}, fmt.Errorf("status code: %w", err)
	}
	if s.StartTime, err = unixNano(js.Start); err != nil {
		return Span{}, fmt.Errorf("start time: %w", err)
	}
	if s.EndTime, err = unixNano(js.End); err != nil {
		return Span{}, fmt.Errorf("end time: %w", err)
	}
	if s.Attributes, err = attributes(js.Attributes); err != nil {
		return Span{}, err
	}
	for _, je := range js.Events {
		e := Event{Name: je.Name}
		if e.Time, err = unixNano(je.Time); err != nil {
			return Span{}, fmt.Errorf("event %q time: %w", je.Name, err)
		}
		if e.Attributes, err = attributes(je.Attributes); err != nil {
			return Span{}, fmt.Errorf("event %q: %w", je.Name, err)
		}
		s.Events = append(s.Events, e)
	}
	return s, nil
}

// enum reads a protobuf JSON enum, which may be written as its number or its
// name; absent is the zero value.
func enum(raw json.RawMessage, names []string, zero string) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return zero, nil
	}
	var name string
	if json.Unmarshal(raw, &name) == nil {
		return name, nil
	}
	var n int
	if err := json.Unmarshal(raw, &n); err != nil {
		return "", fmt.Errorf("%s is neither a name nor a number", raw)
	}
	if n < 0 || n >= len(names) {
		return strconv.Itoa(n), nil
	}
	return names[n], nil
}

// unixNano reads a fixed64 timestamp, a string in protobuf JSON (or a number).
func unixNano(raw json.RawMessage) (time.Time, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return time.Time{}, nil
	}
	n, err := int64Value(raw)
	if err != nil {
		return time.Time{}, err
	}
	return time.Unix(0, n).UTC(), nil
}

func int64Value(raw json.RawMessage) (int64, error) {
	s := strings.Trim(string(raw), `"`)
	if u, err := strconv.ParseUint(s, 10, 64); err == nil {
		return int64(u), nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s is not an integer", raw)
	}
	return n, nil
}

func attributes(kvs []jsonKeyValue) (map[string]any, error) {
	m := make(map[string]any, len(kvs))
	for _, kv := range kvs {
		v, err := kv.Value.flatten()
		if err != nil {
			return nil, fmt.Errorf("attribute %q: %w", kv.Key, err)
		}
		m[kv.Key] = v
	}
	return m, nil
}

// flatten turns an OTLP AnyValue into a Go value: string, int64, float64,
// bool, []byte, []any or map[string]any; an empty value is nil.
func (v jsonValue) flatten() (any, error) {
	switch {
	case v.StringValue != nil:
		return *v.StringValue, nil
	case v.BoolValue != nil:
		return *v.BoolValue, nil
	case len(v.IntValue) > 0:
		return int64Value(v.IntValue)
	case len(v.DoubleValue) > 0:
		var f float64
		if err := json.Unmarshal(v.DoubleValue, &f); err != nil {
			// "NaN", "Infinity" and "-Infinity" are strings in protobuf JSON.
			var s string
			if json.Unmarshal(v.DoubleValue, &s) != nil {
				return nil, fmt.Errorf("doubleValue %s: %w", v.DoubleValue, err)
			}
			if f, err = strconv.ParseFloat(s, 64); err != nil {
				return nil, fmt.Errorf("doubleValue %s: %w", v.DoubleValue, err)
			}
		}
		return f, nil
	case v.BytesValue != nil:
		return v.BytesValue, nil
	case v.ArrayValue != nil:
		out := make([]any, 0, len(v.ArrayValue.Values))
		for _, e := range v.ArrayValue.Values {
			x, err := e.flatten()
			if err != nil {
				return nil, err
			}
			out = append(out, x)
		}
		return out, nil
	case v.KvlistValue != nil:
		return attributes(v.KvlistValue.Values)
	}
	return nil, nil
}
