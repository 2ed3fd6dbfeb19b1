package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/fencedhq/fenced/internal/obs"
	"github.com/fencedhq/fenced/pkg/audit"
	"github.com/fencedhq/fenced/pkg/fleet"
	"github.com/fencedhq/fenced/pkg/groups"
	"github.com/fencedhq/fenced/pkg/lease"
	"github.com/fencedhq/fenced/pkg/playbook"
	"github.com/fencedhq/fenced/pkg/signals"
)

// HA makes the daemon one of several replicas: only the leader runs the
// playbooks; every replica serves reads.
type HA struct {
	Elector *lease.Elector
	Store   *lease.Store
	// Reconcile tells whether the action of an intent left without an
	// outcome by a previous leader has happened (for a power cycle: the BMC
	// reports a reset since the intent). It is called only after Settle has
	// passed since the intent, so a request still in flight has landed.
	Reconcile func(ctx context.Context, in lease.Intent) (done bool, err error)
	Settle    time.Duration // default 30 s
}

// ErrFollower is returned by writes on a replica that is not the leader.
var ErrFollower = errors.New("daemon: this replica is not the leader")

// haState is the leader's term, shared with the journal.
type haState struct {
	mu        sync.Mutex
	l         *lease.Leadership
	persisted map[string]playbook.Host
}

func (h *haState) get() *lease.Leadership {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.l
}

func (h *haState) set(l *lease.Leadership) {
	h.mu.Lock()
	h.l = l
	h.mu.Unlock()
}

// Journal records intents in etcd under the leader's fencing token before
// an action runs (and outcomes after), and in the audit log. It refuses when
// this replica is not the leader: the action then does not run.
type Journal struct {
	d     *Daemon
	Audit *audit.Journal
}

// Journal returns the journal the actor must use when the daemon is HA.
func (d *Daemon) Journal(a *audit.Journal) *Journal {
	j := &Journal{d: d, Audit: a}
	a.Token = func(context.Context) (int64, error) {
		if l := d.ha.get(); l != nil {
			return l.Token, nil
		}
		return 0, ErrFollower
	}
	return j
}

// Intent implements playbook.Journal.
func (j *Journal) Intent(ctx context.Context, in playbook.Intent) (string, error) {
	l := j.d.ha.get()
	if l == nil {
		return "", ErrFollower
	}
	if in.ID == "" {
		in.ID = audit.NewRequestID()
	}
	if err := j.d.cfg.HA.Store.WriteIntent(ctx, *l, lease.Intent{ID: in.ID, Host: in.Host, Action: in.Action, Target: in.Target, At: in.At, Detail: in.Detail}); err != nil {
		return "", err
	}
	if _, err := j.Audit.Intent(ctx, in); err != nil {
		return "", err
	}
	// the last look before the irreversible step
	if err := j.d.cfg.HA.Store.Check(ctx, *l); err != nil {
		return "", err
	}
	return in.ID, nil
}

// Outcome implements playbook.Journal.
func (j *Journal) Outcome(ctx context.Context, id string, actionErr error) error {
	l := j.d.ha.get()
	if l == nil {
		return ErrFollower
	}
	o := lease.Outcome{ID: id, OK: actionErr == nil, At: j.d.cfg.Clock.Now()}
	if actionErr != nil {
		o.Error = actionErr.Error()
	}
	if err := j.d.cfg.HA.Store.WriteOutcome(ctx, *l, o); err != nil {
		return err
	}
	return j.Audit.Outcome(ctx, id, actionErr)
}

// Note implements playbook.NoteJournal: the audit record of a recovery
// step or a skipped server, written while this replica leads.
func (j *Journal) Note(ctx context.Context, n playbook.Note) error {
	if j.d.ha.get() == nil {
		return ErrFollower
	}
	return j.Audit.Note(ctx, n)
}

// runHA campaigns; while leader it runs the loop, otherwise it follows.
func (d *Daemon) runHA(ctx context.Context) error {
	fctx, stopFollow := context.WithCancel(ctx)
	defer stopFollow()
	go d.follow(fctx)
	return d.cfg.HA.Elector.Run(ctx, d.lead)
}

