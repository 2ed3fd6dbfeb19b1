package lease

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/fencedhq/fenced/pkg/audit"
)

var endpoints []string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fenced-etcd-")
	if err != nil {
		panic(err)
	}
	e, err := StartEmbedded(context.Background(), dir, "")
	if err != nil {
		panic(err)
	}
	endpoints = e.Endpoints
	code := m.Run()
	e.Close()
	os.RemoveAll(dir)
	os.Exit(code)
}

func client(t *testing.T) *clientv3.Client {
	t.Helper()
	c, err := Connect(ClientConfig{Endpoints: endpoints})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// prefix is unique per test run (the embedded etcd is shared across -count runs).
func prefix(t *testing.T) string {
	return fmt.Sprintf("/test/%s/%d/", t.Name(), time.Now().UnixNano())
}

// lead runs an elector in the background and hands out its leaderships.
func lead(t *testing.T, ctx context.Context, e *Elector) (<-chan Leadership, chan struct{}) {
	t.Helper()
	got := make(chan Leadership, 4)
	release := make(chan struct{})
	go e.Run(ctx, func(l Leadership) error {
		got <- l
		select {
		case <-l.Ctx.Done():
		case <-release:
		}
		return nil
	})
	return got, release
}

func TestElectionTokenGuardsWrites(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := prefix(t)
	a := &Elector{Client: client(t), Prefix: p, TTL: 2 * time.Second, ID: "a"}
	b := &Elector{Client: client(t), Prefix: p, TTL: 2 * time.Second, ID: "b"}
	store := &Store{Client: a.Client, Prefix: p}

	la, releaseA := lead(t, ctx, a)
	first := <-la
	lb, _ := lead(t, ctx, b)
	select {
	case <-lb:
		t.Fatal("two leaders at once")
	case <-time.After(300 * time.Millisecond):
	}
	if err := store.PutHost(ctx, first, "cmp-017", map[string]string{"state": "critical"}); err != nil {
		t.Fatal(err)
	}
	if id, tok, _ := a.Leader(ctx); id != "a" || tok != first.Token {
		t.Fatalf("leader %s %d, want a %d", id, tok, first.Token)
	}
	close(releaseA) // a steps down; b takes over
	var second Leadership
	select {
	case second = <-lb:
	case <-time.After(5 * time.Second):
		t.Fatal("b never became leader")
	}
	if second.Token <= first.Token {
		t.Fatalf("token did not grow: %d then %d", first.Token, second.Token)
	}
	// the old leader's token is stale: its writes are refused
	if err := store.PutHost(ctx, first, "cmp-017", map[string]string{"state": "normal"}); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("stale write: %v", err)
	}
	if err := store.WriteIntent(ctx, first, Intent{ID: "req-1", Host: "cmp-017", Action: "power_cycle"}); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("stale intent: %v", err)
	}
	hosts, err := Hosts[map[string]string](ctx, store)
	if err != nil || hosts["cmp-017"]["state"] != "critical" {
		t.Fatalf("host record %v %v", hosts, err)
	}
}

func TestLosingTheSessionCancelsLeaderWork(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cli := client(t)
	p := prefix(t)
	e := &Elector{Client: cli, Prefix: p, TTL: 2 * time.Second, ID: "a"}
	ls, _ := lead(t, ctx, e)
	l := <-ls
	// revoke the lease behind the elector's back, as an expired session would
	resp, err := cli.Get(ctx, l.Key)
	if err != nil || len(resp.Kvs) == 0 {
		t.Fatal(err)
	}
	if _, err := cli.Revoke(ctx, clientv3.LeaseID(resp.Kvs[0].Lease)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.Ctx.Done():
	case <-time.After(3 * time.Second):
		t.Fatal("leader context not cancelled after the session was lost")
	}
	if err := (&Store{Client: cli, Prefix: p}).Check(ctx, l); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("check after loss: %v", err)
	}
}

