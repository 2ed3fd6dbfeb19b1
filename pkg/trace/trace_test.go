package trace

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/fencedhq/fenced/pkg/signals"
)

func readAll(t *testing.T, s string) ([]Record, error) {
	t.Helper()
	r := NewReader(strings.NewReader(s), "t.jsonl")
	var out []Record
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, rec)
	}
}

func TestReadsEveryKind(t *testing.T) {
	recs, err := readAll(t, `{"host":"cmp-017","cores":48}
{"t":"2026-01-15T01:14:00Z","host":"cmp-017","signal":"cpu_steal_pct","value":31.5}

{"t":"2026-01-15T01:14:00Z","host":"cmp-017","control":"nova_service","value":"up","note":"unknown fields are ignored"}
{"t":"2026-01-15T01:14:00Z","host":"cmp-017","control":"servers_active","value":14}
{"t":"2026-01-15T01:20:00Z","host":"cmp-017","fault":"libvirt_unresponsive"}
{"value":2.5,"signal":"runqueue_per_core","host":"cmp-017","t":"2026-01-15T01:20:00Z"}
`)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 6 {
		t.Fatalf("%d records", len(recs))
	}
	want := []Record{
		{Line: 1, Host: "cmp-017", Kind: KindCores, Value: 48},
		{Line: 2, Host: "cmp-017", Kind: KindSignal, Signal: signals.CPUSteal, Value: 31.5},
		{Line: 4, Host: "cmp-017", Kind: KindControl, Control: ControlNovaService, Up: true},
		{Line: 5, Host: "cmp-017", Kind: KindControl, Control: ControlServersActive, Value: 14},
		{Line: 6, Host: "cmp-017", Kind: KindFault, Fault: FaultLibvirtUnresponsive},
		{Line: 7, Host: "cmp-017", Kind: KindSignal, Signal: signals.RunqueuePerCore, Value: 2.5},
	}
	for i, w := range want {
		g := recs[i]
		g.T = time.Time{}
		if g != w {
			t.Errorf("record %d: %+v, want %+v", i, g, w)
		}
	}
}