func (d *Daemon) lead(l lease.Leadership) error {
	d.own.Lock() // the fleet is this term's until it ends (reload.go)
	defer d.own.Unlock()
	log := d.cfg.Log.With().Int64("fence_token", l.Token).Logger()
	log.Info().Str("state", "leader").Msg("elected leader")
	d.ha.set(&l)
	defer func() {
		d.ha.set(nil)
		d.incidents.endAll("leadership ended")
		log.Warn().Str("state", "follower").Msg("leadership ended; all leader work stopped")
		d.mu.Lock()
		d.snap.Leader = false
		d.mu.Unlock()
	}()
	ctx := l.Ctx
	recs, err := lease.Hosts[playbook.Host](ctx, d.cfg.HA.Store)
	if err != nil {
		return err
	}
	d.ha.mu.Lock()
	d.ha.persisted = map[string]playbook.Host{}
	d.ha.mu.Unlock()
	for name, h := range recs {
		h.Name = name
		if err := d.fleet.Restore(h); err != nil {
			return fmt.Errorf("daemon: resume %s: %w", name, err)
		}
		d.ha.persisted[name] = h
	}
	fl, err := d.cfg.HA.Store.GetFleet(ctx)
	if err != nil {
		return err
	}
	d.applyPauses(fl)
	log.Info().Int("hosts", len(recs)).Bool("paused", fl.Paused).Int("paused_groups", len(fl.Groups)).Msg("resumed host records and the pauses")
	if err := d.reconcile(ctx, l); err != nil {
		return err
	}
	if err := d.resumeReserved(ctx); err != nil {
		return err
	}
	for _, f := range d.onLead {
		f(ctx)
	}
	d.mu.Lock()
	d.snap.Leader, d.snap.LeaderID, d.snap.Token, d.snap.Paused = true, l.ID, l.Token, fl.Paused
	d.snap.PausedGroups = fl.Groups
	d.mu.Unlock()
	go d.watchCommands(ctx)
	return d.loop(ctx)
}

// watchCommands feeds commands queued in etcd by followers to the loop.
func (d *Daemon) watchCommands(ctx context.Context) {
	s := d.cfg.HA.Store
	prefix := s.CommandsPrefix()
	get, err := s.Client.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		d.cfg.Log.Warn().Err(err).Msg("cannot read queued operator commands")
		return
	}
	send := func(key string, v []byte) {
		c, err := lease.DecodeCommand(key, v)
		if err != nil {
			d.cfg.Log.Warn().Err(err).Msg("bad operator command in etcd")
			return
		}
		select {
		case d.remote <- c:
		case <-ctx.Done():
		}
	}
	for _, kv := range get.Kvs {
		send(string(kv.Key), kv.Value)
	}
	for wr := range s.Client.Watch(ctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(get.Header.Revision+1)) {
		for _, ev := range wr.Events {
			if ev.Type == clientv3.EventTypePut {
				send(string(ev.Kv.Key), ev.Kv.Value)
			}
		}
	}
}

// answer records a forwarded command's result under the leader guard.
func (d *Daemon) answer(ctx context.Context, id string, ch []playbook.Change, opErr error) error {
	l := d.ha.get()
	if l == nil {
		return ErrFollower
	}
	r := lease.Result{ID: id}
	if opErr != nil {
		r.Error = opErr.Error()
	}
	if b, err := json.Marshal(ch); err == nil {
		r.Changes = b
	}
	return d.cfg.HA.Store.Answer(ctx, *l, r)
}

// forward sends an operator's command to the leader through etcd and waits
// for its answer.
func (d *Daemon) forward(ctx context.Context, o op) ([]playbook.Change, error) {
	c := lease.Command{ID: audit.NewRequestID(), Host: o.host, Group: o.group, Event: string(o.ev), Operator: o.operator, Reason: o.reason, At: d.cfg.Clock.Now()}
	if err := d.cfg.HA.Store.PutCommand(ctx, c); err != nil {
		return nil, err
	}
	r, err := d.cfg.HA.Store.AwaitResult(ctx, c.ID)
	if err != nil {
		return nil, fmt.Errorf("daemon: forwarded to the leader (%s): %w", d.Snapshot().LeaderID, err)
	}
	var ch []playbook.Change
	_ = json.Unmarshal(r.Changes, &ch)
	if r.Error != "" {
		return ch, errors.New(r.Error)
	}
	return ch, nil
}

