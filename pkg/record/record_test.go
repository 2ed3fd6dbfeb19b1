package record

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/fencedhq/fenced/pkg/groups"
	"github.com/fencedhq/fenced/pkg/playbook"
	"github.com/fencedhq/fenced/pkg/signals"
	"github.com/fencedhq/fenced/pkg/trace"
)

var t0 = time.Date(2026, 1, 15, 1, 14, 0, 250_000_000, time.UTC)

func obs(i int, hosts ...string) Observation {
	at := t0.Add(time.Duration(i) * 10 * time.Second)
	o := Observation{At: at, Control: map[string]signals.Control{}}
	for _, h := range hosts {
		for _, n := range signals.All {
			o.Samples = append(o.Samples, signals.Sample{Host: h, Signal: n, Value: float64(i) + 0.125, At: at})
		}
		o.Control[h] = signals.Control{ServiceUp: true, ServersActive: 8}
	}
	return o
}

func readTrace(t *testing.T, r io.Reader, name string) []trace.Record {
	t.Helper()
	tr := trace.NewReader(r, name)
	var out []trace.Record
	for {
		rec, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, rec)
	}
}

func count(recs []trace.Record, kind trace.Kind) int {
	n := 0
	for _, r := range recs {
		if r.Kind == kind {
			n++
		}
	}
	return n
}

