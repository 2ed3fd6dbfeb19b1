package audit

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fencedhq/fenced/pkg/playbook"
)

// TestJournalVersionFollowsReloads: with Version set, an intent records the
// policy in force when it is written, and its outcome the same version even
// after a reload in between.
func TestJournalVersionFollowsReloads(t *testing.T) {
	l := New(NewMemStore(), nil)
	var v atomic.Value
	v.Store("v1@old")
	j := &Journal{Log: l, PolicyVersion: "v1@start", Version: func() string { return v.Load().(string) }}
	ctx := context.Background()
	id, err := j.Intent(ctx, playbook.Intent{Host: "cmp-017", Action: "power_off", At: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	v.Store("v1@new")
	if err := j.Outcome(ctx, id, nil); err != nil {
		t.Fatal(err)
	}
	id2, _ := j.Intent(ctx, playbook.Intent{Host: "cmp-017", Action: "power_on", At: time.Now()})
	_ = j.Outcome(ctx, id2, nil)
	recs, _ := l.Records(ctx, nil)
	want := []string{"v1@old", "v1@old", "v1@new", "v1@new"}
	if len(recs) != len(want) {
		t.Fatalf("%d records", len(recs))
	}
	for i, r := range recs {
		if r.PolicyVersion != want[i] {
			t.Errorf("record %d (%s %s): %s, want %s", i, r.Action, r.Outcome, r.PolicyVersion, want[i])
		}
	}
}