// reconcile settles intents a previous leader left without an outcome.
func (d *Daemon) reconcile(ctx context.Context, l lease.Leadership) error {
	pending, err := d.cfg.HA.Store.Pending(ctx)
	if err != nil {
		return err
	}
	settle := d.cfg.HA.Settle
	if settle <= 0 {
		settle = 30 * time.Second
	}
	for _, in := range pending {
		b6 := obs.Fields{Component: "lease", RequestID: in.ID, HostID: in.Host, VMID: in.Target, Action: in.Action, FenceToken: l.Token}
		if wait := in.At.Add(settle).Sub(d.cfg.Clock.Now()); wait > 0 {
			b6.Log(d.cfg.Log.Info(), 0, "settling").Dur("wait", wait).Msg("waiting for an in-flight action to settle before reconciling")
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-d.cfg.Clock.After(wait):
			}
		}
		done := false
		if d.cfg.HA.Reconcile != nil {
			if done, err = d.cfg.HA.Reconcile(ctx, in); err != nil {
				return fmt.Errorf("daemon: reconcile %s %s: %w", in.Action, in.ID, err)
			}
		}
		o := lease.Outcome{ID: in.ID, OK: done, At: d.cfg.Clock.Now()}
		if !done {
			o.Error = "not executed before the leader changed; the playbook decides again"
		}
		if err := d.cfg.HA.Store.WriteOutcome(ctx, l, o); err != nil {
			return err
		}
		d.record(ctx, audit.Record{Component: "lease", RequestID: in.ID, HostID: in.Host, Action: in.Action,
			Outcome: map[bool]string{true: "reconciled_done", false: "reconciled_not_done"}[done], FenceToken: l.Token})
		b6.Log(d.cfg.Log.Info(), 0, map[bool]string{true: "reconciled_done", false: "reconciled_not_done"}[done]).Bool("done", done).Msg("reconciled intent")
		if done && in.Action == "power_cycle" {
			if v, ok := d.fleet.Get(in.Host); ok {
				h := v.Host
				h.State, h.Since, h.LastPowerCycle, h.ControlFenced = playbook.Rebooting, in.At, in.At, true
				h.Step = playbook.StepOn // the host was cycled: only the wait for it is left
				h.EnterFrom = ""         // and its entry action is done
				h.Reason = "power cycle " + in.ID + " completed by the previous leader"
				if err := d.fleet.Restore(h); err != nil {
					return err
				}
			}
		}
	}
	if err := d.resumeEntries(ctx); err != nil {
		return err
	}
	return d.persist(ctx)
}

// resumeEntries settles records whose entry actions were in flight when the
// previous leader died (EnterFrom set). The playbook runs them again at the
// host's next step — safe for every state's entry actions but one: a power
// cycle (the recovery chain's power_cycle step, run by the rebooting entry
// or by a poll) that the audit shows already ran, whose intent had its
// outcome written before the record could say so. That one is marked done
// here (ok: the wait for the host is left; error: it is not retried blind,
// the step's timeout moves the chain on); it never runs twice.
func (d *Daemon) resumeEntries(ctx context.Context) error {
	var resumed []playbook.Host
	for _, v := range d.fleet.Views() {
		h := v.Host
		cycling := h.State == playbook.Rebooting && h.Recovery.Step == playbook.RecoverPowerCycle && h.Step != playbook.StepOn
		if h.EnterFrom != "" || cycling {
			resumed = append(resumed, h)
		}
	}
	if len(resumed) == 0 || d.cfg.Audit == nil {
		return nil
	}
	recs, err := d.cfg.Audit.Records(ctx, func(r audit.Record) bool {
		return r.Action == "power_cycle" && r.Outcome != audit.OutcomeIntent && r.Outcome != "reconciled_not_done"
	})
	if err != nil {
		return fmt.Errorf("daemon: resume entry actions: %w", err)
	}
	for _, h := range resumed {
		log := d.cfg.Log.With().Str("state", string(h.State)).Logger()
		if h.State != playbook.Rebooting {
			log.Info().Str("host_id", h.Name).Msg("resuming entry actions the previous leader did not finish")
			continue
		}
		since := h.Since // the rebooting entry's power cycle, or the step's
		if h.Recovery.Step == playbook.RecoverPowerCycle && h.Recovery.Since.After(since) {
			since = h.Recovery.Since
		}
		for _, r := range recs {
			if r.HostID != h.Name || r.Timestamp.Before(since) {
				continue
			}
			h.EnterFrom = ""
			if r.Outcome == audit.OutcomeError {
				h.Reason = "power cycle " + r.RequestID + " failed before the leader changed: " + r.Detail
				h.Step = playbook.StepOn // not retried blind: the step's timeout moves the chain on
			} else {
				h.Step, h.LastPowerCycle = playbook.StepOn, r.Timestamp
				h.Reason = "power cycle " + r.RequestID + " completed by the previous leader"
			}
			obs.Fields{Component: "lease", RequestID: r.RequestID, HostID: h.Name, Action: r.Action}.Log(log.Info(), 0, r.Outcome).
				Msg("entry action already ran under the previous leader: not run again")
			if err := d.fleet.Restore(h); err != nil {
				return err
			}
			break
		}
	}
	return nil
}