// TestEncoderWritesChangesOnly: samples every tick, control lines when they
// change, faults when they begin and end, one tick line a tick.
func TestEncoderWritesChangesOnly(t *testing.T) {
	var buf bytes.Buffer
	e := NewEncoder(&buf)
	o := obs(0, "a", "b")
	o.Errors = []string{"nova: no answer within 5s"}
	e.Encode(o)
	o = obs(1, "a", "b")
	o.Samples = append(o.Samples, signals.Sample{Host: "a", Signal: signals.CPUSteal, Value: -1, At: o.At}) // a trace cannot hold it
	e.Encode(o)
	o = obs(2, "a", "b")
	o.Control["a"] = signals.Control{ServiceUp: false, ForcedDown: true, ServersActive: 8,
		Libvirt: signals.Liveness{Probed: true, Answered: true, Failures: 3}, HeartbeatAge: 42 * time.Second, HeartbeatKnown: true, BMCPower: "On"}
	o.Unfenceable = map[string]string{"b": "login refused"}
	e.Encode(o)
	o = obs(3, "a", "b")
	o.Control["a"] = signals.Control{ServiceUp: true, ServersActive: 0, Libvirt: signals.Liveness{Probed: true, Answered: true}}
	o.Unfenceable = map[string]string{"b": "login refused"}
	e.Encode(o)
	e.Encode(obs(1, "a")) // older than the last: dropped
	if err := e.Flush(); err != nil {
		t.Fatal(err)
	}
	recs := readTrace(t, &buf, "enc")
	if n := count(recs, trace.KindSignal); n != 4*2*9 {
		t.Errorf("%d samples, want 72", n)
	}
	if e.Skipped != 1 {
		t.Errorf("skipped %d, want 1", e.Skipped)
	}
	if n := count(recs, trace.KindTick); n != 4 {
		t.Errorf("%d ticks, want 4", n)
	}
	var lines []string
	for _, r := range recs {
		switch r.Kind {
		case trace.KindControl, trace.KindFault:
			i := int(r.T.Sub(t0) / (10 * time.Second))
			lines = append(lines, fmt.Sprintf("%d %s %s%s up=%v fd=%v v=%g hb=%s power=%s", i, r.Host, r.Control, r.Fault, r.Up, r.ForcedDown, r.Value, r.HeartbeatAge, r.Power))
		case trace.KindTick:
			if r.Errors != "" {
				lines = append(lines, "tick errors: "+r.Errors)
			}
		}
	}
	want := []string{
		"0 a nova_service up=true fd=false v=0 hb=0s power=",
		"0 a servers_active up=false fd=false v=8 hb=0s power=",
		"0 b nova_service up=true fd=false v=0 hb=0s power=",
		"0 b servers_active up=false fd=false v=8 hb=0s power=",
		"tick errors: nova: no answer within 5s",
		// forced down: the agent's last word (up) is kept
		"2 a nova_service up=true fd=true v=0 hb=42s power=",
		"2 a libvirt up=false fd=false v=3 hb=0s power=",
		"2 a bmc_power up=false fd=false v=0 hb=0s power=On",
		"2 a libvirt_unresponsive up=false fd=false v=0 hb=0s power=",
		"2 b bmc_unreachable up=false fd=false v=0 hb=0s power=",
		"3 a nova_service up=true fd=false v=0 hb=0s power=",
		"3 a servers_active up=false fd=false v=0 hb=0s power=",
		"3 a libvirt up=false fd=false v=0 hb=0s power=",
		"3 a cleared up=false fd=false v=0 hb=0s power=",
	}
	if !reflect.DeepEqual(lines, want) {
		t.Errorf("control and fault lines:\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

func TestErrorStrings(t *testing.T) {
	err := errors.Join(errors.New("nova: down"), errors.Join(errors.New("prom: 503")))
	if got := ErrorStrings(err); !reflect.DeepEqual(got, []string{"nova: down", "prom: 503"}) {
		t.Fatalf("%q", got)
	}
	if ErrorStrings(nil) != nil {
		t.Fatal("nil error gave strings")
	}
}

// TestFilesRotateWithinBound: files are cut before they would pass the
// size limit, at most MaxFiles remain, and each file replays on its own
// (it starts with every host's control lines).
func TestFilesRotateWithinBound(t *testing.T) {
	dir := t.TempDir()
	// a file from an earlier run counts towards the bound; other files are left alone
	if err := os.WriteFile(filepath.Join(dir, FilePrefix+"20000101T000000.000000000Z"+FileSuffix), []byte("{}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	const maxBytes, maxFiles = 8 << 10, 3
	f, err := Open(Options{Dir: dir, MaxFileBytes: maxBytes, MaxFiles: maxFiles, Queue: 1000, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	const ticks = 200
	for i := 0; i < ticks; i++ {
		f.Tick(obs(i, "cmp-001", "cmp-002"))
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	f.Tick(obs(ticks, "cmp-001")) // after Close: ignored
	if f.Dropped() != 0 {
		t.Fatalf("%d dropped with a queue of 1000", f.Dropped())
	}
	names, err := List(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != maxFiles {
		t.Fatalf("%d files, want %d: %v", len(names), maxFiles, names)
	}
	if _, err := os.Stat(filepath.Join(dir, "notes.txt")); err != nil {
		t.Fatalf("a file that is not a record was removed: %v", err)
	}
	var total int64
	lastTick := -1
	for _, n := range names {
		st, err := os.Stat(n)
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() > maxBytes {
			t.Errorf("%s: %d bytes, over the %d bound", n, st.Size(), maxBytes)
		}
		total += st.Size()
		fh, err := os.Open(n)
		if err != nil {
			t.Fatal(err)
		}
		recs := readTrace(t, fh, n)
		fh.Close()
		if recs[0].Kind != trace.KindSignal || count(recs, trace.KindControl) < 4 {
			t.Errorf("%s does not start a tick with every host's control lines", n)
		}
		first := int(recs[0].T.Sub(t0) / (10 * time.Second))
		if lastTick >= 0 && first != lastTick+1 {
			t.Errorf("%s starts at tick %d, the previous file ended at %d", n, first, lastTick)
		}
		lastTick = int(recs[len(recs)-1].T.Sub(t0) / (10 * time.Second))
		if want := fmt.Sprintf("%s%s%s", FilePrefix, recs[0].T.UTC().Format(fileTime), FileSuffix); filepath.Base(n) != want {
			t.Errorf("file %s, want %s", filepath.Base(n), want)
		}
	}
	if lastTick != ticks-1 {
		t.Errorf("the newest file ends at tick %d, want %d", lastTick, ticks-1)
	}
	if total > maxFiles*maxBytes {
		t.Errorf("%d bytes in all, over %d", total, maxFiles*maxBytes)
	}
}

// TestFilesNeverBlock: a writer that is behind drops observations rather
// than hold the engine.
func TestFilesNeverBlock(t *testing.T) {
	f, err := Open(Options{File: filepath.Join(t.TempDir(), "one.jsonl"), Queue: 1, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		for i := 0; i < 2000; i++ {
			f.Tick(obs(i, "cmp-001", "cmp-002", "cmp-003"))
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("Tick blocked")
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d of 2000 dropped", f.Dropped())
}

func TestOpenRefusesBadOptions(t *testing.T) {
	for _, o := range []Options{{}, {Dir: "a", File: "b"}, {Dir: t.TempDir(), MaxFiles: -1}} {
		if _, err := Open(o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}

func TestRingAndJSON(t *testing.T) {
	r := NewRing(3, 0)
	if got, missed := r.Since(time.Time{}); len(got) != 0 || missed {
		t.Fatal("empty ring")
	}
	for i := 0; i < 5; i++ {
		o := obs(i, "a")
		c := o.Control["a"]
		c.Libvirt, c.HeartbeatAge, c.HeartbeatKnown, c.BMCPower = signals.Liveness{Probed: true, Failures: i}, time.Duration(i)*time.Second, true, "On"
		c.Known = true
		o.Control["a"] = c
		o.Samples[0].At = o.At.Add(-time.Second)
		r.Tick(o)
	}
	got, missed := r.Since(t0.Add(25 * time.Second)) // after tick 2
	if len(got) != 2 || missed {
		t.Fatalf("%d observations, missed %v", len(got), missed)
	}
	if _, missed := r.Since(t0); !missed {
		t.Fatal("ticks 1 was forgotten; Since(tick 0) must say so")
	}
	// a ring with an idle limit keeps nothing until read, then keeps while read
	lazy := NewRing(3, time.Minute)
	for i := 0; i < 3; i++ {
		lazy.Tick(obs(i, "a"))
	}
	if got, missed := lazy.Since(time.Time{}); len(got) != 0 || missed || !lazy.Wanted() {
		t.Fatalf("unread ring kept %d", len(got))
	}
	lazy.Tick(obs(3, "a"))
	if got, missed := lazy.Since(t0.Add(10 * time.Second)); len(got) != 1 || !missed {
		t.Fatalf("read ring: %d kept, missed %v (ticks before the first read were not kept)", len(got), missed)
	}
	for i := 4; i < 12; i++ { // 80 s unread: past the idle minute
		lazy.Tick(obs(i, "a"))
	}
	if lazy.Wanted() {
		t.Fatal("an unread ring still keeps observations")
	}
	if got, missed := lazy.Since(t0.Add(30 * time.Second)); len(got) != 0 || !missed {
		t.Fatalf("after idling: %d kept, missed %v", len(got), missed)
	}
	b, err := json.Marshal(got[1])
	if err != nil {
		t.Fatal(err)
	}
	var back Observation
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !back.At.Equal(got[1].At) || !back.Samples[0].At.Equal(got[1].Samples[0].At) {
		t.Fatalf("times: %s", b)
	}
	back.At, back.Samples[0].At = got[1].At, got[1].Samples[0].At
	for i := 1; i < len(back.Samples); i++ {
		back.Samples[i].At = got[1].Samples[i].At
	}
	if !reflect.DeepEqual(back, got[1]) {
		t.Fatalf("round trip:\n%+v\n%+v", back, got[1])
	}
}

// TestEncoderWritesGroups: the groups with their guards when the membership
// changes, a member line when a host's group changes (none for a host that
// was never in a group, "default" for one that left its group), and
// nothing more while nothing changes.
func TestEncoderWritesGroups(t *testing.T) {
	mh, _ := playbook.ParseMinHealthy("50%")
	m1 := groups.New([]groups.Def{{Name: "rack-1", Hosts: []string{"a", "b"}, Guard: playbook.GroupGuard{MinHealthy: mh, MaxConcurrent: 1}}}, groups.Nova{}, 1)
	m2 := groups.New([]groups.Def{{Name: "rack-1", Hosts: []string{"a"}, Guard: playbook.GroupGuard{MinHealthy: mh, MaxConcurrent: 1}}}, groups.Nova{}, 2)
	var buf bytes.Buffer
	e := NewEncoder(&buf)
	for i, m := range []*groups.Membership{m1, m1, m2} {
		o := obs(i, "a", "b", "c")
		o.Groups = m
		e.Encode(o)
	}
	e.Flush()
	recs := readTrace(t, &buf, "groups")
	var lines []string
	for _, r := range recs {
		switch r.Kind {
		case trace.KindGroup:
			lines = append(lines, "group "+r.Group+" "+r.MinHealthy+" "+strconv.Itoa(r.MaxConcurrent))
		case trace.KindMember:
			lines = append(lines, r.Host+" in "+r.Group)
		}
	}
	want := "group rack-1 50% 1|a in rack-1|b in rack-1|group rack-1 50% 1|b in default"
	if got := strings.Join(lines, "|"); got != want {
		t.Fatalf("group lines\n got %s\nwant %s", got, want)
	}
}
