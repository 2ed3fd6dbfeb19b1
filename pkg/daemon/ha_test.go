package daemon_test

import (
	"context"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/fencedhq/fenced/pkg/clock"
	"github.com/fencedhq/fenced/pkg/daemon"
	"github.com/fencedhq/fenced/pkg/lab"
	"github.com/fencedhq/fenced/pkg/lease"
	"github.com/fencedhq/fenced/pkg/playbook"
	"github.com/fencedhq/fenced/pkg/policy"
)

func startEtcd(t *testing.T) []string {
	t.Helper()
	e, err := lease.StartEmbedded(context.Background(), t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e.Endpoints
}

// replica is one replica on the etcd at endpoints, acting on world in
// process; gen, if given, is the lab fleet (default: 12 hosts, lab-007
// starving at once). The in-process world is for one replica at a time:
// replicas that run together share a world through a lab server (sharedLab).
func replica(t *testing.T, endpoints []string, id string, world *lab.World, clk clock.Clock, mode string, gen ...*lab.Generator) *daemon.Daemon {
	t.Helper()
	g := lab.NewGenerator(12, clk.Now(), 0, world)
	if len(gen) > 0 {
		g = gen[0]
	}
	d := replicaOn(t, endpoints, id, world.Backends(g), clk, mode)
	// the world's gate and placer read this replica's snapshot
	world.SetViews(d)
	return d
}

// replicaOn is one replica on the etcd at endpoints with backends be.
func replicaOn(t *testing.T, endpoints []string, id string, be daemon.Backends, clk clock.Clock, mode string) *daemon.Daemon {
	t.Helper()
	p, _ := policy.Default().WithMode(mode)
	cli, err := lease.Connect(lease.ClientConfig{Endpoints: endpoints})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	d, err := daemon.NewReplica(context.Background(), daemon.ReplicaConfig{Policy: p, Clock: clk, Log: testLog(t, id), Tick: 5 * time.Second,
		Etcd: cli, ID: id, TTL: 3 * time.Second, Settle: time.Second, Backends: be})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// sharedLab serves one lab world (12 hosts, lab-007 starving at once) to
// several replicas, as `fenced lab serve` does: every request is served under
// the server's lock.
func sharedLab(t *testing.T, clk clock.Clock) (srv *lab.Server, url string) {
	t.Helper()
	world := lab.NewWorld(clk.Now, 30*time.Second, policy.Default().SignalsConfig())
	srv = &lab.Server{World: world, Gen: lab.NewGenerator(12, clk.Now(), 0, world)}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return srv, hs.URL
}

func waitUntil(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(20 * time.Millisecond) // polling a real etcd; no timing assertion
	}
}

func TestHAFailoverResumesWithoutASecondPowerCycle(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd")
	}
	endpoints := startEtcd(t)
	clk := clock.NewScaled(60)
	labSrv, labURL := sharedLab(t, clk)
	powerCycles := func() int { return labSrv.Counters().PowerCycles }
	a := replicaOn(t, endpoints, "a", (&lab.Remote{URL: labURL, Replica: "a"}).Backends(), clk, "auto")
	actx, stopA := context.WithCancel(context.Background())
	doneA := make(chan error, 1)
	go func() { doneA <- a.Run(actx) }()
	waitUntil(t, "a leads", 10*time.Second, func() bool { return a.Snapshot().Leader })

	b := replicaOn(t, endpoints, "b", (&lab.Remote{URL: labURL, Replica: "b"}).Backends(), clk, "auto")
	bctx, stopB := context.WithCancel(context.Background())
	defer stopB()
	go b.Run(bctx)

	waitUntil(t, "a power-cycles the starving host", 60*time.Second, func() bool { return powerCycles() == 1 })
	if sa, sb := a.Snapshot(), b.Snapshot(); sa.Leader && sb.Leader {
		t.Fatalf("two leaders: a token %d, b token %d", sa.Token, sb.Token)
	}
	// the follower serves the leader's host records from etcd
	waitUntil(t, "b sees the host records", 10*time.Second, func() bool {
		s := hostRecord(b, "lab-007").State
		return s != "" && s != playbook.Normal
	})
	// a write sent to the follower goes through etcd to the leader, and the
	// leader's refusal comes back (the host is past the point of abort)
	octx, ocancel := context.WithTimeout(context.Background(), 10*time.Second)
	_, err := b.Operate(octx, "lab-007", playbook.EvAbort, "alice", "via the follower")
	ocancel()
	if err == nil || !strings.Contains(err.Error(), "not allowed") {
		t.Fatalf("forwarded abort: %v", err)
	}
	octx, ocancel = context.WithTimeout(context.Background(), 10*time.Second)
	if err := b.SetPaused(octx, true, "alice", "maintenance via the follower"); err != nil {
		t.Fatalf("forwarded pause: %v", err)
	}
	ocancel()
	waitUntil(t, "the leader paused", 5*time.Second, func() bool { return a.Snapshot().Paused })
	octx, ocancel = context.WithTimeout(context.Background(), 10*time.Second)
	if err := b.SetPaused(octx, false, "alice", "done"); err != nil {
		t.Fatalf("forwarded resume: %v", err)
	}
	ocancel()
	stopA()
	<-doneA
	waitUntil(t, "b takes over", 15*time.Second, func() bool { return b.Snapshot().Leader })
	if b.Snapshot().Token <= 0 {
		t.Fatal("no fencing token")
	}
	waitUntil(t, "the host is back in service under b", 60*time.Second, func() bool { return inService(b, "lab-007") })
	if n := powerCycles(); n != 1 {
		t.Fatalf("%d power cycles after failover, want 1", n)
	}
	if rep, err := b.Audit().Verify(context.Background()); err != nil || rep.Records == 0 {
		t.Fatalf("audit in etcd: %+v %v", rep, err)
	}
}

