package daemon_test

import (
	"context"
	"errors"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/fencedhq/fenced/pkg/audit"
	"github.com/fencedhq/fenced/pkg/clock"
	"github.com/fencedhq/fenced/pkg/lab"
	"github.com/fencedhq/fenced/pkg/lease"
	"github.com/fencedhq/fenced/pkg/playbook"
	"github.com/fencedhq/fenced/pkg/policy"
)

// losingAuditStore is an audit store during whose write this replica loses
// its leadership: the record lands, then the leader's lease is revoked, as an
// expired session (a long GC pause, a partition) would.
type losingAuditStore struct {
	audit.Store
	cli    *clientv3.Client
	leader string // the election key prefix
	lost   bool
}

func (s *losingAuditStore) Append(ctx context.Context, seq uint64, hash string, data []byte) error {
	if err := s.Store.Append(ctx, seq, hash, data); err != nil {
		return err
	}
	resp, err := s.cli.Get(ctx, s.leader, clientv3.WithPrefix())
	if err != nil {
		return err
	}
	for _, kv := range resp.Kvs {
		if _, err := s.cli.Revoke(ctx, clientv3.LeaseID(kv.Lease)); err != nil {
			return err
		}
		s.lost = true
	}
	return nil
}

// The intent is written under the leader's token, but leadership can be lost
// while the intent is being recorded. The journal looks at the token once
// more right before handing the irreversible step to the actor: an intent
// that outlived its leader must not be acted on.
func TestIntentRefusedWhenLeadershipIsLostWhileRecordingIt(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd")
	}
	endpoints := startEtcd(t)
	clk := clock.NewScaled(60)
	world := lab.NewWorld(clk.Now, 30*time.Second, policy.Default().SignalsConfig())
	d := replica(t, endpoints, "a", world, clk, "observe")
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go d.Run(ctx)
	waitUntil(t, "a leads", 10*time.Second, func() bool { return d.Snapshot().Leader })

	cli, err := lease.Connect(lease.ClientConfig{Endpoints: endpoints})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	// the audit chain under its own prefix, so the replica's own records do not race it
	st := &losingAuditStore{Store: lease.AuditStore{S: &lease.Store{Client: cli, Prefix: "/token-test/"}}, cli: cli, leader: "/fenced/leader"}
	j := d.Journal(&audit.Journal{Log: audit.New(st, clk)})
	ictx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	id, err := j.Intent(ictx, playbook.Intent{Host: "lab-003", Action: "power_cycle", At: clk.Now()})
	if !st.lost {
		t.Fatal("the test did not take the leadership away")
	}
	if !errors.Is(err, lease.ErrNotLeader) {
		t.Fatalf("intent %q accepted after leadership was lost (err %v): the power cycle would run under a stale token", id, err)
	}
}
