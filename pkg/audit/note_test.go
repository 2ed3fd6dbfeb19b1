package audit

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/fencedhq/fenced/pkg/playbook"
)

// TestJournalNote: a recovery step's note is one audit record with the
// step, outcome, detail, request id, the policy version and the leader's
// token; without a token nothing is written.
func TestJournalNote(t *testing.T) {
	l := New(NewMemStore(), nil)
	j := &Journal{Log: l, PolicyVersion: "v1@x", Token: func(context.Context) (int64, error) { return 7, nil }}
	var _ playbook.NoteJournal = j
	ctx := context.Background()
	at := time.Date(2026, 1, 15, 1, 20, 30, 0, time.UTC)
	if err := j.Note(ctx, playbook.Note{ID: "req-1", Host: "cmp-017", Action: "recovery power_cycle", Outcome: playbook.StepTimeout,
		Detail: "host did not come back within 15m0s", At: at}); err != nil {
		t.Fatal(err)
	}
	recs, _ := l.Records(ctx, nil)
	if len(recs) != 1 {
		t.Fatalf("%d records", len(recs))
	}
	r := recs[0]
	if r.Component != "playbook" || r.Action != "recovery power_cycle" || r.Outcome != "timeout" || r.RequestID != "req-1" ||
		r.HostID != "cmp-017" || r.FenceToken != 7 || r.PolicyVersion != "v1@x" || !r.Timestamp.Equal(at) || r.Detail == "" {
		t.Fatalf("record %+v", r)
	}
	j.Token = func(context.Context) (int64, error) { return 0, errors.New("not the leader") }
	if err := j.Note(ctx, playbook.Note{Host: "cmp-017", Action: "recovery evacuate", Outcome: playbook.StepStarted}); err == nil {
		t.Fatal("a follower wrote a note")
	}
	if recs, _ := l.Records(ctx, nil); len(recs) != 1 {
		t.Fatalf("%d records after a refused note", len(recs))
	}
}
