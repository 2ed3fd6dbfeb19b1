package lease

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.opentelemetry.io/otel/trace"

	"github.com/rs/zerolog"

	"github.com/fencedhq/fenced/internal/metrics"
	"github.com/fencedhq/fenced/internal/obs"
	"github.com/fencedhq/fenced/pkg/audit"
	"github.com/fencedhq/fenced/pkg/clock"
)

// SchemaVersion of the records this build writes.
const SchemaVersion = 1

// Store keeps fenced's durable state in etcd under a prefix.
type Store struct {
	Client *clientv3.Client
	Prefix string        // e.g. "/fenced/"
	Op     time.Duration // per-call timeout; default 3 s
	// Tracer receives a span per transaction (nil: tracing off); Log a
	// debug line per transaction with the B.6 fields.
	Tracer trace.TracerProvider
	Log    zerolog.Logger
}

func (s *Store) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	d := s.Op
	if d <= 0 {
		d = 3 * time.Second
	}
	return context.WithTimeout(ctx, d)
}

func (s *Store) key(parts ...string) string { return s.Prefix + strings.Join(parts, "/") }

// guarded commits ops only while l is still the leader.
func (s *Store) guarded(ctx context.Context, l Leadership, action string, ops ...clientv3.Op) error {
	return s.txn(ctx, action, l.Token, func(ctx context.Context) error {
		cctx, cancel := s.ctx(ctx)
		defer cancel()
		resp, err := s.Client.Txn(cctx).If(clientv3.Compare(clientv3.CreateRevision(l.Key), "=", l.Token)).Then(ops...).Commit()
		if err != nil {
			return fmt.Errorf("lease: guarded write: %w", err)
		}
		if !resp.Succeeded {
			return ErrNotLeader
		}
		return nil
	})
}

// txn runs one etcd transaction as a call: a span and a debug line with
// the B.6 fields.
func (s *Store) txn(ctx context.Context, action string, token int64, fn func(context.Context) error) error {
	ctx, call := obs.Start(ctx, obs.Tracer(s.Tracer), clock.Real{}, "etcd.txn "+action,
		obs.Fields{Component: "etcd", Action: action, FenceToken: token}, trace.SpanKindClient)
	err := fn(ctx)
	ev := s.Log.Debug()
	if err != nil {
		ev = s.Log.Warn()
	}
	out := metrics.Outcome(err)
	if errors.Is(err, ErrNotLeader) || errors.Is(err, audit.ErrConflict) {
		out = "refused" // the guard did its job: not an etcd failure
	}
	call.End(ev, out, err).Msg("etcd transaction")
	return err
}

// Check confirms that l is still the leader: the last look before an
// irreversible action.
func (s *Store) Check(ctx context.Context, l Leadership) error {
	if err := l.Ctx.Err(); err != nil {
		return fmt.Errorf("%w: session lost", ErrNotLeader)
	}
	return s.guarded(ctx, l, "check")
}

// Envelope wraps every stored record with its schema version.
type Envelope struct {
	Schema  int             `json:"schema"`
	Token   int64           `json:"fence_token"`
	Updated time.Time       `json:"updated"`
	Data    json.RawMessage `json:"data"`
}

func wrap(token int64, v any) (string, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(Envelope{Schema: SchemaVersion, Token: token, Updated: time.Now().UTC(), Data: data})
	return string(b), err
}

func unwrap(key string, b []byte, v any) error {
	var e Envelope
	if err := json.Unmarshal(b, &e); err != nil {
		return fmt.Errorf("lease: %s: not a record: %w", key, err)
	}
	if e.Schema != SchemaVersion {
		return fmt.Errorf("lease: %s: schema %d, this build reads %d", key, e.Schema, SchemaVersion)
	}
	if err := json.Unmarshal(e.Data, v); err != nil {
		return fmt.Errorf("lease: %s: %w", key, err)
	}
	return nil
}

// PutHost stores a host's record (any JSON value) under the leader guard.
func (s *Store) PutHost(ctx context.Context, l Leadership, host string, rec any) error {
	v, err := wrap(l.Token, rec)
	if err != nil {
		return err
	}
	return s.guarded(obs.With(ctx, obs.Fields{HostID: host}), l, "put_host", clientv3.OpPut(s.key("hosts", host), v))
}

