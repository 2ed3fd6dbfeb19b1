package openstack

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/aggregates"
	"github.com/rs/zerolog"

	"github.com/fencedhq/fenced/pkg/backends"
	"github.com/fencedhq/fenced/pkg/clock"
	"github.com/fencedhq/fenced/pkg/fencing"
	"github.com/fencedhq/fenced/pkg/groups"
	"github.com/fencedhq/fenced/pkg/hypervisor"
	"github.com/fencedhq/fenced/pkg/nova"
	"github.com/fencedhq/fenced/pkg/playbook"
	"github.com/fencedhq/fenced/pkg/policy"
	"github.com/fencedhq/fenced/pkg/signals"
)

// actionLog is the playbook's journal: every intent (action and host) in
// order, with its outcome.
type actionLog struct {
	mu  sync.Mutex
	n   int
	ins map[string]string
	out []string
}

func (j *actionLog) Intent(_ context.Context, in playbook.Intent) (string, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.n++
	id := in.ID
	if id == "" {
		id = fmt.Sprintf("req-%d", j.n)
	}
	if j.ins == nil {
		j.ins = map[string]string{}
	}
	j.ins[id] = in.Action + " " + in.Host
	return id, nil
}

func (j *actionLog) Outcome(_ context.Context, id string, err error) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	s := j.ins[id] + " ok"
	if err != nil {
		s = j.ins[id] + " error: " + err.Error()
	}
	j.out = append(j.out, s)
	return nil
}

func (j *actionLog) actions() string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return strings.Join(j.out, ", ")
}

// computePower is a host's power as compute-ctl makes it: off is a killed
// nova-compute.
type computePower struct {
	t  *testing.T
	mu sync.Mutex
	on map[string]bool
}

func (p *computePower) set(h string, on bool) {
	p.mu.Lock()
	p.on[h] = on
	p.mu.Unlock()
}

func (p *computePower) PowerCycle(context.Context, string) error {
	return fmt.Errorf("not used")
}

func (p *computePower) PowerOff(_ context.Context, h string) error {
	computeCtl(p.t, "kill", h)
	p.set(h, false)
	return nil
}

func (p *computePower) PowerOn(_ context.Context, h string) error {
	computeCtl(p.t, "start", h)
	p.set(h, true)
	return nil
}

func (p *computePower) PowerState(_ context.Context, h string) (fencing.PowerState, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.on[h] {
		return fencing.On, nil
	}
	return fencing.Off, nil
}

