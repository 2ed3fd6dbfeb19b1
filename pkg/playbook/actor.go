package playbook

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/fencedhq/fenced/internal/metrics"
	"github.com/fencedhq/fenced/internal/obs"
	"github.com/fencedhq/fenced/pkg/clock"
	"github.com/fencedhq/fenced/pkg/fencing"
	"github.com/fencedhq/fenced/pkg/signals"
)

// Server is what the playbook needs to know of a server on a host.
type Server struct {
	ID        string
	Name      string
	Status    string // Nova status: ACTIVE, SHUTOFF, ERROR, …
	Running   bool   // power_state running
	TaskState string // Nova task_state; "" when no task runs
	VCPUs     int    // flavor size, for placement headroom
	RAMMB     int
	// Evacuable: the server passes the deployment's evacuable filter
	// (a flavor extra spec, image property or aggregate metadata); true when
	// no filter is configured. Servers that are not evacuable stay on the
	// host and come back with it.
	Evacuable bool
}

// ControlPlane is what the playbook needs from Nova.
type ControlPlane interface {
	// Disable stops scheduling on the host; the implementation records the
	// reason as fenced's (pkg/nova prefixes it with "fenced: ").
	Disable(ctx context.Context, host, reason string) error
	Enable(ctx context.Context, host string) error
	ForceDown(ctx context.Context, host string, down bool) error
	Servers(ctx context.Context, host string) ([]Server, error)
	// LiveMigrate moves a server and returns once the migration finished or failed.
	LiveMigrate(ctx context.Context, serverID, dest string) error
	// Evacuate rebuilds a server of a fenced (forced down, powered off) host
	// on dest and returns once it runs there or failed. When an evacuation
	// of the server is already under way (a previous leader started it), it
	// waits for that one instead of starting another.
	Evacuate(ctx context.Context, serverID, dest string) error
}

// GateAnswer says whether live migration may run off a host, and why.
type GateAnswer struct {
	Allowed     bool
	Reasons     []string
	Destination string
}

// Gate decides whether the management path is fit for live migration.
type Gate interface {
	Check(ctx context.Context, host string) GateAnswer
}

// PowerFencer powers a host off and on out of band. Each call returns only
// once the BMC verified the resulting power state.
type PowerFencer interface {
	PowerCycle(ctx context.Context, host string) error
	PowerOff(ctx context.Context, host string) error
	PowerOn(ctx context.Context, host string) error
	// PowerState reads the power state (fencing.On, fencing.Off, …); an
	// unreachable BMC is an error, never "off".
	PowerState(ctx context.Context, host string) (fencing.PowerState, error)
}

// Placement is where one server goes.
type Placement struct {
	Server Server
	Dest   string
	// Reserved: Dest is a spare of the source's group (Reserve), taken
	// into service before the evacuation.
	Reserved bool
}

// Placer chooses evacuation destinations from execution truth: hosts whose
// verdict is normal, lowest d first, each with placement headroom for the
// servers' flavors. Servers it cannot place are returned with the reason.
type Placer interface {
	Place(ctx context.Context, host string, servers []Server) (placed []Placement, unplaced map[string]string)
}

// HostChecker reports whether a power-cycled host is back: powered on, a
// fresh heartbeat, libvirt responsive.
type HostChecker interface {
	Back(ctx context.Context, host string) (bool, error)
}

// Notification goes to on-call.
type Notification struct {
	Host     string
	State    State
	Reason   string
	D        float64
	Deadline time.Time // approval deadline, when one is pending
	Onset    time.Time // start of the episode: groups notifications into one incident
	// OnTimeout is what happens at Deadline (approval.on_timeout), when one
	// is pending.
	OnTimeout OnTimeout
}

// Notifier tells people.
type Notifier interface {
	Notify(ctx context.Context, n Notification)
}

// Intent is an action about to be taken.
type Intent struct {
	ID     string // request id; a journal assigns one when empty
	Host   string
	Action string // disable, force_down, live_migrate, power_cycle, unfence, …
	Target string // a server id, when the action is about one
	Detail string
	At     time.Time
}

