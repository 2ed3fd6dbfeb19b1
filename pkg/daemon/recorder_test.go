package daemon_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/fencedhq/fenced/pkg/clock"
	"github.com/fencedhq/fenced/pkg/daemon"
	"github.com/fencedhq/fenced/pkg/lab"
	"github.com/fencedhq/fenced/pkg/lease"
	"github.com/fencedhq/fenced/pkg/policy"
	"github.com/fencedhq/fenced/pkg/record"
)

type recorded struct {
	mu  sync.Mutex
	obs []record.Observation
}

func (r *recorded) Tick(o record.Observation) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.obs = append(r.obs, o)
}

func (r *recorded) get() []record.Observation {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]record.Observation(nil), r.obs...)
}

// TestRecorderSeesEachTick: the recorder gets, at each tick, the samples
// collected and what the control plane said of every host, at the tick's
// time.
func TestRecorderSeesEachTick(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd")
	}
	endpoints := startEtcd(t)
	clk := clock.NewScaled(60)
	p := policy.Default()
	world := lab.NewWorld(clk.Now, 30*time.Second, p.SignalsConfig())
	gen := lab.NewGenerator(4, clk.Now(), time.Hour, world)
	cli, err := lease.Connect(lease.ClientConfig{Endpoints: endpoints})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	rec := &recorded{}
	d, err := daemon.NewReplica(context.Background(), daemon.ReplicaConfig{Policy: p, Clock: clk, Log: testLog(t, "rec"), Tick: 5 * time.Second,
		Etcd: cli, ID: "rec", TTL: 3 * time.Second, Settle: time.Second, Backends: world.Backends(gen), Recorder: rec})
	if err != nil {
		t.Fatal(err)
	}
	world.SetViews(d)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	waitUntil(t, "three ticks recorded", 20*time.Second, func() bool { return len(rec.get()) >= 3 })
	// the API's observations: kept once someone asks
	if obs, _ := d.Observations(time.Time{}); len(obs) != 0 {
		t.Fatalf("%d observations kept before anyone asked", len(obs))
	}
	var polled []record.Observation
	waitUntil(t, "two ticks kept for the API", 20*time.Second, func() bool {
		polled, _ = d.Observations(time.Time{})
		return len(polled) >= 2
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	obs := rec.get()
	if p := polled[len(polled)-1]; len(p.Samples) != 4*9 || len(p.Control) != 4 {
		t.Fatalf("an observation for the API: %d samples, control of %d hosts", len(p.Samples), len(p.Control))
	}
	for i, o := range obs {
		if len(o.Samples) != 4*9 || len(o.Control) != 4 {
			t.Fatalf("tick %d: %d samples, control of %d hosts", i, len(o.Samples), len(o.Control))
		}
		if c := o.Control[gen.Victim]; !c.ServiceUp || c.ServersActive != 14 {
			t.Fatalf("tick %d: control of %s %+v", i, gen.Victim, c)
		}
		for _, s := range o.Samples {
			if !s.At.Equal(o.At) {
				t.Fatalf("tick %d at %s has a sample at %s", i, o.At, s.At)
			}
		}
		if i > 0 && !o.At.After(obs[i-1].At) {
			t.Fatalf("ticks out of order: %s after %s", o.At, obs[i-1].At)
		}
	}
}