// Hosts reads every host record into fresh values made by newRec.
func Hosts[T any](ctx context.Context, s *Store) (map[string]T, error) {
	return records[T](ctx, s, "hosts")
}

// PutReserved stores a reserved host's record (docs/groups.md, Reserved
// hosts: a spare, or taken into service) under the leader guard.
func (s *Store) PutReserved(ctx context.Context, l Leadership, host string, rec any) error {
	v, err := wrap(l.Token, rec)
	if err != nil {
		return err
	}
	return s.guarded(obs.With(ctx, obs.Fields{HostID: host}), l, "put_reserved", clientv3.OpPut(s.key("reserved", host), v))
}

// Reserved reads every reserved host's record, by host.
func Reserved[T any](ctx context.Context, s *Store) (map[string]T, error) {
	return records[T](ctx, s, "reserved")
}

// records reads every record under dir, by the rest of its key.
func records[T any](ctx context.Context, s *Store, dir string) (map[string]T, error) {
	cctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.Client.Get(cctx, s.key(dir)+"/", clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("lease: read %s: %w", dir, err)
	}
	out := map[string]T{}
	for _, kv := range resp.Kvs {
		var v T
		if err := unwrap(string(kv.Key), kv.Value, &v); err != nil {
			return nil, err
		}
		out[strings.TrimPrefix(string(kv.Key), s.key(dir)+"/")] = v
	}
	return out, nil
}

// Intent is an irreversible action about to be taken.
type Intent struct {
	ID     string    `json:"request_id"`
	Host   string    `json:"host"`
	Action string    `json:"action"`
	Target string    `json:"target,omitempty"`
	Token  int64     `json:"fence_token"`
	At     time.Time `json:"at"`
	Detail string    `json:"detail,omitempty"`
}

// Outcome is what came of an intent.
type Outcome struct {
	ID    string    `json:"request_id"`
	OK    bool      `json:"ok"`
	Error string    `json:"error,omitempty"`
	At    time.Time `json:"at"`
	Token int64     `json:"fence_token"`
}

// WriteIntent records an intent under the guard; ErrNotLeader means the
// action must not run.
func (s *Store) WriteIntent(ctx context.Context, l Leadership, in Intent) error {
	in.Token = l.Token
	v, err := wrap(l.Token, in)
	if err != nil {
		return err
	}
	return s.guarded(obs.With(ctx, obs.Fields{HostID: in.Host, RequestID: in.ID, VMID: in.Target}), l, "intent", clientv3.OpPut(s.key("intents", in.ID), v))
}

// WriteOutcome records an intent's outcome under the guard.
func (s *Store) WriteOutcome(ctx context.Context, l Leadership, o Outcome) error {
	o.Token = l.Token
	v, err := wrap(l.Token, o)
	if err != nil {
		return err
	}
	return s.guarded(obs.With(ctx, obs.Fields{RequestID: o.ID}), l, "outcome", clientv3.OpPut(s.key("outcomes", o.ID), v))
}

// Pending lists intents without an outcome, oldest first.
func (s *Store) Pending(ctx context.Context) ([]Intent, error) {
	cctx, cancel := s.ctx(ctx)
	defer cancel()
	ins, err := s.Client.Get(cctx, s.key("intents")+"/", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend))
	if err != nil {
		return nil, fmt.Errorf("lease: read intents: %w", err)
	}
	outs, err := s.Client.Get(cctx, s.key("outcomes")+"/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, fmt.Errorf("lease: read outcomes: %w", err)
	}
	done := map[string]bool{}
	for _, kv := range outs.Kvs {
		done[strings.TrimPrefix(string(kv.Key), s.key("outcomes")+"/")] = true
	}
	var out []Intent
	for _, kv := range ins.Kvs {
		var in Intent
		if err := unwrap(string(kv.Key), kv.Value, &in); err != nil {
			return nil, err
		}
		if !done[in.ID] {
			out = append(out, in)
		}
	}
	return out, nil
}