func TestPendingIntents(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cli := client(t)
	p := prefix(t)
	e := &Elector{Client: cli, Prefix: p, TTL: 2 * time.Second, ID: "a"}
	ls, _ := lead(t, ctx, e)
	l := <-ls
	s := &Store{Client: cli, Prefix: p}
	for _, id := range []string{"req-1", "req-2"} {
		if err := s.WriteIntent(ctx, l, Intent{ID: id, Host: "cmp-017", Action: "power_cycle", At: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.WriteOutcome(ctx, l, Outcome{ID: "req-1", OK: true, At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	pend, err := s.Pending(ctx)
	if err != nil || len(pend) != 1 || pend[0].ID != "req-2" || pend[0].Token != l.Token {
		t.Fatalf("pending %+v %v", pend, err)
	}
	// a record of another schema is refused with its key
	if _, err := cli.Put(ctx, p+"hosts/x", `{"schema":99,"data":{}}`); err != nil {
		t.Fatal(err)
	}
	if _, err := Hosts[map[string]any](ctx, s); err == nil {
		t.Fatal("unknown schema accepted")
	}
}

func TestAuditChainInEtcd(t *testing.T) {
	ctx := context.Background()
	cli := client(t)
	st := AuditStore{S: &Store{Client: cli, Prefix: prefix(t)}}
	a, b := audit.New(st, nil), audit.New(st, nil) // two replicas appending
	for i := 0; i < 5; i++ {
		if _, err := a.Append(ctx, audit.Record{Action: "a", Outcome: "ok"}); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Append(ctx, audit.Record{Action: "b", Outcome: "ok"}); err != nil {
			t.Fatal(err)
		}
	}
	if rep, err := a.Verify(ctx); err != nil || rep.Records != 10 {
		t.Fatalf("%+v %v", rep, err)
	}
	// edit a record in etcd directly: verify names it
	if _, err := cli.Put(ctx, st.recKey(3), `{"seq":3,"action":"edited","outcome":"ok","prev_hash":"x","hash":"y"}`); err != nil {
		t.Fatal(err)
	}
	var ve *audit.VerifyError
	if _, err := a.Verify(ctx); !errors.As(err, &ve) || ve.Seq != 3 {
		t.Fatalf("tampering: %v", err)
	}
}

// TestSignedAuditResistsAnEtcdWriter: someone with etcd write access and no
// signing key cuts the chain's tail and rewrites the head to match, or adds
// a field to a stored record; the replica's Verify notices both.
func TestSignedAuditResistsAnEtcdWriter(t *testing.T) {
	ctx := context.Background()
	cli := client(t)
	st := AuditStore{S: &Store{Client: cli, Prefix: prefix(t)}}
	_, key, _ := ed25519.GenerateKey(nil)
	keys, _ := audit.ParsePublicKeys([]string{audit.EncodePublicKey(key.Public().(ed25519.PublicKey))})
	l := audit.New(st, nil)
	if err := l.Signing(audit.NewSigner(key, "r1"), keys, nil); err != nil {
		t.Fatal(err)
	}
	var recs []audit.Record
	for i := 0; i < 6; i++ {
		r, err := l.Append(ctx, audit.Record{HostID: "cn1", Action: "power_off", Outcome: "ok"})
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	if rep, err := l.Verify(ctx); err != nil || rep.Signed != 6 {
		t.Fatalf("%+v %v", rep, err)
	}
	// an extra field in record 2, its hash untouched
	orig, err := cli.Get(ctx, st.recKey(2))
	if err != nil {
		t.Fatal(err)
	}
	extra := strings.Replace(string(orig.Kvs[0].Value), `{"seq":2,`, `{"seq":2,"operator_override":"carol",`, 1)
	if _, err := cli.Put(ctx, st.recKey(2), extra); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Verify(ctx); err == nil || !strings.Contains(err.Error(), "record 2") {
		t.Fatalf("extra field: %v", err)
	}
	if _, err := cli.Put(ctx, st.recKey(2), string(orig.Kvs[0].Value)); err != nil {
		t.Fatal(err)
	}
	// cut records 4 and 5 and point the head at record 3
	for _, seq := range []uint64{5, 4} {
		if _, err := cli.Delete(ctx, st.recKey(seq)); err != nil {
			t.Fatal(err)
		}
	}
	head := fmt.Sprintf(`{"seq":3,"hash":%q}`, recs[3].Hash)
	if _, err := cli.Put(ctx, st.S.key("audit", "head"), head); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Verify(ctx); err == nil || !strings.Contains(err.Error(), "this replica saw record 5") {
		t.Fatalf("cut tail, rewritten head: %v", err)
	}
}
