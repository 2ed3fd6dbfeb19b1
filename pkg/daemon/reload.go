package daemon

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fencedhq/fenced/internal/obs"
	"github.com/fencedhq/fenced/pkg/audit"
	"github.com/fencedhq/fenced/pkg/fleet"
	"github.com/fencedhq/fenced/pkg/notify"
	"github.com/fencedhq/fenced/pkg/playbook"
	"github.com/fencedhq/fenced/pkg/policy"
)

// Reload is a new policy and set of webhooks for a running replica
// (`fenced run --config` on SIGHUP).
type Reload struct {
	Policy   *policy.Policy
	Webhooks []notify.Endpoint
	// Source names where it came from, for the log and the audit (the
	// config file).
	Source string
	// Kept lists settings that changed in the source but need a restart
	// (etcd, api, bmc, …): the running ones are kept; the audit says so.
	Kept []string
}

// ReloadResult says what a reload changed.
type ReloadResult struct {
	OldVersion, NewVersion string
	OldMode, NewMode       playbook.Mode
	Webhooks               []string // endpoint names now in force
	Detail                 string   // what the audit record says
}

// reloading is the daemon's part that reloads: the policy in force, the
// webhook notifier, and who owns the fleet.
type reloading struct {
	policy   atomic.Pointer[policy.Policy]
	webhooks *notify.Notifier // nil: no webhook notifier (a daemon built without NewReplica)
	reloads  chan reloadReq
	// own is held by whoever owns the fleet: the leader for its whole
	// term; a follower's reload takes it to swap an idle fleet.
	own sync.Mutex
}

type reloadReq struct {
	r     Reload
	reply chan reloadReply
}

type reloadReply struct {
	res ReloadResult
	err error
}

func (d *Daemon) initReload(p *policy.Policy) {
	d.policy.Store(p)
	d.reloads = make(chan reloadReq)
}

// Policy is the policy in force: safe from any goroutine.
func (d *Daemon) Policy() *policy.Policy {
	if p := d.policy.Load(); p != nil {
		return p
	}
	return d.cfg.Policy
}

// ErrReloadRefused wraps the reasons a reload was refused: the running
// policy and webhooks are kept.
var ErrReloadRefused = errors.New("reload refused; the running policy and webhooks are kept")

