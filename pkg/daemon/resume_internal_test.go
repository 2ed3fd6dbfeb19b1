package daemon

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/fencedhq/fenced/pkg/audit"
	"github.com/fencedhq/fenced/pkg/fleet"
	"github.com/fencedhq/fenced/pkg/playbook"
	"github.com/fencedhq/fenced/pkg/policy"
)

// TestResumeNeverRepeatsAChainsPowerCycle: a power_cycle step started by a
// poll (after an earlier step) whose power cycle ran, outcome written, but
// whose record was not persisted before the leader died: the new leader
// reads the audit and marks it done (ok) or waits out the step (error); a
// power cycle from before the step's start is not this step's.
func TestResumeNeverRepeatsAChainsPowerCycle(t *testing.T) {
	t0 := time.Date(2026, 1, 15, 1, 20, 0, 0, time.UTC)
	stepStart := t0.Add(15 * time.Minute)
	for _, tc := range []struct {
		name     string
		recs     []audit.Record
		wantStep string
	}{
		{"ran ok after the step started", []audit.Record{
			{Timestamp: stepStart.Add(time.Second), Component: "playbook", HostID: "cmp-017", Action: "power_cycle", RequestID: "p1", Outcome: audit.OutcomeIntent},
			{Timestamp: stepStart.Add(2 * time.Second), Component: "playbook", HostID: "cmp-017", Action: "power_cycle", RequestID: "p1", Outcome: audit.OutcomeOK},
		}, playbook.StepOn},
		{"failed after the step started: not retried blind", []audit.Record{
			{Timestamp: stepStart.Add(2 * time.Second), Component: "playbook", HostID: "cmp-017", Action: "power_cycle", RequestID: "p1", Outcome: audit.OutcomeError, Detail: "bmc"},
		}, playbook.StepOn},
		{"a power cycle before the step's start is another step's", []audit.Record{
			{Timestamp: t0.Add(time.Second), Component: "playbook", HostID: "cmp-017", Action: "power_cycle", RequestID: "p0", Outcome: audit.OutcomeOK},
		}, ""},
		{"another host's", []audit.Record{
			{Timestamp: stepStart.Add(2 * time.Second), Component: "playbook", HostID: "cmp-018", Action: "power_cycle", RequestID: "p1", Outcome: audit.OutcomeOK},
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := policy.Default()
			f, err := fleet.New(p.SignalsConfig(), p.PlaybookConfig(), &playbook.Actor{}, fleet.Hooks{})
			if err != nil {
				t.Fatal(err)
			}
			h := playbook.Host{Name: "cmp-017", State: playbook.Rebooting, Since: t0, ControlFenced: true,
				Recovery: playbook.Recovery{Index: 1, Step: playbook.RecoverPowerCycle, Since: stepStart, ID: "r2", Ran: "evacuate failed"}}
			if err := f.Resume(h); err != nil {
				t.Fatal(err)
			}
			log := audit.New(audit.NewMemStore(), nil)
			for _, r := range tc.recs {
				if _, err := log.Append(context.Background(), r); err != nil {
					t.Fatal(err)
				}
			}
			d := &Daemon{cfg: Config{Audit: log, Log: zerolog.Nop()}, fleet: f}
			if err := d.resumeEntries(context.Background()); err != nil {
				t.Fatal(err)
			}
			got, _ := f.Get("cmp-017")
			if got.Host.Step != tc.wantStep || got.Host.Recovery != h.Recovery {
				t.Fatalf("step %q (want %q), recovery %+v", got.Host.Step, tc.wantStep, got.Host.Recovery)
			}
		})
	}
}