func TestNewLeaderReconcilesAnIntentWithoutOutcome(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd")
	}
	endpoints := startEtcd(t)
	clk := clock.NewScaled(60)
	world := lab.NewWorld(clk.Now, 30*time.Second, policy.Default().SignalsConfig())
	cli, err := lease.Connect(lease.ClientConfig{Endpoints: endpoints})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	// a previous leader (token 1) wrote the intent, reset the BMC and died before the outcome
	at := clk.Now()
	el := &lease.Elector{Client: cli, Prefix: "/fenced/", TTL: 2 * time.Second, ID: "old"}
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan struct{})
	go el.Run(ctx, func(l lease.Leadership) error {
		s := &lease.Store{Client: cli, Prefix: "/fenced/"}
		if err := s.PutHost(ctx, l, "lab-003", playbook.Host{Name: "lab-003", State: playbook.Fenced, Since: at}); err != nil {
			t.Error(err)
		}
		if err := s.WriteIntent(ctx, l, lease.Intent{ID: "req-old", Host: "lab-003", Action: "power_cycle", At: at}); err != nil {
			t.Error(err)
		}
		_ = world.PowerCycle(ctx, "lab-003")
		close(got)
		<-ctx.Done()
		return nil
	})
	<-got
	cancel() // the old leader is gone
	d := replica(t, endpoints, "new", world, clk, "auto")
	rctx, stop := context.WithCancel(context.Background())
	defer stop()
	go d.Run(rctx)
	s := &lease.Store{Client: cli, Prefix: "/fenced/"}
	waitUntil(t, "the intent is reconciled", 20*time.Second, func() bool {
		p, err := s.Pending(context.Background())
		return err == nil && len(p) == 0
	})
	// it waits for the host the old leader cycled; it does not recover it again
	waitUntil(t, "lab-003 back after the old leader's power cycle", 20*time.Second, func() bool {
		for _, v := range d.Snapshot().Hosts {
			if v.Host.Name == "lab-003" { // resumed (its power cycle reconciled), then back
				return !v.Host.LastPowerCycle.IsZero() && (v.Host.State == playbook.Restored || v.Host.State == playbook.Normal)
			}
		}
		return false
	})
	if world.Count().PowerCycles != 1 {
		t.Fatalf("%d power cycles, want the old leader's 1", world.Count().PowerCycles)
	}
	recs, _ := records(t, d, "lab-003")
	found := false
	for _, r := range recs {
		found = found || (r.RequestID == "req-old" && r.Outcome == "reconciled_done")
	}
	if !found {
		t.Fatalf("no reconciliation record in the audit log: %+v", recs)
	}
}