// TestReservedHostOnRealNova: a group defined by a real aggregate (cn1)
// reserves cn2. The leader's keeper disables the spare in Nova ("fenced:
// reserved host"), once; servers booted while it is a spare all land on cn1.
// cn1 is then fenced (its nova-compute killed, forced down) with no other
// room in its group: the playbook's evacuate recovery, placed by the gate
// from Nova's services and placement, enables cn2 (enable_reserved) before
// evacuating cn1's servers to it, and they run there.
func TestReservedHostOnRealNova(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	c, sc := newNova(t, ctx), admin(t, ctx)
	cp := &nova.ControlPlane{C: c}
	power := &computePower{t: t, on: map[string]bool{"cn1": true, "cn2": true}}
	var killed time.Time
	agg, err := aggregates.Create(ctx, sc, aggregates.CreateOpts{Name: "fenced-reserved-test"}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := aggregates.AddHost(ctx, sc, agg.ID, aggregates.AddHostOpts{Host: "cn1"}).Extract(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// leave the stack as found: cn1 running, up, not forced down and
		// enabled; cn2 enabled; the aggregate gone
		bg, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		if on, _ := power.PowerState(bg, "cn1"); on != fencing.On {
			computeCtl(t, "start", "cn1")
		}
		for !killed.IsZero() && bg.Err() == nil {
			if st, err := c.ServiceStatus(bg, "cn1"); err == nil && st.LastHeartbeat.After(killed.Add(time.Second)) {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		_, _ = c.ForceDown(bg, "cn1", false)
		_, _ = c.Enable(bg, "cn1")
		_, _ = c.Enable(bg, "cn2")
		_, _ = aggregates.RemoveHost(bg, sc, agg.ID, aggregates.RemoveHostOpts{Host: "cn1"}).Extract()
		if err := aggregates.Delete(bg, sc, agg.ID).ExtractErr(); err != nil {
			t.Logf("delete aggregate %d: %v", agg.ID, err)
		}
	})

	// the group, its membership read from Nova, and its spare
	ref := &groups.Refresher{Defs: []groups.Def{{Name: "grp", Aggregate: "fenced-reserved-test", Reserved: []string{"cn2"}}},
		Nova: backends.NovaGroups(c), Log: zerolog.Nop()}
	if err := ref.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	memb := ref.Current()
	if memb.Of("cn1") != "grp" || memb.Of("cn2") != "grp" {
		t.Fatalf("cn1 in %s, cn2 in %s", memb.Of("cn1"), memb.Of("cn2"))
	}
	rsv := playbook.NewReserve([]playbook.ReservedGroup{{Group: "grp", Hosts: []string{"cn2"}}})
	rsv.Services = cp
	// the fleet's verdicts: every host normal and calm; Nova says which
	// may take servers, by pkg/backends' rule
	gate := &hypervisor.Gate{Headroom: cp.Headroom, Reserve: rsv, Group: memb.Of, Log: zerolog.Nop(),
		Candidates: func(ctx context.Context, host string) ([]hypervisor.Destination, error) {
			svcs, err := c.Services(ctx)
			if err != nil {
				return nil, err
			}
			var out []hypervisor.Destination
			for _, s := range svcs {
				if s.Host != host && backends.TakesServers(s, rsv) {
					out = append(out, hypervisor.Destination{Host: s.Host, State: string(playbook.Normal)})
				}
			}
			return out, nil
		}}
	j := &actionLog{}
	actor := &playbook.Actor{Nova: cp, Placer: gate, Power: power,
		Journal: j, Clock: clock.Real{}, Log: zerolog.Nop(), Reserve: rsv, ActionTimeout: 3 * time.Minute, ReadTimeout: 30 * time.Second}

	// the leader keeps the spare disabled, reading Nova first
	for i := 0; i < 2; i++ {
		if err := actor.KeepReserved(ctx, nil); err != nil {
			t.Fatal(err)
		}
	}
	if got := j.actions(); got != "disable_reserved cn2 ok" {
		t.Fatalf("keeping the spare: %s", got)
	}
	st, err := c.ServiceStatus(ctx, "cn2")
	if err != nil || st.Enabled || st.DisabledReason != "fenced: reserved host" {
		t.Fatalf("cn2 after the keeper: %+v, %v", st, err)
	}

	// nothing is scheduled onto the spare
	var ids []string
	for i := 0; i < 2; i++ {
		s := boot(t, ctx, sc, c, fmt.Sprintf("reserved-%d", i), "")
		if s.Host != "cn1" {
			t.Fatalf("server %s landed on %s while cn2 is a spare", s.Name, s.Host)
		}
		ids = append(ids, s.ID)
	}

	// cn1 stops and is fenced; its group has no other room
	start := time.Now()
	computeCtl(t, "kill", "cn1")
	killed = start
	power.set("cn1", false)
	if err := cp.ForceDown(ctx, "cn1", true); err != nil {
		t.Fatal(err)
	}
	p, _ := policy.Default().WithMode("auto")
	cfg := p.PlaybookConfig()
	cfg.AfterFence = playbook.AfterFenceEvacuate
	m, err := playbook.NewMachine(cfg, playbook.Host{Name: "cn1", State: playbook.Rebooting, Since: start, ControlFenced: true}, actor)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Step(ctx, playbook.Input{Now: time.Now(), Verdict: &signals.Verdict{Host: "cn1", Blind: true}, Fleet: playbook.Fleet{Total: 2, AtWarnOrWorse: 1, Fencing: 1}}); err != nil {
		t.Fatal(err)
	}
	if h := m.Host(); h.State != playbook.Rebooting || h.Step != playbook.StepOn {
		t.Fatalf("cn1 after the recovery step: %s step %q (%s); actions %s", h.State, h.Step, h.Reason, j.actions())
	}
	took := time.Since(start)
	want := "disable_reserved cn2 ok, enable_reserved cn2 ok, evacuate cn1 ok, evacuate cn1 ok, power_on cn1 ok"
	if got := j.actions(); got != want {
		t.Fatalf("actions:\n %s\nwant\n %s", got, want)
	}
	st, err = c.ServiceStatus(ctx, "cn2")
	if err != nil || !st.Enabled {
		t.Fatalf("cn2 after the take: %+v, %v", st, err)
	}
	for _, id := range ids {
		s, err := c.GetServer(ctx, id)
		if err != nil || s.Host != "cn2" || s.Status != c.ExpectedStatusAfterEvacuate("ACTIVE") {
			t.Fatalf("server %s after the evacuation: %+v, %v", id, s, err)
		}
	}
	rec, _ := rsv.Get("cn2")
	if !rec.InService || !rec.Enabled || rec.For != "cn1" {
		t.Fatalf("cn2's record %+v", rec)
	}
	// in service: the keeper leaves it alone
	if err := actor.KeepReserved(ctx, nil); err != nil || j.actions() != want {
		t.Fatalf("keeper after the take: %v, %s", err, j.actions())
	}
	t.Logf("FIGURE reserved host: cn1 killed, cn2 enabled and %d servers evacuated onto it in %.1fs", len(ids), took.Seconds())
}