// Journal records intents before actions run and their outcomes after. A
// leader-guarded journal refuses an intent when leadership is lost; the
// action is then not taken.
type Journal interface {
	Intent(ctx context.Context, in Intent) (id string, err error)
	Outcome(ctx context.Context, id string, err error) error
}

// Note is an audit record that is not an action: a step of the recovery
// chain starting or ending, a server the instance filter leaves alone.
type Note struct {
	ID      string // request id; the start and the end of a step share one
	Host    string
	Action  string // "recovery STEP", or the action a skipped server was spared (live_migrate, evacuate, verify_servers)
	Target  string // a server id, when the note is about one
	Outcome string // started, ok, failed, timeout, skipped
	Detail  string
	At      time.Time
}

// NoteJournal is a Journal that also records notes (pkg/audit's and the
// daemon's do). A note never gates an action: one that cannot be written is
// logged and the recovery goes on (its actions are still journalled).
type NoteJournal interface {
	Note(ctx context.Context, n Note) error
}

// Actor performs the entry actions of each state. Everything it decides
// per host (mode, the recovery chain, the instance filter) comes from the
// Config of the host's machine, passed with each call.
type Actor struct {
	Nova ControlPlane
	Gate Gate
	// Placer chooses evacuation destinations (after_fence evacuate).
	Placer Placer
	// Reserve holds the groups' reserved hosts (nil: none): a spare the
	// placer picks is enabled before the evacuations (reserved.go), and a
	// spare is never enabled by an unfence.
	Reserve *Reserve
	Power   PowerFencer
	Checker HostChecker
	Notify  Notifier
	Journal Journal
	Clock   clock.Clock
	Log     zerolog.Logger
	// Tracer receives a span per state entry, recovery step and action
	// (nil: tracing off).
	Tracer trace.TracerProvider
	// Scope, when set, returns the context a host's actions run in: the
	// span of its incident, and the B.6 fields the daemon knows (the
	// fencing token, the host's steal). Called off the engine's goroutine.
	Scope func(ctx context.Context, host string) context.Context
	// ActionTimeout bounds each external call; 0 means 2 minutes.
	ActionTimeout time.Duration
	// Paused reports an operator's pause of the host, fleet-wide or in its
	// group: entry actions then change nothing, as in observe mode (nil:
	// never paused).
	Paused func(host string) bool
	// Observe, when set, sees every action's latency and result (metrics).
	Observe func(action string, took time.Duration, err error)
	// EvacuateParallel bounds concurrent evacuations off one host (default 4).
	EvacuateParallel int
	// Async, when set, runs entry actions and the recovery's polls off the
	// engine's goroutine (the daemon bounds how many run at once); their
	// outcome must come back through Machine.Complete on the engine's
	// goroutine. Nil runs them inline (simulate, tests).
	Async func(host string, job Job)
	// ReadTimeout bounds each read the playbook waits for on the engine's
	// loop: the gate, a server list, a power state, the host check,
	// placement (default 15 s). A BMC or Nova that does not answer then costs
	// one bounded wait, and the next tick tries again.
	ReadTimeout time.Duration
}

// read runs f under ReadTimeout.
func (a *Actor) read(ctx context.Context, f func(context.Context)) {
	d := a.ReadTimeout
	if d <= 0 {
		d = 15 * time.Second
	}
	rctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	f(rctx)
}

// scope is ctx for h's actions (Scope), with h's B.6 fields.
func (a *Actor) scope(ctx context.Context, h *Host) context.Context {
	if a.Scope != nil {
		ctx = a.Scope(ctx, h.Name)
	}
	return obs.With(ctx, obs.Fields{HostID: h.Name})
}

