package lease

import (
	"context"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// Leadership is this replica's term as leader.
type Leadership struct {
	Token int64  // the leader key's create revision: the fencing token
	Key   string // the leader key
	ID    string // this replica
	// Ctx is cancelled when the session is lost or the term ends; all leader
	// work runs under it.
	Ctx context.Context
}

// Elector campaigns for leadership.
type Elector struct {
	Client *clientv3.Client
	Prefix string        // e.g. "/fenced/"
	TTL    time.Duration // session TTL; default 5 s
	ID     string        // replica name, stored as the leader key's value
}

func (e *Elector) electionKey() string { return e.Prefix + "leader" }

// Leader returns the current leader's id and token, or "" when none.
func (e *Elector) Leader(ctx context.Context) (string, int64, error) {
	resp, err := e.Client.Get(ctx, e.electionKey(), clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend), clientv3.WithLimit(1))
	if err != nil {
		return "", 0, fmt.Errorf("lease: read leader: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return "", 0, nil
	}
	return string(resp.Kvs[0].Value), resp.Kvs[0].CreateRevision, nil
}

// Run campaigns until ctx ends; each time this replica is elected it calls
// lead, whose Leadership.Ctx ends when the session is lost. When lead
// returns, the replica resigns and campaigns again.
func (e *Elector) Run(ctx context.Context, lead func(Leadership) error) error {
	ttl := e.TTL
	if ttl <= 0 {
		ttl = 5 * time.Second
	}
	for ctx.Err() == nil {
		if err := e.term(ctx, int(ttl.Seconds()), lead); err != nil && ctx.Err() == nil {
			// etcd unreachable, quorum lost: wait a little and campaign again
			select {
			case <-ctx.Done():
			case <-time.After(ttl / 5):
			}
		}
	}
	return nil
}

// ErrNotLeader is returned by guarded writes when the token is stale.
var ErrNotLeader = errors.New("lease: not the leader (fencing token is stale)")

func (e *Elector) term(ctx context.Context, ttl int, lead func(Leadership) error) error {
	ttl = max(ttl, 2)
	gctx, gcancel := context.WithTimeout(ctx, time.Duration(ttl)*time.Second)
	grant, err := e.Client.Grant(gctx, int64(ttl))
	gcancel()
	if err != nil {
		return fmt.Errorf("lease: grant: %w", err)
	}
	kctx, kcancel := context.WithCancel(ctx)
	defer kcancel()
	acks, err := e.Client.KeepAlive(kctx, grant.ID)
	if err != nil {
		return fmt.Errorf("lease: keepalive: %w", err)
	}
	sess, err := concurrency.NewSession(e.Client, concurrency.WithLease(grant.ID), concurrency.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("lease: session: %w", err)
	}
	defer sess.Close()
	el := concurrency.NewElection(sess, e.electionKey())
	if err := el.Campaign(ctx, e.ID); err != nil {
		return fmt.Errorf("lease: campaign: %w", err)
	}
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Watchdog: stop leading when keepalives stop being acknowledged for half
	// the TTL — well before the lease can expire on the server and another
	// replica be elected. A process that was paused (SIGSTOP, starved) finds
	// its last acknowledgement old the moment it runs again.
	limit := time.Duration(ttl) * time.Second / 2
	go func() {
		last := time.Now()
		check := time.NewTicker(limit / 10)
		defer check.Stop()
		for {
			select {
			case ack, ok := <-acks:
				if !ok || ack.TTL <= 0 {
					cancel()
					return
				}
				last = time.Now()
			case <-check.C:
				if time.Since(last) > limit {
					cancel()
					return
				}
			case <-sess.Done():
				cancel()
				return
			case <-lctx.Done():
				return
			}
		}
	}()
	l := Leadership{Token: el.Rev(), Key: el.Key(), ID: e.ID, Ctx: lctx}
	err = lead(l)
	cancel()
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer rcancel()
	_ = el.Resign(rctx)
	return err
}
