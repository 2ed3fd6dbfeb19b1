package trace

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/fencedhq/fenced/pkg/signals"
)

// TestRecordedLinesRoundTrip: what a recording replica writes reads back
// exactly: nanosecond times, unrounded values, the optional fields of
// nova_service, libvirt, bmc_power and tick lines.
func TestRecordedLinesRoundTrip(t *testing.T) {
	t0 := time.Date(2026, 1, 15, 1, 14, 0, 123456789, time.UTC)
	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.Precise = true
	w.Signal(t0, "cmp-017", signals.CPUSteal, 29.996)
	w.ServiceDetail(t0, "cmp-017", Service{Up: true, ForcedDown: true, HeartbeatAge: 41200 * time.Millisecond, HeartbeatKnown: true, ReportInterval: 10 * time.Second})
	w.ServiceDetail(t0, "cmp-018", Service{Up: false})
	w.Libvirt(t0, "cmp-017", 3, true)
	w.BMCPower(t0, "cmp-017", "PoweringOff")
	w.Tick(t0, []string{`nova: no answer "within" 5s`, "prometheus: 503"})
	w.Tick(t0.Add(time.Second), nil)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	recs, err := readAll(t, buf.String())
	if err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	want := []Record{
		{Line: 1, T: t0, Host: "cmp-017", Kind: KindSignal, Signal: signals.CPUSteal, Value: 29.996},
		{Line: 2, T: t0, Host: "cmp-017", Kind: KindControl, Control: ControlNovaService, Up: true, ForcedDown: true,
			HeartbeatAge: 41200 * time.Millisecond, HeartbeatKnown: true, ReportInterval: 10 * time.Second},
		{Line: 3, T: t0, Host: "cmp-018", Kind: KindControl, Control: ControlNovaService},
		{Line: 4, T: t0, Host: "cmp-017", Kind: KindControl, Control: ControlLibvirt, Value: 3, Answered: true},
		{Line: 5, T: t0, Host: "cmp-017", Kind: KindControl, Control: ControlBMCPower, Power: "PoweringOff"},
		{Line: 6, T: t0, Kind: KindTick, Errors: `nova: no answer "within" 5s; prometheus: 503`},
		{Line: 7, T: t0.Add(time.Second), Kind: KindTick},
	}
	if len(recs) != len(want) {
		t.Fatalf("%d records, want %d:\n%s", len(recs), len(want), buf.String())
	}
	for i := range want {
		if !recs[i].T.Equal(want[i].T) {
			t.Errorf("record %d at %s, want %s", i, recs[i].T, want[i].T)
		}
		recs[i].T = want[i].T
		if recs[i] != want[i] {
			t.Errorf("record %d:\n got %+v\nwant %+v", i, recs[i], want[i])
		}
	}
}

func TestBadRecordedLines(t *testing.T) {
	ok := `{"t":"2026-01-15T01:14:00Z","host":"h","signal":"cpu_steal_pct","value":1}` + "\n"
	for name, c := range map[string]struct{ line, want string }{
		"tick false":     {`{"t":"2026-01-15T01:14:00Z","tick":false}`, `"tick" must be true`},
		"tick with host": {`{"t":"2026-01-15T01:14:00Z","tick":true,"host":"h"}`, "carries no"},
		"tick no t":      {`{"tick":true}`, `missing "t"`},
		"tick backwards": {`{"t":"2026-01-15T01:13:00Z","tick":true}`, "time-ordered"},
		"libvirt count":  {`{"t":"2026-01-15T01:14:00Z","host":"h","control":"libvirt","value":-1}`, "count of failed probes"},
		"bmc power":      {`{"t":"2026-01-15T01:14:00Z","host":"h","control":"bmc_power","value":"Smoking"}`, "must be one of On"},
		"heartbeat":      {`{"t":"2026-01-15T01:14:00Z","host":"h","control":"nova_service","value":"up","heartbeat_age_s":-1}`, "heartbeat_age_s"},
	} {
		_, err := readAll(t, ok+c.line+"\n")
		if err == nil || !strings.Contains(err.Error(), "t.jsonl:2:") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want t.jsonl:2 and %q", name, err, c.want)
		}
	}
}

// A generated trace is written as before: to the second, values to two
// decimals (the fast path and the files in testdata depend on it).
func TestWriterDefaultUnchanged(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.Signal(time.Date(2026, 1, 15, 1, 14, 0, 987654321, time.UTC), "h", signals.CPUSteal, 29.996)
	w.Flush()
	if got := buf.String(); got != `{"t":"2026-01-15T01:14:00Z","host":"h","signal":"cpu_steal_pct","value":30}`+"\n" {
		t.Fatalf("%s", got)
	}
}
