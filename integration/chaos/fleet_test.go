package chaos

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/fencedhq/fenced/integration/internal/harness"
	"github.com/fencedhq/fenced/pkg/lease"
)

// fleet is three `fenced run --config` replicas sharing an etcd prefix, in
// auto mode, each with its own audit signing key when the build has them.
type fleet struct {
	t        *testing.T
	dir      string
	prefix   string
	ids      []string
	replicas map[string]*replica
	signed   bool
	cli      *clientv3.Client
	elector  *lease.Elector
}

type replica struct {
	id   string
	port int
	cfg  string
	proc *harness.Proc
}

// chaosPolicy is policies/default.yaml with the waits of a test: the
// paper's thresholds and weights, short windows and dwell, a restore hold
// of two ticks (every episode waits for it before its host is normal), a
// storm guard that lets ten hosts be fenced at once, and a power-cycle
// interval short enough for a host to serve again in a later trial.
const chaosPolicy = `version: 1
mode: auto
after_fence: evacuate
thresholds: {d_warn: 0.4, d_crit: 0.7, hysteresis: 0.1}
stale_after: 15s
dwell: {warn: 4s, critical: 6s}
recover_after: 10s
restore_hold: 4s
approval: {timeout: 15m}
abort_cooldown: 30m
timeouts: {fenced: 10m, reboot: 5m}
min_power_cycle_interval: 2m
storm_guard: {max_concurrent: 10, max_fraction: 0.1, saturation_fraction: 0.5}
hard_failure: {libvirt_probes: 3, heartbeat_intervals: 2}
signals:
  cpu_steal_pct:              {warn: 10,  crit: 25,   weight: 0.25, window: 10s, agg: min}
  libvirt_latency_p95_ms:     {warn: 200, crit: 500,  weight: 0.20, window: 10s, agg: p95}
  heartbeat_lag_s:            {warn: 15,  crit: 30,   weight: 0.20, agg: last, trigger: true}
  runqueue_per_core:          {warn: 2,   crit: 4,    weight: 0.15, window: 10s, agg: mean}
  kubelet_sched_delay_p95_ms: {warn: 500, crit: 1000, weight: 0.10, window: 10s, agg: p95}
  io_latency_p99_ms:          {warn: 100, crit: 300,  weight: 0.10, window: 10s, agg: p99}
  libvirt_timeout_pct:        {warn: 0.5, crit: 1,    weight: 0,    window: 10s, agg: mean}
  pod_evictions_per_min:      {warn: 1,   crit: 5,    weight: 0,    window: 10s, agg: mean}
  mgmt_cpu_share_pct:         {warn: 20,  crit: 40,   weight: 0,    window: 10s, agg: mean}
`

