package ha

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/fencedhq/fenced/integration/internal/harness"
	"github.com/fencedhq/fenced/pkg/lab"
	"github.com/fencedhq/fenced/pkg/lease"
)

// etcdCluster is the harness's three Debian etcd members on loopback, with
// the names the tests use.
type etcdCluster struct {
	*harness.EtcdCluster
	t *testing.T
}

func startCluster(t *testing.T) *etcdCluster {
	t.Helper()
	return &etcdCluster{EtcdCluster: harness.StartEtcdCluster(t), t: t}
}

func (c *etcdCluster) kill(i int) { c.Kill(i) }

// restart starts a killed member again with its data.
func (c *etcdCluster) restart(i int) {
	if err := c.Restart(i); err != nil {
		c.t.Fatal(err)
	}
}

func (c *etcdCluster) endpoints() []string { return c.Endpoints() }

func (c *etcdCluster) clientv3() *clientv3.Client {
	cli, err := lease.Connect(lease.ClientConfig{Endpoints: c.endpoints(), DialTimeout: 2 * time.Second})
	if err != nil {
		c.t.Fatal(err)
	}
	return cli
}

// world is one lab server and three fenced replicas on an etcd cluster.
type world struct {
	t        *testing.T
	etcd     *etcdCluster
	labURL   string
	lab      *lab.Remote
	bin      string
	replicas map[string]*harness.Proc
	ports    map[string]int
	cli      *clientv3.Client
	store    *lease.Store
	elector  *lease.Elector
	onset    time.Time // about when the lab's victim starts starving
}

type labOpts struct {
	starveAfter time.Duration
	hosts       int // default 12
}

// The lab's incident, as every test here sets it up: the victim's load
// ramps up over ramp and its heartbeats stop two thirds of the way in
// (pkg/lab); its heartbeat lag, 10 s at the stall, crosses the default
// policy's 30 s trigger 20 s later, and the leader fences it at the next
// tick. The tests measure none of this, only who acts and how often, so
// the ramp and the reboot are short.
const (
	ramp       = 3 * time.Second
	rebootTime = 3 * time.Second
	// powerOffAfter is about when the power off comes after onset: the
	// stall 2 s in, the trigger 20 s later, critical and fenced a tick
	// each (TestFailoverTime logs it for each trial).
	powerOffAfter = 26 * time.Second
	// killWindow is where TestFailoverTime kills the leader: from onset
	// through the power off (3 s at the BMC), the power on (3 s) and the
	// reboot (3 s), to about when the host is restored.
	killWindow = powerOffAfter + 14*time.Second
)

func startWorld(t *testing.T, lo labOpts) *world {
	t.Helper()
	w := &world{t: t, etcd: startCluster(t), bin: harness.Fenced(t), replicas: map[string]*harness.Proc{}, ports: map[string]int{}}
	lp := harness.FreePort(t)
	w.labURL = fmt.Sprintf("http://127.0.0.1:%d", lp)
	hosts := lo.hosts
	if hosts == 0 {
		hosts = 12
	}
	w.onset = time.Now().Add(lo.starveAfter)
	harness.Start(t, w.bin, "lab", "serve", "--listen", fmt.Sprintf("127.0.0.1:%d", lp), "--hosts", strconv.Itoa(hosts),
		"--starve-after", lo.starveAfter.String(), "--ramp", ramp.String(), "--reboot-time", rebootTime.String(), "--power-delay", "3s")
	harness.WaitHTTP(t, w.labURL+"/lab/v1/actions", 20*time.Second)
	w.lab = &lab.Remote{URL: w.labURL, Replica: "test"}
	w.cli = w.etcd.clientv3()
	t.Cleanup(func() { w.cli.Close() })
	w.store = &lease.Store{Client: w.cli, Prefix: "/fenced/"}
	w.elector = &lease.Elector{Client: w.cli, Prefix: "/fenced/"}
	for _, id := range []string{"r1", "r2", "r3"} {
		w.ports[id] = harness.FreePort(t)
		w.startReplica(id)
	}
	return w
}

func (w *world) startReplica(id string) {
	w.replicas[id] = harness.Start(w.t, w.bin, "run", "--lab", w.labURL, "--etcd-endpoints", strings.Join(w.etcd.endpoints(), ","),
		"--id", id, "--listen", fmt.Sprintf("127.0.0.1:%d", w.ports[id]), "--mode", "auto", "--tick", "2s",
		"--ttl", "5s", "--settle", "5s", "--log-json")
}

func (w *world) signal(id string, sig syscall.Signal) {
	_ = syscall.Kill(-w.replicas[id].Cmd.Process.Pid, sig)
	if sig == syscall.SIGKILL {
		_ = w.replicas[id].Cmd.Wait()
	}
}

// leader returns the current leader's id ("" when none or etcd unreachable).
func (w *world) leader() string {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	id, _, err := w.elector.Leader(ctx)
	if err != nil {
		return ""
	}
	return id
}

func (w *world) waitFor(what string, timeout time.Duration, cond func() bool) {
	w.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			w.t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// actions returns the lab's record of POSTs (host actions) and collections.
func (w *world) actions() ([]lab.Action, []lab.Action) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	a, c, err := w.lab.Actions(ctx)
	if err != nil {
		w.t.Fatalf("lab actions: %v", err)
	}
	return a, c
}

func count(actions []lab.Action, host, action string) int {
	n := 0
	for _, a := range actions {
		if a.Host == host && a.Action == action {
			n++
		}
	}
	return n
}

// hostState reads a host's state from etcd (the leader's persisted record).
func (w *world) hostState(host string) string {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	recs, err := lease.Hosts[struct{ State string }](ctx, w.store)
	if err != nil {
		return ""
	}
	return recs[host].State
}

func (w *world) pending() ([]lease.Intent, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return w.store.Pending(ctx)
}

// TestMain runs the tests that set `t.Parallel()` four at a time unless
// -test.parallel says otherwise: each brings up its own etcd cluster, lab
// and replicas and spends most of its minute waiting on the lab's
// incident, not on the CPU.
func TestMain(m *testing.M) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		_ = flag.Set("test.parallel", "4")
	}
	os.Exit(m.Run())
}