// step runs f as a span of h's incident named name (a state's entry, a
// recovery poll) and logs it at debug.
func (a *Actor) step(ctx context.Context, h *Host, name string, f func(context.Context) (Event, string)) (Event, string) {
	ctx, call := obs.Start(a.scope(ctx, h), obs.Tracer(a.Tracer), a.Clock, "fenced."+name,
		obs.Fields{Component: "playbook", HostID: h.Name, Action: name}, trace.SpanKindInternal)
	ev, why := f(ctx)
	out := "ok"
	if ev != "" {
		out = string(ev)
	}
	call.Set(attribute.String("state", string(h.State)), attribute.String("reason", why))
	call.End(a.Log.Debug(), out, nil).Str("state", string(h.State)).Str("why", why).Msg("playbook step")
	return ev, why
}

// do journals and runs one action: its span (the intent's write, the
// calls it makes and the outcome's write are its children) and its B.6
// line carry the request id of its audit records.
func (a *Actor) do(ctx context.Context, h *Host, action, target, detail string, f func(context.Context) error) error {
	id := obs.NewRequestID()
	ctx, call := obs.Start(ctx, obs.Tracer(a.Tracer), a.Clock, "fenced.action "+action,
		obs.Fields{Component: "playbook", RequestID: id, HostID: h.Name, VMID: target, Action: action}, trace.SpanKindInternal)
	if _, err := a.Journal.Intent(ctx, Intent{ID: id, Host: h.Name, Action: action, Target: target, Detail: detail, At: a.Clock.Now()}); err != nil {
		err = fmt.Errorf("playbook: %s %s: journal intent: %w", action, h.Name, err)
		call.End(a.Log.Warn(), "refused", err).Msg("action")
		return err
	}
	timeout := a.ActionTimeout
	if timeout == 0 {
		timeout = 2 * time.Minute
	}
	actx, cancel := context.WithTimeout(ctx, timeout)
	start := a.Clock.Now()
	runErr := f(actx)
	cancel()
	if a.Observe != nil {
		a.Observe(action, a.Clock.Now().Sub(start), runErr)
	}
	jerr := a.Journal.Outcome(ctx, id, runErr)
	call.End(a.Log.Info(), metrics.Outcome(runErr), runErr).Msg("action")
	if jerr != nil {
		return fmt.Errorf("playbook: %s %s: journal outcome: %w", action, h.Name, jerr)
	}
	if runErr != nil {
		return fmt.Errorf("playbook: %s %s: %w", action, h.Name, runErr)
	}
	return nil
}

func (a *Actor) notify(ctx context.Context, h *Host) {
	if a.Notify != nil {
		n := Notification{Host: h.Name, State: h.State, Reason: h.Reason, D: h.LastD, Onset: h.Onset}
		if h.State == AwaitingApproval {
			n.Deadline, n.OnTimeout = h.ApprovalDeadline, h.ApprovalOnTimeout
		}
		a.Notify.Notify(ctx, n)
	}
}

// unfence reverses fenced's control-plane actions on a host.
func (a *Actor) unfence(ctx context.Context, h *Host) error {
	if h.ControlFenced {
		if err := a.do(ctx, h, "force_down_off", "", "", func(c context.Context) error { return a.Nova.ForceDown(c, h.Name, false) }); err != nil {
			return err
		}
		h.ControlFenced = false
	}
	if a.Reserve.Spare(h.Name) {
		return nil // a spare stays disabled (reserved.go)
	}
	return a.do(ctx, h, "enable", "", "", func(c context.Context) error { return a.Nova.Enable(c, h.Name) })
}

// freeze stops new scheduling on the host, unless it is already frozen:
// scheduling runs only in normal (a restored host stays disabled until its
// hold is over), so a host coming from anywhere else was disabled on the way.
func (a *Actor) freeze(ctx context.Context, h *Host, from State) {
	if from != Normal {
		return
	}
	why := "execution divergence: " + h.Reason
	if strings.HasPrefix(h.Reason, signals.AgentDownReason) {
		why = h.Reason // the agent is down, not execution
	}
	if err := a.do(ctx, h, "disable", "", h.Reason, func(c context.Context) error {
		return a.Nova.Disable(c, h.Name, why)
	}); err != nil {
		a.Log.Warn().Str("component", "playbook").Str("host_id", h.Name).Err(err).Msg("freeze scheduling failed")
	}
}