// durable is the part of a host record worth a write.
func durable(h playbook.Host) playbook.Host {
	return playbook.Host{Name: h.Name, State: h.State, Since: h.Since, Onset: h.Onset, ApprovalDeadline: h.ApprovalDeadline,
		ApprovalOnTimeout: h.ApprovalOnTimeout, CooldownUntil: h.CooldownUntil, LastPowerCycle: h.LastPowerCycle, ControlFenced: h.ControlFenced, Reason: h.Reason, Step: h.Step,
		EnterFrom: h.EnterFrom, Recovery: h.Recovery}
}

// persist writes the host records that changed, under the leader guard.
// Trackers (dwell runs) and d are not persisted: a new leader restarts
// dwell times, which only delays escalation.
func (d *Daemon) persist(ctx context.Context) error {
	l := d.ha.get()
	if l == nil {
		return ErrFollower
	}
	for _, v := range d.fleet.Views() {
		rec := durable(v.Host)
		d.ha.mu.Lock()
		old, ok := d.ha.persisted[rec.Name]
		d.ha.mu.Unlock()
		if ok && old == rec {
			continue
		}
		if err := d.cfg.HA.Store.PutHost(ctx, *l, rec.Name, rec); err != nil {
			return err
		}
		d.ha.mu.Lock()
		d.ha.persisted[rec.Name] = rec
		d.ha.mu.Unlock()
		d.writes.Add(1)
	}
	return nil
}

// follow keeps a follower's snapshot fresh from etcd.
func (d *Daemon) follow(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.cfg.Clock.After(d.cfg.Tick):
		}
		if d.ha.get() != nil {
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, d.cfg.Tick)
		recs, err := lease.Hosts[playbook.Host](rctx, d.cfg.HA.Store)
		fl, ferr := d.cfg.HA.Store.GetFleet(rctx)
		rsv, rerr := d.followerReserved(rctx)
		id, tok, _ := d.cfg.HA.Elector.Leader(rctx)
		cancel()
		if err = errors.Join(err, ferr, rerr); err != nil {
			d.cfg.Log.Warn().Err(err).Msg("follower cannot read host records")
			continue
		}
		var memb *groups.Membership
		if d.cfg.Groups != nil {
			memb = d.cfg.Groups()
		}
		views := make([]fleet.View, 0, len(recs))
		for name, h := range recs {
			h.Name = name
			views = append(views, fleet.View{Host: h, Verdict: signals.Verdict{Host: name, D: h.LastD}, Group: memb.Of(name), Reserved: rsv[name]})
		}
		sortViews(views)
		d.mu.Lock()
		d.snap.At, d.snap.Hosts, d.snap.Leader, d.snap.LeaderID, d.snap.Token, d.snap.Paused = d.cfg.Clock.Now(), views, false, id, tok, fl.Paused
		d.snap.Groups, d.snap.PausedGroups = followerGroups(memb, views, fl), fl.Groups
		if d.cfg.Unfenceable != nil { // every replica checks the fence paths
			d.snap.Unfenceable = d.cfg.Unfenceable()
		}
		d.mu.Unlock()
	}
}

// followerGroups lists the groups as a follower knows them: names, what
// defines them, their hosts and pauses (the counts of healthy hosts need
// the verdicts only the leader has).
func followerGroups(m *groups.Membership, views []fleet.View, fl lease.Fleet) []fleet.GroupView {
	total := map[string]int{}
	for _, v := range views {
		if v.Reserved != playbook.ReservedSpare { // a spare is not one of its group's hosts
			total[v.Group]++
		}
	}
	var out []fleet.GroupView
	add := func(name, source string) {
		_, paused := fl.Groups[name]
		out = append(out, fleet.GroupView{Group: playbook.Group{Name: name, Total: total[name], Paused: paused}, Source: source})
	}
	for _, d := range m.Defs() {
		add(d.Name, d.Source())
	}
	add(playbook.DefaultGroup, "")
	return out
}
