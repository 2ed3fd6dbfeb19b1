package harness

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// EtcdCluster is three members of Debian's etcd-server on loopback, each in a
// process group of its own.
type EtcdCluster struct {
	dir     string
	opts    EtcdOptions
	names   []string
	client  []int
	peer    []int
	initial string

	mu    sync.Mutex
	procs []*Proc
}

// EtcdOptions tune the members. Zero values take the defaults.
type EtcdOptions struct {
	Token       string // --initial-cluster-token; default "fenced-test"
	HeartbeatMS int    // default 100
	ElectionMS  int    // default 1000
	Ready       time.Duration
}

// StartEtcdCluster starts three members in a test's temporary directory,
// waits until the cluster serves a linearizable read, and stops it when the
// test ends.
func StartEtcdCluster(t testing.TB) *EtcdCluster {
	t.Helper()
	c, err := NewEtcdCluster(t.TempDir(), EtcdOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for i, p := range c.procList() {
				t.Logf("etcd %s output (tail):\n%s", c.names[i], tail(p.Output(), 3000))
			}
		}
		c.Stop()
	})
	return c
}

// NewEtcdCluster starts three members with their data under dir and waits
// until the cluster is ready. Without a test to stop it, the caller calls
// Stop (TestMain).
func NewEtcdCluster(dir string, o EtcdOptions) (*EtcdCluster, error) {
	if _, err := exec.LookPath("etcd"); err != nil {
		return nil, fmt.Errorf("etcd not found: install Debian's etcd-server (integration/deps/etcd.txt; make deps does)")
	}
	if o.Token == "" {
		o.Token = "fenced-test"
	}
	if o.HeartbeatMS == 0 {
		o.HeartbeatMS = 100
	}
	if o.ElectionMS == 0 {
		o.ElectionMS = 1000
	}
	if o.Ready == 0 {
		o.Ready = 30 * time.Second
	}
	c := &EtcdCluster{dir: dir, opts: o, procs: make([]*Proc, 3)}
	var parts []string
	for i := 1; i <= 3; i++ {
		cp, err := PickPort()
		if err != nil {
			return nil, err
		}
		pp, err := PickPort()
		if err != nil {
			return nil, err
		}
		c.names = append(c.names, fmt.Sprintf("n%d", i))
		c.client, c.peer = append(c.client, cp), append(c.peer, pp)
		parts = append(parts, fmt.Sprintf("n%d=http://127.0.0.1:%d", i, pp))
	}
	c.initial = strings.Join(parts, ",")
	for i := range c.names {
		if err := c.start(i, "new"); err != nil {
			c.Stop()
			return nil, err
		}
	}
	if err := c.WaitReady(o.Ready); err != nil {
		out := ""
		for i, p := range c.procList() {
			out += fmt.Sprintf("--- etcd %s\n%s\n", c.names[i], tail(p.Output(), 2000))
		}
		c.Stop()
		return nil, fmt.Errorf("%v\n%s", err, out)
	}
	return c, nil
}

func (c *EtcdCluster) start(i int, state string) error {
	p, err := Spawn(nil, "etcd", "--name", c.names[i], "--data-dir", filepath.Join(c.dir, c.names[i]),
		"--listen-client-urls", fmt.Sprintf("http://127.0.0.1:%d", c.client[i]),
		"--advertise-client-urls", fmt.Sprintf("http://127.0.0.1:%d", c.client[i]),
		"--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", c.peer[i]),
		"--initial-advertise-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", c.peer[i]),
		"--initial-cluster", c.initial, "--initial-cluster-state", state, "--initial-cluster-token", c.opts.Token,
		"--heartbeat-interval", fmt.Sprint(c.opts.HeartbeatMS), "--election-timeout", fmt.Sprint(c.opts.ElectionMS),
		"--log-level", "warn")
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.procs[i] = p
	c.mu.Unlock()
	return nil
}

func (c *EtcdCluster) procList() []*Proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*Proc
	for _, p := range c.procs {
		if p != nil {
			out = append(out, p)
		}
	}
	return out
}

// Endpoints are the members' client URLs.
func (c *EtcdCluster) Endpoints() []string {
	var out []string
	for _, p := range c.client {
		out = append(out, fmt.Sprintf("http://127.0.0.1:%d", p))
	}
	return out
}

// Kill sends SIGKILL to member i (0, 1 or 2) and waits for it.
func (c *EtcdCluster) Kill(i int) {
	c.mu.Lock()
	p := c.procs[i]
	c.mu.Unlock()
	if p != nil {
		p.Kill()
	}
}

// Restart starts a killed member again with its data.
func (c *EtcdCluster) Restart(i int) error { return c.start(i, "existing") }

// WaitReady waits until some member answers /health with a quorum behind it.
func (c *EtcdCluster) WaitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last string
	for {
		for _, ep := range c.Endpoints() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			req, _ := http.NewRequestWithContext(ctx, "GET", ep+"/health", nil)
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				last = strings.TrimSpace(string(b))
				if resp.StatusCode == 200 && strings.Contains(last, `"health":"true"`) {
					cancel()
					return nil
				}
			} else {
				last = err.Error()
			}
			cancel()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("etcd cluster not ready within %s: %s", timeout, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Stop stops every member and removes nothing (the data directory belongs to
// the caller).
func (c *EtcdCluster) Stop() {
	for _, p := range c.procList() {
		p.Stop()
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
