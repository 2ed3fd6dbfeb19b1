package daemon

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.opentelemetry.io/otel/trace"

	"github.com/fencedhq/fenced/pkg/audit"
	"github.com/fencedhq/fenced/pkg/clock"
	"github.com/fencedhq/fenced/pkg/groups"
	"github.com/fencedhq/fenced/pkg/lease"
	"github.com/fencedhq/fenced/pkg/notify"
	"github.com/fencedhq/fenced/pkg/playbook"
	"github.com/fencedhq/fenced/pkg/policy"
	"github.com/fencedhq/fenced/pkg/report"
	"github.com/fencedhq/fenced/pkg/signals"
)

// Backends is what a replica observes and acts on.
type Backends struct {
	Source  Source
	Nova    playbook.ControlPlane
	Gate    playbook.Gate
	Placer  playbook.Placer
	Power   playbook.PowerFencer
	Checker playbook.HostChecker
	Notify  playbook.Notifier
	Control func(host string) (signals.Control, bool)
	// Reconcile tells whether a previous leader's action happened (see HA).
	Reconcile func(ctx context.Context, in lease.Intent) (bool, error)
	// Capacity tells a host's cores, vCPUs and inner ratio for postmortems
	// (the API reads it; nil: unknown).
	Capacity func(host string) report.Capacity
	Hosts    []string
	// EvacuateParallel bounds concurrent evacuations off one host (0: the
	// actor's default, 4).
	EvacuateParallel int
	// Unfenceable reports hosts whose fence path failed its last check.
	Unfenceable func() map[string]string
	// Groups is the group membership in force and GroupsStatus its last
	// refresh from Nova (nil: every host in the default group).
	Groups       func() *groups.Membership
	GroupsStatus func() groups.Status
	// Reserve holds the groups' reserved hosts (nil: none); the replica
	// stores their records in etcd and, while it leads, keeps the spares
	// disabled in Nova.
	Reserve *playbook.Reserve
}

// ReplicaConfig is one HA replica on etcd.
type ReplicaConfig struct {
	Policy   *policy.Policy
	Clock    clock.Clock
	Log      zerolog.Logger
	Tick     time.Duration
	Etcd     *clientv3.Client
	Prefix   string // default "/fenced/"
	ID       string // this replica's name
	TTL      time.Duration
	Settle   time.Duration
	Backends Backends
	Webhooks []notify.Endpoint // on-call, recorded in the audit log
	// ConsoleURL is the console's public base URL: webhooks link each
	// host's incident view under it ("": no link).
	ConsoleURL string
	// Audit signing (nil: an unsigned, hash-linked chain): this replica's
	// signer, the keys the chain is verified against, and its witness.
	Signer  *audit.Signer
	Keys    audit.Keyring
	Witness *audit.Witness
	// Recorder sees what each tick observed (nil: nothing is recorded).
	Recorder Recorder
	// Metrics receives the collectors of the engine, the playbook's actor
	// and the webhook notifier (nil: none).
	Metrics prometheus.Registerer
	// Tracer receives the spans of the engine, the playbook, the etcd store
	// and the webhooks (nil: tracing off).
	Tracer trace.TracerProvider
}

// NewReplica wires a daemon as one replica: host records, intents and the
// audit chain in etcd, the playbook's actor journalling under the fencing
// token, webhooks recorded in the audit log. ctx bounds the webhook worker.
func NewReplica(ctx context.Context, cfg ReplicaConfig) (*Daemon, error) {
	if cfg.Prefix == "" {
		cfg.Prefix = "/fenced/"
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	store := &lease.Store{Client: cfg.Etcd, Prefix: cfg.Prefix, Tracer: cfg.Tracer, Log: cfg.Log}
	auditLog := audit.New(lease.AuditStore{S: store}, cfg.Clock)
	if cfg.Signer != nil || len(cfg.Keys) > 0 || cfg.Witness != nil {
		if err := auditLog.Signing(cfg.Signer, cfg.Keys, cfg.Witness); err != nil {
			return nil, err
		}
	}
	if cfg.Signer != nil {
		// the chain says which key each replica signs with from now on
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := auditLog.Append(actx, audit.Record{Component: "audit", Action: "signing_key", Outcome: audit.OutcomeOK,
			Detail: fmt.Sprintf("replica %s signs its records with key %s (%s)", cfg.ID, cfg.Signer.ID(), audit.EncodePublicKey(cfg.Signer.Public()))})
		cancel()
		if err != nil { // informational: the next record is signed all the same
			cfg.Log.Warn().Err(err).Str("component", "audit").Msg("could not record this replica's signing key in the audit")
		}
	}
	be := cfg.Backends
	notifier := be.Notify
	// the webhook notifier exists without endpoints too: a reload may add them
	wh := notify.New(ctx, notify.Config{Endpoints: cfg.Webhooks, Log: cfg.Log, Recorder: notify.AuditRecorder{Log: auditLog}, Metrics: cfg.Metrics, Tracer: cfg.Tracer, ConsoleURL: cfg.ConsoleURL})
	notifier, whStats := notify.Fanout{notifier, wh}, wh.Counters
	actor := &playbook.Actor{Nova: be.Nova, Gate: be.Gate, Placer: be.Placer, Power: be.Power, Checker: be.Checker,
		Notify: notifier, Clock: cfg.Clock, Log: cfg.Log, ActionTimeout: time.Minute, EvacuateParallel: be.EvacuateParallel, Tracer: cfg.Tracer,
		Reserve: be.Reserve}
	ha := &HA{Elector: &lease.Elector{Client: cfg.Etcd, Prefix: cfg.Prefix, TTL: cfg.TTL, ID: cfg.ID}, Store: store,
		Settle: cfg.Settle, Reconcile: be.Reconcile}
	d, err := newDaemon(Config{Policy: cfg.Policy, Tick: cfg.Tick, Clock: cfg.Clock, Log: cfg.Log.With().Str("replica", cfg.ID).Logger(),
		Audit: auditLog, HA: ha, Source: be.Source, Actor: actor, Control: be.Control, Hosts: be.Hosts,
		Webhooks: whStats, Unfenceable: be.Unfenceable, Metrics: cfg.Metrics, Recorder: cfg.Recorder, Tracer: cfg.Tracer,
		Groups: be.Groups, GroupsStatus: be.GroupsStatus})
	if err != nil {
		return nil, err
	}
	am, err := playbook.NewActionMetrics(cfg.Metrics)
	if err != nil {
		return nil, err
	}
	actor.Paused, actor.Observe = d.Fleet().PausedFor, am.Observe
	if r := be.Reserve; r != nil {
		r.Store = reservedStore{d}
		d.Fleet().SetReserved(r.Status)
	}
	d.webhooks = wh // a reload swaps the policy (every machine's config) and the endpoints
	actor.Journal = d.Journal(&audit.Journal{Log: auditLog, PolicyVersion: cfg.Policy.Version(), Version: func() string { return d.Policy().Version() }})
	return d, nil
}