func newFleet(t *testing.T) *fleet {
	t.Helper()
	f := &fleet{t: t, dir: t.TempDir(), ids: []string{"r1", "r2", "r3"}, replicas: map[string]*replica{},
		prefix: fmt.Sprintf("/fenced-chaos-%d/", time.Now().UnixNano())}
	policy := filepath.Join(f.dir, "policy.yaml")
	if err := os.WriteFile(policy, []byte(chaosPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(fencedBin, "policy", "check", policy).CombinedOutput(); err != nil {
		t.Fatalf("the chaos policy does not check: %v\n%s", err, out)
	}
	keys, pubs := f.keys()
	for _, id := range f.ids {
		r := &replica{id: id, port: harness.FreePort(t), cfg: filepath.Join(f.dir, id+".yaml")}
		if err := os.WriteFile(r.cfg, []byte(f.config(r, policy, keys[id], pubs)), 0o644); err != nil {
			t.Fatal(err)
		}
		f.replicas[id] = r
	}
	check := exec.Command(fencedBin, "config", "check", f.replicas["r1"].cfg)
	check.Env = append(os.Environ(), "FENCED_BMC_PASSWORD="+bmcPass)
	if out, err := check.CombinedOutput(); err != nil {
		cfg, _ := os.ReadFile(f.replicas["r1"].cfg)
		t.Fatalf("fenced config check: %v\n%s\nconfig:\n%s", err, out, cfg)
	}
	cli, err := lease.Connect(lease.ClientConfig{Endpoints: etcd.Endpoints(), DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	f.cli = cli
	f.elector = &lease.Elector{Client: cli, Prefix: f.prefix}
	for _, id := range f.ids {
		f.start(id)
	}
	f.waitLeader(60*time.Second, "")
	// every host known and evaluated before the test injects anything
	waitFor(t, "every host evaluated with fresh signals", 90*time.Second, func() bool {
		hs, err := f.hosts(f.anyURL())
		if err != nil {
			return false
		}
		n := 0
		for _, h := range hs {
			if strings.HasPrefix(h.Host, "chaos-") && !h.Blind && h.State == "normal" {
				n++
			}
		}
		return n == nHosts
	})
	return f
}

// keys makes one audit signing key per replica with `fenced audit keygen`
// when this build has it; without it the audit is verified without
// signatures (f.signed false).
func (f *fleet) keys() (map[string]string, []string) {
	keys := map[string]string{}
	var pubs []string
	re := regexp.MustCompile(`public key: (\S+)`)
	for _, id := range f.ids {
		path := filepath.Join(f.dir, id+"-audit.key")
		out, err := exec.Command(fencedBin, "audit", "keygen", "--out", path).CombinedOutput()
		m := re.FindSubmatch(out)
		if err != nil || m == nil {
			f.t.Logf("no audit signing in this build (fenced audit keygen: %v): the audit is verified without signatures", err)
			return nil, nil
		}
		keys[id] = path
		pubs = append(pubs, string(m[1]))
	}
	f.signed = true
	return keys, pubs
}

func (f *fleet) config(r *replica, policy, key string, pubs []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# fenced replica %s of integration/chaos\n", r.id)
	fmt.Fprintf(&b, "tick: %s\npolicy: %s\n", tick, policy)
	fmt.Fprintf(&b, "api:\n  listen: 127.0.0.1:%d\n", r.port)
	fmt.Fprintf(&b, "etcd:\n  endpoints: [%s]\n  prefix: %s\n  ttl: %s\n  settle: %s\n", strings.Join(etcd.Endpoints(), ", "), f.prefix, ttl, settle)
	fmt.Fprintf(&b, "nova:\n  report_interval: %s\n  call_timeout: 5s\n  disable_timeout: 5s\n", reportInterval) // the cloud: the OS_* variables of the stack's openrc
	fmt.Fprintf(&b, "bmc:\n  check_interval: 30s\n  template:\n    endpoint: %s\n    system_id: \"{host}\"\n    username: %s\n    password_env: FENCED_BMC_PASSWORD\n",
		bmc.url, bmcUser)
	fmt.Fprintf(&b, "prometheus:\n  url: %s\n  host_label: host\n  timeout: 2s\n  queries:\n", promURL)
	names := make([]string, 0, len(promQueries))
	for k := range promQueries {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(&b, "    %s: %s\n", k, promQueries[k])
	}
	if key != "" {
		fmt.Fprintf(&b, "audit:\n  signing_key_file: %s\n  public_keys: [%s]\n", key, strings.Join(pubs, ", "))
	}
	return b.String()
}

// start starts (or restarts) a replica; it stops when the test ends.
func (f *fleet) start(id string) {
	f.t.Helper()
	r := f.replicas[id]
	r.proc = harness.StartEnv(f.t, []string{"FENCED_BMC_PASSWORD=" + bmcPass}, fencedBin,
		"run", "--config", r.cfg, "--mode", "auto", "--id", id, "--log-json")
	harness.WaitHTTP(f.t, f.url(id)+"/healthz", 60*time.Second)
}

// signal sends sig to a replica's process group; SIGKILL also waits for it.
func (f *fleet) signal(id string, sig syscall.Signal) {
	p := f.replicas[id].proc
	if sig == syscall.SIGKILL {
		p.Kill()
		return
	}
	_ = syscall.Kill(-p.Cmd.Process.Pid, sig)
}

func (f *fleet) url(id string) string { return fmt.Sprintf("http://127.0.0.1:%d", f.replicas[id].port) }

// anyURL is the API of a replica that runs (the leader's when there is one).
func (f *fleet) anyURL() string {
	if l := f.leader(); l != "" {
		return f.url(l)
	}
	for _, id := range f.ids {
		if p := f.replicas[id].proc; p != nil && p.Cmd.ProcessState == nil {
			return f.url(id)
		}
	}
	return f.url(f.ids[0])
}

// leader is the id of the replica holding the lease ("" when none).
func (f *fleet) leader() string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	id, _, err := f.elector.Leader(ctx)
	if err != nil {
		return ""
	}
	return id
}

func (f *fleet) waitLeader(timeout time.Duration, not string) string {
	f.t.Helper()
	var id string
	waitFor(f.t, "a leader", timeout, func() bool { id = f.leader(); return id != "" && id != not })
	return id
}

// hostRow is a row of GET /api/v1/hosts.
type hostRow struct {
	Host  string    `json:"host"`
	State string    `json:"state"`
	Since time.Time `json:"since"`
	D     float64   `json:"d"`
	Blind bool      `json:"blind"`
}

type hostsReply struct {
	Paused bool      `json:"paused"`
	Hosts  []hostRow `json:"hosts"`
}

func getJSON(url string, v any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func (f *fleet) hostsReply(base string) (hostsReply, error) {
	var rep hostsReply
	err := getJSON(base+"/api/v1/hosts", &rep)
	return rep, err
}

func (f *fleet) hosts(base string) (map[string]hostRow, error) {
	rep, err := f.hostsReply(base)
	if err != nil {
		return nil, err
	}
	out := map[string]hostRow{}
	for _, h := range rep.Hosts {
		out[h.Host] = h
	}
	return out, nil
}

// state is a host's state as the leader (or any replica) reports it.
func (f *fleet) state(host string) string {
	hs, err := f.hosts(f.anyURL())
	if err != nil {
		return ""
	}
	return hs[host].State
}

// metrics reads a replica's /metrics as name{labels} → value.
func metrics(base string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			out[line[:i]] = v
		}
	}
	return out, sc.Err()
}

// run runs a CLI command against a replica's API.
func (f *fleet) run(base string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, fencedBin, append(args, "--server", base)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.Bytes(), fmt.Errorf("fenced %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.Bytes(), nil
}

// record is an audit record as `fenced audit --json` prints it.
type record struct {
	Seq        uint64    `json:"seq"`
	Timestamp  time.Time `json:"timestamp"`
	RequestID  string    `json:"request_id"`
	Host       string    `json:"host_id"`
	Action     string    `json:"action"`
	Outcome    string    `json:"outcome"`
	Operator   string    `json:"operator"`
	FenceToken int64     `json:"fence_token"`
	Detail     string    `json:"detail"`
}

// audit reads the whole audit log through a replica's API.
func (f *fleet) audit() ([]record, error) {
	var out []byte
	var err error
	for i := 0; i < 5; i++ { // a replica may be between leaders
		if out, err = f.run(f.anyURL(), "audit", "--json"); err == nil {
			break
		}
		time.Sleep(time.Second)
	}
	if err != nil {
		return nil, err
	}
	var recs []record
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var r record
		if err := dec.Decode(&r); err != nil {
			return nil, fmt.Errorf("audit --json: %w", err)
		}
		recs = append(recs, r)
	}
	return recs, nil
}

func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
