package lease

import (
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// freezer is a TCP proxy to etcd that can stop forwarding in both directions
// while keeping its connections open: to the client, etcd went silent (a
// partition, a paused etcd), without any connection error.
type freezer struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cond   *sync.Cond
	frozen bool
	closed bool
	conns  []net.Conn
}

func newFreezer(t *testing.T, target string) *freezer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &freezer{ln: ln, target: target}
	f.cond = sync.NewCond(&f.mu)
	go f.accept()
	t.Cleanup(f.close)
	return f
}

func (f *freezer) accept() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", f.target)
		if err != nil {
			c.Close()
			continue
		}
		f.mu.Lock()
		f.conns = append(f.conns, c, up)
		f.mu.Unlock()
		go f.pipe(up, c)
		go f.pipe(c, up)
	}
}

func (f *freezer) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			f.mu.Lock()
			for f.frozen && !f.closed {
				f.cond.Wait()
			}
			closed := f.closed
			f.mu.Unlock()
			if closed {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				dst.Close()
			}
			return
		}
	}
}

func (f *freezer) set(frozen bool) {
	f.mu.Lock()
	f.frozen = frozen
	f.cond.Broadcast()
	f.mu.Unlock()
}

func (f *freezer) close() {
	f.ln.Close()
	f.mu.Lock()
	f.closed = true
	f.cond.Broadcast()
	conns := f.conns
	f.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// When etcd stops acknowledging keepalives, the leader must stop leading
// after half the TTL — before the lease can expire on the server and another
// replica be elected. Without the watchdog the client only gives up when its
// own copy of the lease runs out, a full TTL after the last acknowledgement:
// at the same moment the server hands leadership to someone else.
func TestSilentEtcdEndsLeadershipWithinHalfTheTTL(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const ttl = 10 * time.Second
	px := newFreezer(t, strings.TrimPrefix(endpoints[0], "http://"))
	cli := client(t)
	via, err := Connect(ClientConfig{Endpoints: []string{"http://" + px.ln.Addr().String()}})
	if err != nil {
		t.Fatal(err)
	}
	defer via.Close()
	p := prefix(t)
	a := &Elector{Client: via, Prefix: p, TTL: ttl, ID: "a"}
	b := &Elector{Client: cli, Prefix: p, TTL: ttl, ID: "b"}
	la, _ := lead(t, ctx, a)
	var first Leadership
	select {
	case first = <-la:
	case <-time.After(10 * time.Second):
		t.Fatal("a never became leader")
	}
	lb, _ := lead(t, ctx, b)
	time.Sleep(500 * time.Millisecond) // let b campaign behind a

	px.set(true)
	frozeAt := time.Now()
	var stopped time.Duration
	select {
	case <-first.Ctx.Done():
		stopped = time.Since(frozeAt)
	case <-lb:
		t.Fatalf("b was elected %s after etcd went silent for a, while a still led", time.Since(frozeAt).Round(time.Millisecond))
	case <-time.After(2 * ttl):
		t.Fatal("a kept leading although etcd stopped answering")
	}
	// Acknowledgements come every TTL/3, so the last one was at most TTL/3
	// before the freeze: the watchdog fires by TTL/2 (+ its check interval);
	// a full TTL after the last acknowledgement is at least 2/3 TTL.
	if limit := ttl * 6 / 10; stopped > limit {
		t.Fatalf("a stopped leading %s after etcd went silent, want within %s (half the TTL)", stopped.Round(time.Millisecond), limit)
	}
	t.Logf("a stopped leading %s after etcd went silent", stopped.Round(time.Millisecond))
	select {
	case <-lb: // b is elected once a's lease expires on the server
	case <-time.After(2 * ttl):
		t.Fatal("b never became leader")
	}
	px.set(false)
}