func testLog(t *testing.T, id string) zerolog.Logger {
	if os.Getenv("FENCED_TEST_LOG") == "" {
		return zerolog.Nop()
	}
	return zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr}).With().Str("replica", id).Timestamp().Logger()
}

func TestPauseSurvivesARestartOfEveryReplica(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd")
	}
	endpoints := startEtcd(t)
	clk := clock.NewScaled(60)
	world := lab.NewWorld(clk.Now, 30*time.Second, policy.Default().SignalsConfig())
	run := func(id string) (*daemon.Daemon, func()) {
		d := replica(t, endpoints, id, world, clk, "auto")
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- d.Run(ctx) }()
		waitUntil(t, id+" leads", 15*time.Second, func() bool { return d.Snapshot().Leader })
		return d, func() { stop(); <-done }
	}
	a, stopA := run("a")
	octx, ocancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer ocancel()
	if err := a.SetPaused(octx, true, "alice", "maintenance window"); err != nil {
		t.Fatal(err)
	}
	stopA()
	b, stopB := run("b")
	defer stopB()
	if !b.Snapshot().Paused {
		t.Fatal("the pause was lost when every replica restarted")
	}
	// the pause command was audited before it took effect, and by name
	recs, err := records(t, b, "")
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for _, r := range recs {
		if r.Action == "pause" {
			seen = append(seen, r.Operator+" "+r.Outcome)
		}
	}
	if strings.Join(seen, ",") != "alice requested,alice ok" {
		t.Fatalf("pause audit records %v, want the request before its outcome", seen)
	}
}

func TestOnLeadRunsWhenTheReplicaLeads(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd")
	}
	endpoints := startEtcd(t)
	clk := clock.NewScaled(60)
	world := lab.NewWorld(clk.Now, 30*time.Second, policy.Default().SignalsConfig())
	d := replica(t, endpoints, "a", world, clk, "auto")
	led := make(chan bool, 1)
	d.OnLead(func(context.Context) { led <- true })
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() { stop(); <-done }()
	select {
	case <-led:
	case <-time.After(15 * time.Second):
		t.Fatal("OnLead was not called when the replica became leader")
	}
}

// stuckGate answers only when its caller gives up: a leader that dies
// while the fenced state's entry actions are in flight.
type stuckGate struct {
	entered chan struct{}
	once    sync.Once
}

func (g *stuckGate) Check(ctx context.Context, _ string) playbook.GateAnswer {
	g.once.Do(func() { close(g.entered) })
	<-ctx.Done()
	return playbook.GateAnswer{Reasons: []string{"the leader died"}}
}

// TestNewLeaderResumesEntryActionsInFlight: the leader writes critical →
// fenced and dies while the fenced state's entry actions (the gate, then
// the power action) are off its loop. The record says so (enter_from); the
// next leader runs them again: the host is power-cycled once and restored,
// not left in fenced until its timeout.
func TestNewLeaderResumesEntryActionsInFlight(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd")
	}
	endpoints := startEtcd(t)
	clk := clock.NewScaled(60)
	labSrv, labURL := sharedLab(t, clk)
	powerCycles := func() int { return labSrv.Counters().PowerCycles }
	gate := &stuckGate{entered: make(chan struct{})}
	beA := (&lab.Remote{URL: labURL, Replica: "a"}).Backends()
	beA.Gate = gate
	a := replicaOn(t, endpoints, "a", beA, clk, "auto")
	actx, stopA := context.WithCancel(context.Background())
	doneA := make(chan error, 1)
	go func() { doneA <- a.Run(actx) }()
	select {
	case <-gate.entered:
	case <-time.After(90 * time.Second):
		t.Fatal("a never reached the fenced state's gate")
	}
	var rec playbook.Host
	waitUntil(t, "a's record says the fenced entry is in flight", 10*time.Second, func() bool {
		rec = hostRecord(a, "lab-007")
		return rec.State == playbook.Fenced && rec.EnterFrom == playbook.Critical
	})
	stopA() // the term ends: the job's outcome is dropped, as when the process dies
	<-doneA
	if n := powerCycles(); n != 0 {
		t.Fatalf("%d power cycles before the failover, want 0", n)
	}

	b := replicaOn(t, endpoints, "b", (&lab.Remote{URL: labURL, Replica: "b"}).Backends(), clk, "auto")
	bctx, stopB := context.WithCancel(context.Background())
	defer stopB()
	go b.Run(bctx)
	waitUntil(t, "b takes over", 15*time.Second, func() bool { return b.Snapshot().Leader })
	waitUntil(t, "b drives lab-007 on from fenced to back in service", 90*time.Second, func() bool { return inService(b, "lab-007") })
	if n := powerCycles(); n != 1 {
		t.Fatalf("%d power cycles, want exactly 1", n)
	}
}