// AuditStore keeps the audit chain in etcd: create-only records and a head
// moved in the same transaction.
type AuditStore struct{ S *Store }

var _ audit.Store = AuditStore{}

func (a AuditStore) recKey(seq uint64) string {
	return a.S.key("audit", "rec", fmt.Sprintf("%020d", seq))
}

// Append writes record seq unless it exists or the head is not seq-1.
func (a AuditStore) Append(ctx context.Context, seq uint64, hash string, data []byte) error {
	return a.S.txn(ctx, "audit_append", 0, func(ctx context.Context) error { return a.append(ctx, seq, hash, data) })
}

func (a AuditStore) append(ctx context.Context, seq uint64, hash string, data []byte) error {
	cctx, cancel := a.S.ctx(ctx)
	defer cancel()
	head := a.S.key("audit", "head")
	headCmp := clientv3.Compare(clientv3.Version(head), "=", 0)
	if seq > 0 {
		prev, err := a.S.Client.Get(cctx, a.recKey(seq-1))
		if err != nil {
			return fmt.Errorf("lease: audit: %w", err)
		}
		if len(prev.Kvs) == 0 {
			return audit.ErrConflict
		}
		h, err := a.S.Client.Get(cctx, head)
		if err != nil {
			return fmt.Errorf("lease: audit head: %w", err)
		}
		if len(h.Kvs) == 0 {
			return audit.ErrConflict
		}
		headCmp = clientv3.Compare(clientv3.ModRevision(head), "=", h.Kvs[0].ModRevision)
		var hd struct{ Seq uint64 }
		if json.Unmarshal(h.Kvs[0].Value, &hd) != nil || hd.Seq != seq-1 {
			return audit.ErrConflict
		}
	}
	hv, _ := json.Marshal(struct {
		Seq  uint64 `json:"seq"`
		Hash string `json:"hash"`
	}{seq, hash})
	resp, err := a.S.Client.Txn(cctx).
		If(clientv3.Compare(clientv3.Version(a.recKey(seq)), "=", 0), headCmp).
		Then(clientv3.OpPut(a.recKey(seq), string(data)), clientv3.OpPut(head, string(hv))).Commit()
	if err != nil {
		return fmt.Errorf("lease: audit append: %w", err)
	}
	if !resp.Succeeded {
		return audit.ErrConflict
	}
	return nil
}

// Range returns every record from seq on.
func (a AuditStore) Range(ctx context.Context, from uint64) ([][]byte, error) {
	cctx, cancel := a.S.ctx(ctx)
	defer cancel()
	resp, err := a.S.Client.Get(cctx, a.recKey(from), clientv3.WithRange(clientv3.GetPrefixRangeEnd(a.S.key("audit", "rec")+"/")))
	if err != nil {
		return nil, fmt.Errorf("lease: audit read: %w", err)
	}
	out := make([][]byte, len(resp.Kvs))
	for i, kv := range resp.Kvs {
		out[i] = kv.Value
	}
	return out, nil
}