// notifyOnly says whether entering st only notifies (the notifier queues;
// it never waits for a webhook): such entry actions run inline even with
// an Async runner, so the host is never busy waiting for an operator.
func (a *Actor) notifyOnly(st State) bool {
	return st == AwaitingApproval || st == NeedsHuman
}

// Enter performs the entry actions of h.State under cfg (the host's
// machine's). It returns the follow-up event its outcome implies (and why),
// or "" to wait for the next tick.
func (a *Actor) Enter(ctx context.Context, cfg Config, h *Host, from State) (Event, string) {
	return a.step(ctx, h, "enter "+string(h.State), func(ctx context.Context) (Event, string) { return a.enter(ctx, cfg, h, from) })
}

func (a *Actor) enter(ctx context.Context, cfg Config, h *Host, from State) (Event, string) {
	a.notify(ctx, h)
	observe := cfg.Mode == ModeObserve || (a.Paused != nil && a.Paused(h.Name) && h.State != Normal && h.State != Restored)
	switch h.State {
	case Warn:
		if !observe {
			a.freeze(ctx, h, from)
		}
	case Critical:
		if observe || h.ControlFenced {
			return "", ""
		}
		// force_down first: once Nova sees the service down, disabling it
		// no longer makes nova-api call the (possibly frozen) compute and
		// wait for its RPC timeout
		if err := a.do(ctx, h, "force_down", "", h.Reason, func(c context.Context) error { return a.Nova.ForceDown(c, h.Name, true) }); err != nil {
			a.freeze(ctx, h, from)
			return EvGiveUp, "control-plane fence failed: " + err.Error()
		}
		h.ControlFenced = true
		a.freeze(ctx, h, from)
	case Fenced:
		return a.enterFenced(ctx, cfg, h)
	case Rebooting:
		return a.enterRebooting(ctx, cfg, h)
	case Restored:
		servers, err := a.servers(ctx, h.Name)
		if err != nil {
			return EvGiveUp, "cannot verify servers: " + err.Error()
		}
		servers = a.filter(ctx, cfg, h, servers, "verify_servers", "not counted in the restored check")
		var bad []string
		for _, s := range servers {
			if s.Status != "ACTIVE" || !s.Running {
				bad = append(bad, s.Name+"="+s.Status)
			}
		}
		if len(bad) > 0 {
			return EvGiveUp, "servers not running after recovery: " + strings.Join(bad, ", ")
		}
		// the host stays disabled and forced down until restore_hold is over
		// (Normal's entry unfences)
	case Normal:
		if observe || from == Normal {
			return "", ""
		}
		if err := a.unfence(ctx, h); err != nil {
			a.Log.Warn().Str("component", "playbook").Str("host_id", h.Name).Err(err).Msg("unfence failed")
		}
	}
	return "", ""
}

// Poll is called on ticks in states that wait for the outside world, with
// the tick's time and the host's machine's cfg; it returns an event when
// the wait is over.
func (a *Actor) Poll(ctx context.Context, cfg Config, h *Host, now time.Time) (Event, string) {
	if h.State != Rebooting {
		return "", ""
	}
	return a.step(ctx, h, "recover", func(ctx context.Context) (Event, string) { return a.poll(ctx, cfg, h, now) })
}

// back reads whether the host came back.
func (a *Actor) back(ctx context.Context, h *Host) bool {
	if a.Checker == nil {
		return false
	}
	var back bool
	var err error
	a.read(ctx, func(c context.Context) { back, err = a.Checker.Back(c, h.Name) })
	return err == nil && back
}

// Progress of the power_cycle and evacuate steps in rebooting, kept in
// Host.Step.
const (
	StepOff       = "off"       // power off verified
	StepEvacuated = "evacuated" // every evacuable server handled
	StepOn        = "on"        // power on verified; waiting for the host
)