// Reload swaps the policy and the webhooks at once, or neither: the
// evaluator, every host's playbook, the actor's mode and after_fence, the
// policy version the audit records, and the webhook endpoints. It runs on
// the goroutine that owns the fleet (the loop while this replica leads),
// between two ticks, so no tick or operator command sees half of it. Host
// records, samples and actions in flight are kept. The reload is audited,
// refused ones too.
//
// A change of the recovery chain's steps (after_fence, recovery) is refused
// while a host is rebooting: its recovery would switch procedure halfway.
func (d *Daemon) Reload(ctx context.Context, r Reload) (ReloadResult, error) {
	if r.Policy == nil {
		return ReloadResult{}, fmt.Errorf("daemon: %w: no policy", ErrReloadRefused)
	}
	req := reloadReq{r: r, reply: make(chan reloadReply, 1)}
	for {
		if d.own.TryLock() { // following: the fleet is idle, swap it here
			rep := d.applyReload(ctx, r, false)
			d.own.Unlock()
			return rep.res, rep.err
		}
		select { // leading: the loop takes it between two ticks
		case d.reloads <- req:
			rep := <-req.reply
			return rep.res, rep.err
		case <-ctx.Done():
			return ReloadResult{}, fmt.Errorf("daemon: reload not applied: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond): // a term starting or ending: look again
		}
	}
}

// ReloadFailed audits and logs a reload that never reached the daemon (a
// file that does not parse): the running config is kept.
func (d *Daemon) ReloadFailed(ctx context.Context, source string, err error) {
	obs.Fields{Component: "config", Action: "reload", FenceToken: d.token()}.Log(d.cfg.Log.Error().Err(err), 0, "refused").
		Str("file", source).Str("policy_version", d.Policy().Version()).Msg("config reload refused; the running config is kept")
	d.record(ctx, audit.Record{Timestamp: d.cfg.Clock.Now(), Component: "config", Action: "reload", Outcome: "refused",
		Detail: fmt.Sprintf("%s: %v; kept policy %s", source, err, d.Policy().Version()), PolicyVersion: d.Policy().Version()})
}

// applyReload runs on the fleet's owner: the loop when leading.
func (d *Daemon) applyReload(ctx context.Context, r Reload, leading bool) reloadReply {
	old := d.Policy()
	oldPC, newPC := old.PlaybookConfig(), r.Policy.PlaybookConfig()
	res := ReloadResult{OldVersion: old.Version(), NewVersion: r.Policy.Version(), OldMode: oldPC.Mode, NewMode: newPC.Mode}
	for _, ep := range r.Webhooks {
		res.Webhooks = append(res.Webhooks, ep.Name)
	}
	hosts := d.Snapshot().Hosts // a follower: the leader's records
	if leading {
		hosts = d.fleet.Views()
	}
	err := checkReload(old, r.Policy, hosts)
	if err == nil {
		err = d.fleet.SetPolicies(r.Policy.SignalsConfig(), newPC, r.Policy.FleetGroups()) // validates before it changes anything
	}
	if err == nil && len(r.Webhooks) > 0 && d.webhooks == nil {
		err = errors.New("webhooks: this replica has no webhook notifier")
	}
	if err != nil {
		err = fmt.Errorf("daemon: %w: %w", ErrReloadRefused, err)
		d.ReloadFailed(ctx, r.Source, err)
		return reloadReply{res, err}
	}
	d.policy.Store(r.Policy)
	if d.webhooks != nil {
		d.webhooks.SetEndpoints(r.Webhooks)
	}
	d.mu.Lock()
	d.snap.Mode, d.snap.PolicyVersion = newPC.Mode, r.Policy.Version()
	d.mu.Unlock()

	var b strings.Builder
	fmt.Fprintf(&b, "%s: policy %s → %s (%s), mode %s → %s, after_fence %s; webhooks [%s]",
		r.Source, res.OldVersion, res.NewVersion, r.Policy.Source(), oldPC.Mode, newPC.Mode, newPC.AfterFence, strings.Join(res.Webhooks, ", "))
	if len(newPC.Recovery) > 0 {
		fmt.Fprintf(&b, "; recovery %s", playbook.DescribeChain(newPC.Chain()))
	}
	if len(r.Kept) > 0 {
		kept := append([]string(nil), r.Kept...)
		sort.Strings(kept)
		fmt.Fprintf(&b, "; changed but need a restart, running ones kept: %s", strings.Join(kept, ", "))
	}
	res.Detail = b.String()
	log := d.cfg.Log.Info()
	if len(r.Kept) > 0 {
		log = d.cfg.Log.Warn()
	}
	obs.Fields{Component: "config", Action: "reload", FenceToken: d.token()}.Log(log, 0, "ok").Str("file", r.Source).
		Str("policy_version", res.NewVersion).Str("mode", string(newPC.Mode)).Strs("webhooks", res.Webhooks).Strs("restart_needed", r.Kept).
		Msg("config reloaded: " + res.Detail)
	d.record(ctx, audit.Record{Timestamp: d.cfg.Clock.Now(), Component: "config", Action: "reload", Outcome: audit.OutcomeOK,
		Detail: res.Detail, PolicyVersion: res.NewVersion})
	return reloadReply{res, nil}
}

// checkReload refuses what cannot change under a running recovery.
func checkReload(old, next *policy.Policy, hosts []fleet.View) error {
	steps := func(pc playbook.Config) string {
		var s []string
		for _, st := range pc.Chain() {
			s = append(s, string(st.Action)+" when "+string(st.When))
		}
		return strings.Join(s, " → ")
	}
	var busy []string
	var what string
	for _, v := range hosts {
		if v.Host.State != playbook.Rebooting {
			continue
		}
		o, n := old.Group(v.Group).PlaybookConfig(), next.Group(v.Group).PlaybookConfig()
		oc, nc := steps(o), steps(n)
		if oc == nc { // timeouts may change: they are read at each poll
			continue
		}
		busy = append(busy, v.Host.Name)
		what = fmt.Sprintf("after_fence changes from %s to %s", o.AfterFence, n.AfterFence)
		if len(o.Recovery) > 0 || len(n.Recovery) > 0 {
			what = fmt.Sprintf("the recovery chain changes from %s to %s", oc, nc)
		}
	}
	if len(busy) > 0 {
		return fmt.Errorf("%s while %s %s rebooting (its recovery would switch procedure halfway); reload again once no host is rebooting",
			what, strings.Join(busy, ", "), map[bool]string{true: "is", false: "are"}[len(busy) == 1])
	}
	return nil
}