// Head returns the last record's seq and hash.
func (a AuditStore) Head(ctx context.Context) (uint64, string, bool, error) {
	cctx, cancel := a.S.ctx(ctx)
	defer cancel()
	resp, err := a.S.Client.Get(cctx, a.S.key("audit", "head"))
	if err != nil {
		return 0, "", false, fmt.Errorf("lease: audit head: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return 0, "", false, nil
	}
	var h struct {
		Seq  uint64 `json:"seq"`
		Hash string `json:"hash"`
	}
	if err := json.Unmarshal(resp.Kvs[0].Value, &h); err != nil {
		return 0, "", false, errors.New("lease: audit head is not JSON")
	}
	return h.Seq, h.Hash, true, nil
}

// Command is an operator's write sent through etcd by a replica that is not
// the leader; the leader applies it and answers with a Result.
type Command struct {
	ID       string    `json:"id"`
	Host     string    `json:"host,omitempty"`
	Group    string    `json:"group,omitempty"` // a group's pause and resume
	Event    string    `json:"event"`
	Operator string    `json:"operator"`
	Reason   string    `json:"reason"`
	At       time.Time `json:"at"`
}

// Result answers a Command.
type Result struct {
	ID      string          `json:"id"`
	Error   string          `json:"error,omitempty"`
	Changes json.RawMessage `json:"changes,omitempty"`
}

// PutCommand queues a command for the leader (any replica may).
func (s *Store) PutCommand(ctx context.Context, c Command) error {
	v, err := wrap(0, c)
	if err != nil {
		return err
	}
	cctx, cancel := s.ctx(ctx)
	defer cancel()
	_, err = s.Client.Put(cctx, s.key("commands", c.ID), v)
	if err != nil {
		return fmt.Errorf("lease: queue command: %w", err)
	}
	return nil
}

// CommandsPrefix is the key prefix the leader watches.
func (s *Store) CommandsPrefix() string { return s.key("commands") + "/" }

// DecodeCommand reads a command from its stored value.
func DecodeCommand(key string, b []byte) (Command, error) {
	var c Command
	err := unwrap(key, b, &c)
	return c, err
}

// Answer records the result and removes the command, under the guard.
func (s *Store) Answer(ctx context.Context, l Leadership, r Result) error {
	v, err := wrap(l.Token, r)
	if err != nil {
		return err
	}
	return s.guarded(obs.With(ctx, obs.Fields{RequestID: r.ID}), l, "answer", clientv3.OpPut(s.key("results", r.ID), v), clientv3.OpDelete(s.key("commands", r.ID)))
}

// AwaitResult waits for a command's result (until ctx ends) and removes it.
func (s *Store) AwaitResult(ctx context.Context, id string) (Result, error) {
	key := s.key("results", id)
	w := s.Client.Watch(clientv3.WithRequireLeader(ctx), key)
	get, err := s.Client.Get(ctx, key)
	if err != nil {
		return Result{}, fmt.Errorf("lease: await result: %w", err)
	}
	raw := []byte(nil)
	if len(get.Kvs) > 0 {
		raw = get.Kvs[0].Value
	}
	for raw == nil {
		select {
		case <-ctx.Done():
			return Result{}, fmt.Errorf("lease: no answer from the leader: %w", ctx.Err())
		case wr, ok := <-w:
			if !ok {
				return Result{}, fmt.Errorf("lease: await result: watch closed")
			}
			for _, ev := range wr.Events {
				if ev.Type == clientv3.EventTypePut {
					raw = ev.Kv.Value
				}
			}
		}
	}
	var r Result
	if err := unwrap(key, raw, &r); err != nil {
		return Result{}, err
	}
	_, _ = s.Client.Delete(ctx, key)
	return r, nil
}

// Fleet is the fleet-wide state an operator sets: it survives every
// replica's restart.
type Fleet struct {
	Paused   bool      `json:"paused"`
	Operator string    `json:"operator,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	At       time.Time `json:"at"`
	// Groups holds the pause of each paused group, by group name (absent:
	// not paused).
	Groups map[string]GroupPause `json:"groups,omitempty"`
}

// GroupPause is an operator's pause of one group.
type GroupPause struct {
	Operator string    `json:"operator,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	At       time.Time `json:"at"`
}

// PutFleet stores the fleet-wide state under the leader guard.
func (s *Store) PutFleet(ctx context.Context, l Leadership, f Fleet) error {
	v, err := wrap(l.Token, f)
	if err != nil {
		return err
	}
	return s.guarded(ctx, l, "put_fleet", clientv3.OpPut(s.key("fleet"), v))
}

// GetFleet reads the fleet-wide state (the zero value when never set).
func (s *Store) GetFleet(ctx context.Context) (Fleet, error) {
	cctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.Client.Get(cctx, s.key("fleet"))
	if err != nil {
		return Fleet{}, fmt.Errorf("lease: read fleet state: %w", err)
	}
	var f Fleet
	if len(resp.Kvs) == 0 {
		return f, nil
	}
	if err := unwrap(string(resp.Kvs[0].Key), resp.Kvs[0].Value, &f); err != nil {
		return Fleet{}, err
	}
	return f, nil
}