// recoverStep runs the evacuate recovery from where h.Step says: power off
// (verified), evacuate the servers, power on. Each step is idempotent — it
// reads the BMC's power state or Nova's server list first — so a new leader
// resuming a record never repeats an action that already happened.
//
// Off the engine's goroutine (Async) each step is a job of its own, so that
// the record in etcd says how far the recovery got before the next action
// starts: a new leader resuming it never goes back to an earlier step (a
// power off after the old leader's power on). Inline, the steps follow in
// one call.
func (a *Actor) recoverStep(ctx context.Context, cfg Config, h *Host) (Event, string) {
	if h.Step == "" {
		if ev, why := a.ensurePower(ctx, h, fencing.Off, "power_off", a.Power.PowerOff); ev != "" || why != "" {
			return ev, why
		}
		h.Step = StepOff
		if a.Async != nil {
			return "", ""
		}
	}
	var unplaced []string
	if h.Step == StepOff {
		servers, err := a.servers(ctx, h.Name)
		if err != nil {
			return "", "cannot list servers (retrying): " + err.Error()
		}
		unplaced = a.evacuate(ctx, h, a.filter(ctx, cfg, h, servers, "evacuate", "not evacuated"))
		h.Step = StepEvacuated
		if a.Async != nil && len(unplaced) == 0 {
			return "", "" // (servers left behind: power on in this job, then give up, as inline)
		}
	}
	if h.Step == StepEvacuated {
		if ev, why := a.ensurePower(ctx, h, fencing.On, "power_on", a.Power.PowerOn); ev != "" || why != "" {
			return ev, why
		}
		h.Step = StepOn
	}
	if len(unplaced) > 0 {
		return EvGiveUp, "servers not evacuated: " + strings.Join(unplaced, "; ")
	}
	return "", ""
}

// servers lists the host's servers under ReadTimeout.
func (a *Actor) servers(ctx context.Context, host string) (out []Server, err error) {
	a.read(ctx, func(c context.Context) { out, err = a.Nova.Servers(c, host) })
	return out, err
}

// ensurePower brings the host to the power state want, unless the BMC
// already reads it: the action runs (journalled) only when needed. It
// returns a note to retry on the next tick, or give_up when the action
// failed.
func (a *Actor) ensurePower(ctx context.Context, h *Host, want fencing.PowerState, action string, f func(context.Context, string) error) (Event, string) {
	var st fencing.PowerState
	var err error
	a.read(ctx, func(c context.Context) { st, err = a.Power.PowerState(c, h.Name) })
	if err != nil {
		return "", "cannot read the power state (retrying): " + err.Error()
	}
	if st == want {
		return "", ""
	}
	if err := a.do(ctx, h, action, "", h.Reason, func(c context.Context) error { return f(c, h.Name) }); err != nil {
		return EvGiveUp, strings.ReplaceAll(action, "_", " ") + " failed: " + err.Error()
	}
	return "", ""
}

// evacuate rebuilds the host's evacuable servers on the placer's
// destinations, a bounded number at a time, each journalled with its own
// request id. It returns the servers it could not move, with why.
func (a *Actor) evacuate(ctx context.Context, h *Host, servers []Server) []string {
	var todo []Server
	for _, s := range servers {
		if s.Evacuable {
			todo = append(todo, s)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	var failed []string
	if a.Placer == nil {
		for _, s := range todo {
			failed = append(failed, s.Name+" ("+s.ID+"): no placer configured")
		}
		return failed
	}
	var placed []Placement
	var unplaced map[string]string
	a.read(ctx, func(c context.Context) { placed, unplaced = a.Placer.Place(c, h.Name, todo) })
	for id, why := range unplaced {
		failed = append(failed, id+": "+why)
	}
	placed, notTaken := a.takeReserved(ctx, h, placed)
	failed = append(failed, notTaken...)
	par := a.EvacuateParallel
	if par <= 0 {
		par = 4
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, par)
	for _, p := range placed {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			err := a.do(ctx, h, "evacuate", p.Server.ID, "to "+p.Dest, func(c context.Context) error {
				return a.Nova.Evacuate(c, p.Server.ID, p.Dest)
			})
			if err != nil {
				mu.Lock()
				failed = append(failed, p.Server.Name+" ("+p.Server.ID+"): "+err.Error())
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	sort.Strings(failed)
	return failed
}