// countingPower counts the power actions that reach the lab; with hang, a
// power on reaches the BMC and then its caller never hears back (the
// leader dies before the outcome).
type countingPower struct {
	playbook.PowerFencer
	offs, ons *atomic.Int32
	hang      bool
}

func (p countingPower) PowerOff(ctx context.Context, host string) error {
	p.offs.Add(1)
	return p.PowerFencer.PowerOff(ctx, host)
}

func (p countingPower) PowerOn(ctx context.Context, host string) error {
	p.ons.Add(1)
	err := p.PowerFencer.PowerOn(ctx, host)
	if p.hang {
		<-ctx.Done()
		return ctx.Err()
	}
	return err
}

// TestNewLeaderNeverGoesBackAStep: the leader powers the host off,
// evacuates it and powers it on, and dies before the power on's outcome.
// The record says how far the recovery got (each step is a job of its own),
// so the next leader does not start again with a power off.
func TestNewLeaderNeverGoesBackAStep(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd")
	}
	endpoints := startEtcd(t)
	clk := clock.NewScaled(60)
	_, labURL := sharedLab(t, clk)
	var offs, ons atomic.Int32
	beA := (&lab.Remote{URL: labURL, Replica: "a"}).Backends()
	beA.Power = countingPower{PowerFencer: beA.Power, offs: &offs, ons: &ons, hang: true}
	a := replicaOn(t, endpoints, "a", beA, clk, "auto")
	actx, stopA := context.WithCancel(context.Background())
	doneA := make(chan error, 1)
	go func() { doneA <- a.Run(actx) }()
	waitUntil(t, "a powers lab-007 on", 90*time.Second, func() bool { return ons.Load() == 1 })
	stopA() // the power on happened; its outcome never reaches a's loop
	<-doneA

	beB := (&lab.Remote{URL: labURL, Replica: "b"}).Backends()
	beB.Power = countingPower{PowerFencer: beB.Power, offs: &offs, ons: &ons}
	b := replicaOn(t, endpoints, "b", beB, clk, "auto")
	bctx, stopB := context.WithCancel(context.Background())
	defer stopB()
	go b.Run(bctx)
	waitUntil(t, "lab-007 back in service under b", 90*time.Second, func() bool { return b.Snapshot().Leader && inService(b, "lab-007") })
	if o, n := offs.Load(), ons.Load(); o != 1 || n != 1 {
		t.Fatalf("power off ×%d, on ×%d across the failover, want 1 and 1", o, n)
	}
}

// hostRecord is host's record as replica d serves it (zero when unknown).
func hostRecord(d *daemon.Daemon, host string) playbook.Host {
	for _, v := range d.Snapshot().Hosts {
		if v.Host.Name == host {
			return v.Host
		}
	}
	return playbook.Host{}
}

// inService says host is restored or normal again on replica d.
func inService(d *daemon.Daemon, host string) bool {
	s := hostRecord(d, host).State
	return s == playbook.Restored || s == playbook.Normal
}