func TestBadLinesNameTheLine(t *testing.T) {
	ok := `{"t":"2026-01-15T01:14:00Z","host":"h","signal":"cpu_steal_pct","value":1}` + "\n"
	for name, c := range map[string]struct{ line, want string }{
		"not json":       {`{"t":`, "not a JSON object"},
		"no host":        {`{"t":"2026-01-15T01:14:00Z","signal":"cpu_steal_pct","value":1}`, `missing "host"`},
		"no t":           {`{"host":"h","signal":"cpu_steal_pct","value":1}`, `missing "t"`},
		"bad t":          {`{"t":"yesterday","host":"h","signal":"cpu_steal_pct","value":1}`, `"t"`},
		"unknown signal": {`{"t":"2026-01-15T01:14:00Z","host":"h","signal":"cpu_stolen","value":1}`, `unknown signal "cpu_stolen"`},
		"string value":   {`{"t":"2026-01-15T01:14:00Z","host":"h","signal":"cpu_steal_pct","value":"1"}`, "not a finite number"},
		"no value":       {`{"t":"2026-01-15T01:14:00Z","host":"h","signal":"cpu_steal_pct"}`, "missing"},
		"two kinds":      {`{"t":"2026-01-15T01:14:00Z","host":"h","signal":"cpu_steal_pct","fault":"cleared","value":1}`, "exactly one"},
		"bad service":    {`{"t":"2026-01-15T01:14:00Z","host":"h","control":"nova_service","value":"maybe"}`, `"up" or "down"`},
		"bad count":      {`{"t":"2026-01-15T01:14:00Z","host":"h","control":"servers_active","value":1.5}`, "count"},
		"bad control":    {`{"t":"2026-01-15T01:14:00Z","host":"h","control":"neutron","value":1}`, "unknown control"},
		"bad fault":      {`{"t":"2026-01-15T01:14:00Z","host":"h","fault":"gremlins"}`, "unknown fault"},
		"bad cores":      {`{"host":"h","cores":0}`, "cores"},
		"backwards":      {`{"t":"2026-01-15T01:13:00Z","host":"h","signal":"cpu_steal_pct","value":1}`, "time-ordered"},
		"negative value": {`{"t":"2026-01-15T01:14:00Z","host":"h","signal":"cpu_steal_pct","value":-3.5}`, `"value" of cpu_steal_pct: -3.5 is negative`},
		"negative exp":   {`{"t":"2026-01-15T01:14:00Z","host":"h","signal":"heartbeat_lag_s","value":-1e3}`, "is negative"},
		"negative slow":  {`{"value":-1,"signal":"runqueue_per_core","host":"h","t":"2026-01-15T01:14:00Z"}`, "is negative"},
		"newline host":   {`{"t":"2026-01-15T01:14:00Z","host":"cmp\n017","signal":"cpu_steal_pct","value":1}`, `"host": "cmp\n017" is not a host name`},
		"escape host":    {`{"t":"2026-01-15T01:14:00Z","host":"cmp\u001b[2J","signal":"cpu_steal_pct","value":1}`, `"cmp\x1b[2J" is not a host name`},
		"bidi host":      {"{\"t\":\"2026-01-15T01:14:00Z\",\"host\":\"cmp\u202e710\",\"signal\":\"cpu_steal_pct\",\"value\":1}", `"cmp\u202e710" is not a host name`},
		"space host":     {`{"t":"2026-01-15T01:14:00Z","host":"cmp 017","control":"nova_service","value":"up"}`, "not a host name"},
		"host of cores":  {`{"host":"a/b","cores":4}`, "not a host name"},
		"group name":     {`{"group":"a b"}`, `"group": a group name`},
		"default group":  {`{"group":"default"}`, "implicit group"},
		"reserved dflt":  {`{"host":"h","group":"default","reserved":true}`, "implicit group"},
		"timed member":   {`{"t":"2026-01-15T01:14:00Z","host":"h","group":"g"}`, `no "t"`},
		"member guard":   {`{"host":"h","group":"g","max_concurrent":1}`, "carries no guard"},
		"bad min":        {`{"group":"g","min_healthy":"140%"}`, `"min_healthy"`},
		"negative max":   {`{"group":"g","max_concurrent":-1}`, "must not be negative"},
		"reserved alone": {`{"group":"g","reserved":true}`, `give "host" too`},
		"guard no group": {`{"min_healthy":"50%"}`, `belong on a line with "group"`},
	} {
		_, err := readAll(t, ok+c.line+"\n")
		if err == nil || !strings.Contains(err.Error(), "t.jsonl:2:") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want t.jsonl:2 and %q", name, err, c.want)
		}
	}
}

// TestLongValuesMakeShortErrors: a line of a megabyte quotes at most about
// 200 bytes of its bad value.
// TestGroupLines: group and member lines, with and without a guard; a
// bare count for min_healthy; reserved hosts; written as read.
func TestGroupLines(t *testing.T) {
	var buf strings.Builder
	w := NewWriter(&buf)
	w.Group("agg-a", "60%", 2)
	w.Member("cmp-1", "agg-a", false)
	w.Member("cmp-9", "agg-a", true)
	w.Flush()
	recs, err := readAll(t, buf.String()+`{"group":"b","min_healthy":3}`+"\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 4 {
		t.Fatalf("%d records", len(recs))
	}
	g, m, r, b := recs[0], recs[1], recs[2], recs[3]
	if g.Kind != KindGroup || g.Group != "agg-a" || g.MinHealthy != "60%" || g.MaxConcurrent != 2 || g.Host != "" {
		t.Errorf("group line: %+v", g)
	}
	if m.Kind != KindMember || m.Host != "cmp-1" || m.Group != "agg-a" || m.Reserved {
		t.Errorf("member line: %+v", m)
	}
	if r.Kind != KindMember || r.Host != "cmp-9" || !r.Reserved {
		t.Errorf("reserved line: %+v", r)
	}
	if b.Kind != KindGroup || b.MinHealthy != "3" {
		t.Errorf("bare count: %+v", b)
	}
}

