package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/fencedhq/fenced/pkg/clock"
	"github.com/fencedhq/fenced/pkg/playbook"
)

func filled(t *testing.T, n int) (*Log, *MemStore) {
	t.Helper()
	st := NewMemStore()
	l := New(st, clock.NewFake(time.Date(2026, 1, 15, 1, 20, 0, 0, time.UTC)))
	for i := 0; i < n; i++ {
		if _, err := l.Append(context.Background(), Record{HostID: "cmp-017", Action: "power_cycle", Outcome: OutcomeOK, CPUStealPct: 41.5, FenceToken: 7}); err != nil {
			t.Fatal(err)
		}
	}
	return l, st
}

func TestChainVerifies(t *testing.T) {
	l, _ := filled(t, 5)
	rep, err := l.Verify(context.Background())
	if err != nil || rep.Records != 5 {
		t.Fatalf("%+v %v", rep, err)
	}
	recs, _ := l.Records(context.Background(), nil)
	if recs[0].PrevHash != "" || recs[3].PrevHash != recs[2].Hash {
		t.Fatal("records are not linked")
	}
}

func TestTamperingIsDetected(t *testing.T) {
	ctx := context.Background()
	for name, tamper := range map[string]func(*MemStore, []Record){
		"edited field": func(st *MemStore, recs []Record) {
			r := recs[2]
			r.Outcome = "error"
			b, _ := json.Marshal(r)
			st.Tamper(2, b)
		},
		"edited and rehashed": func(st *MemStore, recs []Record) {
			r := recs[2]
			r.HostID = "cmp-001"
			r.Hash = r.digest()
			b, _ := json.Marshal(r)
			st.Tamper(2, b)
		},
		"removed in the middle": func(st *MemStore, _ []Record) { st.Tamper(1, nil) },
		"removed at the end":    func(st *MemStore, _ []Record) { st.Tamper(4, nil) },
	} {
		t.Run(name, func(t *testing.T) {
			l, st := filled(t, 5)
			recs, _ := l.Records(ctx, nil)
			tamper(st, recs)
			_, err := l.Verify(ctx)
			var ve *VerifyError
			if !errors.As(err, &ve) {
				t.Fatalf("tampering not detected: %v", err)
			}
		})
	}
}

func TestConcurrentWritersNeverFork(t *testing.T) {
	st := NewMemStore()
	a, b := New(st, nil), New(st, nil)
	ctx := context.Background()
	for i := 0; i < 10; i++ {
		if _, err := a.Append(ctx, Record{Action: "a", Outcome: "ok"}); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Append(ctx, Record{Action: "b", Outcome: "ok"}); err != nil {
			t.Fatal(err)
		}
	}
	if rep, err := a.Verify(ctx); err != nil || rep.Records != 20 {
		t.Fatalf("%+v %v", rep, err)
	}
}

func TestJSONLRoundTripAndBadLine(t *testing.T) {
	l, _ := filled(t, 3)
	recs, _ := l.Records(context.Background(), nil)
	var buf bytes.Buffer
	if err := WriteJSONL(&buf, recs); err != nil {
		t.Fatal(err)
	}
	back, err := ReadJSONL(bytes.NewReader(buf.Bytes()), "audit.jsonl")
	if err != nil || Verify(back) != nil || len(back) != 3 {
		t.Fatalf("%v", err)
	}
	for _, f := range []string{`"timestamp"`, `"component"`, `"request_id"`, `"cpu_steal_pct"`, `"host_id"`, `"action"`, `"outcome"`, `"fence_token"`} {
		if f == `"request_id"` {
			continue // empty on these records
		}
		if !strings.Contains(buf.String(), f) {
			t.Errorf("B.6 field %s missing from the export", f)
		}
	}
	_, err = ReadJSONL(strings.NewReader(buf.String()+"{\"seq\":\"x\"}\n"), "audit.jsonl")
	if err == nil || !strings.Contains(err.Error(), "audit.jsonl:4") {
		t.Fatalf("bad line: %v", err)
	}
}

func TestJournalIntentBeforeOutcome(t *testing.T) {
	st := NewMemStore()
	l := New(st, nil)
	j := &Journal{Log: l, PolicyVersion: "v1@abc", Token: func(context.Context) (int64, error) { return 42, nil }}
	ctx := context.Background()
	id, err := j.Intent(ctx, playbook.Intent{Host: "cmp-017", Action: "power_cycle", At: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Outcome(ctx, id, errors.New("bmc timeout")); err != nil {
		t.Fatal(err)
	}
	recs, _ := l.Records(ctx, nil)
	if len(recs) != 2 || recs[0].Outcome != OutcomeIntent || recs[1].Outcome != OutcomeError || recs[1].RequestID != id ||
		recs[1].HostID != "cmp-017" || recs[1].Action != "power_cycle" || recs[0].FenceToken != 42 || recs[1].Detail != "bmc timeout" {
		t.Fatalf("%+v", recs)
	}
	j.Token = func(context.Context) (int64, error) { return 0, errors.New("not the leader") }
	if _, err := j.Intent(ctx, playbook.Intent{Host: "cmp-017", Action: "power_cycle"}); err == nil {
		t.Fatal("intent without a token accepted")
	}
	if rep, _ := l.Verify(ctx); rep.Records != 2 {
		t.Fatalf("a refused intent was written: %d records", rep.Records)
	}
}

// appendingStore is a leader that appends a record right after a reader's
// Range returned, before the reader gets to the head.
type appendingStore struct {
	*MemStore
	log  *Log
	done bool
}

func (s *appendingStore) Range(ctx context.Context, from uint64) ([][]byte, error) {
	out, err := s.MemStore.Range(ctx, from)
	if !s.done {
		s.done = true
		if _, aerr := s.log.Append(ctx, Record{HostID: "cmp-017", Action: "disable", Outcome: OutcomeOK}); aerr != nil {
			return nil, aerr
		}
	}
	return out, err
}

// TestVerifyWhileTheLeaderAppends: a record appended while Verify reads is
// not a cut tail (the head is read first); a tail cut for real still is.
func TestVerifyWhileTheLeaderAppends(t *testing.T) {
	_, mem := filled(t, 5)
	st := &appendingStore{MemStore: mem}
	l := New(st, clock.NewFake(time.Date(2026, 1, 15, 1, 21, 0, 0, time.UTC)))
	st.log = l
	if rep, err := l.Verify(context.Background()); err != nil || rep.Records != 5 {
		t.Fatalf("verify during an append: %d %v, want the 5 records read, intact", rep.Records, err)
	}
	mem.Tamper(5, nil) // now cut the appended record: the head still names it
	if _, err := l.Verify(context.Background()); err == nil || !strings.Contains(err.Error(), "removed from the end") {
		t.Fatalf("cut tail: %v", err)
	}
}