func TestLongValuesMakeShortErrors(t *testing.T) {
	long := strings.Repeat("x", 900<<10)
	for _, line := range []string{
		`{"t":"2026-01-15T01:14:00Z","host":"h","signal":"` + long + `","value":1}`,
		`{"t":"2026-01-15T01:14:00Z","host":"` + long + `","signal":"cpu_steal_pct","value":1}`,
		`{"t":"2026-01-15T01:14:00Z","host":"h","fault":"` + long + `"}`,
		`{"t":"` + long + `","host":"h","fault":"cleared"}`,
		`{"t":"2026-01-15T01:14:00Z","host":"h","signal":"cpu_steal_pct","value":1` + strings.Repeat("0", 900<<10) + `e999999}`,
	} {
		_, err := readAll(t, line+"\n")
		if err == nil || len(err.Error()) > 500 {
			t.Errorf("an error of %d bytes: %.300v", len(fmt.Sprint(err)), err)
		}
	}
}

// The fast path and the full parser must agree on every line the writer makes.
func TestFastPathMatchesFullParser(t *testing.T) {
	var buf bytes.Buffer
	if err := Generate(&buf, Scenario{Kind: "incident", Step: 10 * time.Second, Seed: 7}); err != nil {
		t.Fatal(err)
	}
	fast := NewReader(bytes.NewReader(buf.Bytes()), "x")
	slow := NewReader(bytes.NewReader(buf.Bytes()), "x")
	n := 0
	for slow.sc.Scan() {
		slow.n++
		want, err := slow.parse(slow.sc.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		got, err := fast.Next()
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("line %d: fast %+v, full %+v", slow.n, got, want)
		}
		if got.Kind == KindSignal {
			n++
		}
	}
	if n == 0 {
		t.Fatal("no signal lines compared")
	}
}

func FuzzReader(f *testing.F) {
	f.Add(`{"t":"2026-01-15T01:14:00Z","host":"h","signal":"cpu_steal_pct","value":1}`)
	f.Add(`{"t":"2026-01-15T01:14:00Z","host":"h","control":"nova_service","value":"up"}`)
	f.Add(`{"host":"h","cores":4}`)
	f.Add(`{"t":"2026-01-15T01:14:00.5Z","tick":true,"errors":["nova: down"]}`)
	f.Add(`{"t":"2026-01-15T01:14:00Z","host":"h","control":"nova_service","value":"up","forced_down":true,"heartbeat_age_s":41.2,"report_interval_s":10}`)
	f.Add(`{"t":"2026-01-15T01:14:00Z","host":"h","control":"libvirt","value":3,"answered":true}`)
	f.Add(`{"t":"2026-01-15T01:14:00Z","host":"h","control":"bmc_power","value":"On"}`)
	f.Fuzz(func(t *testing.T, line string) {
		a := NewReader(strings.NewReader(line+"\n"), "f")
		ra, erra := a.Next()
		b := NewReader(strings.NewReader(line+"\n"), "f")
		b.sc.Scan()
		b.n++
		rb, errb := b.parse(bytes.TrimSpace(b.sc.Bytes()))
		if len(bytes.TrimSpace([]byte(line))) == 0 || strings.ContainsAny(line, "\n\r") {
			return
		}
		if (erra == nil) != (errb == nil) || (erra == nil && ra != rb) {
			t.Fatalf("fast and full parsers disagree on %q: %+v %v / %+v %v", line, ra, erra, rb, errb)
		}
	})
}
