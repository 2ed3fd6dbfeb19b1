package production

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/fencedhq/fenced/integration/internal/harness"
	"github.com/fencedhq/fenced/pkg/audit"
	"github.com/fencedhq/fenced/pkg/lease"
)

// The API tokens of the replicas: "ROLE NAME TOKEN" lines.
const (
	operatorName  = "carol"
	operatorToken = "op-carol-0123456789abcdef"
	viewerToken   = "view-vic-0123456789abcdef"
)

// fleet is a set of `fenced run --config` replicas sharing an etcd prefix.
type fleet struct {
	t        *testing.T
	dir      string
	prefix   string
	mode     string
	policy   string
	replicas map[string]*replica
	hooks    *webhookSink
	etcdCli  *clientv3.Client
	elector  *lease.Elector
	store    *lease.Store
	pubKeys  []string // every replica's audit public key
	tracing  string   // OTLP/HTTP receiver (host:port) the replicas export to; "" for none
}

type replica struct {
	id   string
	port int
	cfg  string
	proc *harness.Proc
}

// newFleet writes the policy, tokens and one config per replica id; it
// skips the test while `fenced config check` does not accept the config
// (the product side of `fenced run --config` for Nova, BMC, libvirt and
// etcd together is not there yet).
func newFleet(t *testing.T, mode string, ids ...string) *fleet {
	t.Helper()
	return newTracedFleet(t, mode, "", ids...)
}

// newTracedFleet is newFleet whose replicas export their spans over
// OTLP/HTTP to otlp (host:port; "" for none).
func newTracedFleet(t *testing.T, mode, otlp string, ids ...string) *fleet {
	t.Helper()
	f := &fleet{t: t, dir: t.TempDir(), mode: mode, replicas: map[string]*replica{}, tracing: otlp,
		prefix: fmt.Sprintf("/fenced-prod-%s-%d/", strings.ToLower(shortName(t.Name())), time.Now().UnixNano())}
	f.policy = writePolicy(t, f.dir)
	tokens := filepath.Join(f.dir, "tokens")
	if err := os.WriteFile(tokens, []byte(fmt.Sprintf("operator %s %s\nviewer vic %s\n", operatorName, operatorToken, viewerToken)), 0o600); err != nil {
		t.Fatal(err)
	}
	f.hooks = newWebhookSink(t)
	// each replica signs the audit with its own key; every one trusts all
	for _, id := range ids {
		key, err := audit.GenerateKey(filepath.Join(f.dir, id+".key"))
		if err != nil {
			t.Fatal(err)
		}
		f.pubKeys = append(f.pubKeys, audit.EncodePublicKey(key.Public().(ed25519.PublicKey)))
	}
	for _, id := range ids {
		r := &replica{id: id, port: harness.FreePort(t), cfg: filepath.Join(f.dir, id+".yaml")}
		if err := os.WriteFile(r.cfg, []byte(f.config(r, tokens)), 0o644); err != nil {
			t.Fatal(err)
		}
		f.replicas[id] = r
	}
	first := f.replicas[ids[0]].cfg
	check := exec.Command(fencedBin, "config", "check", first)
	check.Env = append(os.Environ(), "FENCED_BMC_PASSWORD="+bmcPassword)
	out, err := check.CombinedOutput()
	if err != nil {
		cfg, _ := os.ReadFile(first)
		t.Skipf("fenced run --config does not take the production config yet (fenced config check: %v: %s); config:\n%s",
			err, strings.TrimSpace(string(out)), cfg)
	}
	cli, err := lease.Connect(lease.ClientConfig{Endpoints: etcd.Endpoints(), DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	f.etcdCli = cli
	f.elector = &lease.Elector{Client: cli, Prefix: f.prefix}
	f.store = &lease.Store{Client: cli, Prefix: f.prefix}
	return f
}

func (f *fleet) config(r *replica, tokens string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# fenced replica %s of %s\n", r.id, f.t.Name())
	fmt.Fprintf(&b, "tick: 2s\npolicy: %s\nhosts: [%s]\n", f.policy, strings.Join(computes, ", "))
	fmt.Fprintf(&b, "api:\n  listen: 127.0.0.1:%d\n  tokens_file: %s\n  public_url: %s\n", r.port, tokens, consoleURL)
	fmt.Fprintf(&b, "etcd:\n  endpoints: [%s]\n  prefix: %s\n  ttl: 5s\n  settle: 10s\n", strings.Join(etcd.Endpoints(), ", "), f.prefix)
	fmt.Fprintf(&b, "nova:\n  report_interval: %s\n", reportInterval) // the cloud: the OS_* variables of the stack's openrc
	fmt.Fprintf(&b, "bmc:\n  check_interval: 10s\n  template:\n    endpoint: %s\n    system_id: \"{host}\"\n    username: %s\n    password_env: FENCED_BMC_PASSWORD\n",
		bmc.url, bmcUser)
	b.WriteString("libvirt:\n  hosts:\n")
	for _, h := range computes {
		fmt.Fprintf(&b, "    %s: %q\n", h, st.LibvirtURI(h))
	}
	b.WriteString("  call_timeout: 1s\n")
	fmt.Fprintf(&b, "webhooks:\n  - url: %s/hook\n", f.hooks.srv.URL)
	fmt.Fprintf(&b, "audit:\n  signing_key_file: %s\n  public_keys: [%s]\n  witness_file: %s\n",
		filepath.Join(f.dir, r.id+".key"), strings.Join(f.pubKeys, ", "), filepath.Join(f.dir, r.id+".witness"))
	if f.tracing != "" {
		fmt.Fprintf(&b, "tracing:\n  endpoint: %s\n  protocol: http\n  insecure: true\n", f.tracing)
	}
	return b.String()
}

// writePolicy is policies/default.yaml with the waits of a test: short
// dwell and windows, a 20 s restore hold, saturation at half the fleet (one
// bad host of three is not a saturated cluster).
func writePolicy(t *testing.T, dir string) string {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(harness.Root(), "policies", "default.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	top := map[string]string{"recover_after": "20s", "restore_hold": "20s"}
	nested := map[string]map[string]string{
		"dwell":       {"warn": "10s", "critical": "20s"},
		"storm_guard": {"saturation_fraction": "0.5"},
	}
	keyLine := regexp.MustCompile(`^(\s*)([a-z_0-9]+):(\s*)([^#{]*?)(\s*#.*)?$`)
	window := regexp.MustCompile(`window: *[0-9]+[smh]`)
	var out []string
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(src))
	for sc.Scan() {
		line := sc.Text()
		m := keyLine.FindStringSubmatch(line)
		if m != nil && m[1] == "" {
			section = m[2]
			if v, ok := top[m[2]]; ok {
				line = m[2] + ": " + v + m[5]
			}
		} else if m != nil && m[4] != "" {
			if v, ok := nested[section][m[2]]; ok {
				line = m[1] + m[2] + ": " + v + m[5]
			}
		}
		if section == "signals" {
			line = window.ReplaceAllStringFunc(line, func(w string) string {
				if strings.HasSuffix(w, " 1m") || strings.HasSuffix(w, ":1m") {
					return "window: 20s"
				}
				return "window: 30s"
			})
		}
		out = append(out, line)
	}
	path := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(path, []byte(strings.Join(out, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command(fencedBin, "policy", "check", path).CombinedOutput(); err != nil {
		t.Fatalf("the test policy does not check: %v\n%s", err, b)
	}
	return path
}

// start starts (or restarts) a replica; it stops when the test ends.
func (f *fleet) start(id string) {
	f.t.Helper()
	r := f.replicas[id]
	r.proc = harness.StartEnv(f.t, []string{"FENCED_BMC_PASSWORD=" + bmcPassword}, fencedBin,
		"run", "--config", r.cfg, "--mode", f.mode, "--id", id, "--log-json")
	harness.WaitHTTP(f.t, f.url(id)+"/healthz", 30*time.Second)
}

// kill sends SIGKILL to a replica and waits for it.
func (f *fleet) kill(id string) {
	f.t.Helper()
	if p := f.replicas[id].proc; p != nil {
		p.Kill()
	}
}

func (f *fleet) url(id string) string { return fmt.Sprintf("http://127.0.0.1:%d", f.replicas[id].port) }

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

// pending lists intents without an outcome.
func (f *fleet) pending() ([]lease.Intent, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return f.store.Pending(ctx)
}

// get does GET path on a replica's API with the viewer token.
func (f *fleet) get(id, path string, v any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", f.url(id)+path, nil)
	req.Header.Set("Authorization", "Bearer "+viewerToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, bytes.TrimSpace(b))
	}
	if s, ok := v.(*string); ok {
		*s = string(b)
		return nil
	}
	return json.Unmarshal(b, v)
}

type hostRow struct {
	Host   string `json:"host"`
	State  string `json:"state"`
	Reason string `json:"reason"`
}

type hostsReply struct {
	Paused bool      `json:"paused"`
	Mode   string    `json:"mode"`
	Hosts  []hostRow `json:"hosts"`
}

// hosts reads GET /api/v1/hosts from the leader (or from id when given).
func (f *fleet) hosts(id string) (hostsReply, error) {
	if id == "" {
		if id = f.leader(); id == "" {
			return hostsReply{}, fmt.Errorf("no leader")
		}
	}
	var rep hostsReply
	err := f.get(id, "/api/v1/hosts", &rep)
	return rep, err
}

// state is host's state on the leader.
func (f *fleet) state(host string) (hostRow, error) {
	rep, err := f.hosts("")
	if err != nil {
		return hostRow{}, err
	}
	for _, h := range rep.Hosts {
		if h.Host == host {
			return h, nil
		}
	}
	return hostRow{}, fmt.Errorf("%s not in the API", host)
}

// waitState polls the leader until host is in one of states.
func (f *fleet) waitState(host string, timeout time.Duration, states ...string) hostRow {
	f.t.Helper()
	var last hostRow
	var lastErr error
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		h, err := f.state(host)
		last, lastErr = h, err
		if err == nil {
			for _, s := range states {
				if h.State == s {
					return h
				}
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	f.t.Fatalf("%s did not reach %v within %s (last %+v, %v)", host, states, timeout, last, lastErr)
	return last
}

// cli runs a fenced client command against the leader with the operator token.
func (f *fleet) cli(args ...string) (string, error) {
	id := f.leader()
	if id == "" {
		return "", fmt.Errorf("no leader to talk to")
	}
	return f.cliAt(id, operatorToken, args...)
}

func (f *fleet) cliAt(id, token string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, fencedBin, append(args, "--server", f.url(id), "--token", token)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("fenced %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// auditRecord is what the tests read of an audit record.
type auditRecord struct {
	Seq       uint64    `json:"seq"`
	Timestamp time.Time `json:"timestamp"`
	Component string    `json:"component"`
	RequestID string    `json:"request_id"`
	HostID    string    `json:"host_id"`
	VMID      string    `json:"vm_id"`
	Action    string    `json:"action"`
	Outcome   string    `json:"outcome"`
	Detail    string    `json:"detail"`
	Operator  string    `json:"operator"`
}

func (r auditRecord) String() string {
	return fmt.Sprintf("#%d %s %s host=%s vm=%s action=%s outcome=%s req=%s op=%s %q", r.Seq, r.Timestamp.Format(time.TimeOnly),
		r.Component, r.HostID, r.VMID, r.Action, r.Outcome, r.RequestID, r.Operator, r.Detail)
}

// audit reads the whole audit log through `fenced audit --json` (JSON lines
// or one JSON array).
func (f *fleet) audit() ([]auditRecord, error) {
	out, err := f.cliAt(f.anyUp(), viewerToken, "audit", "--json")
	if err != nil {
		return nil, err
	}
	out = strings.TrimSpace(out)
	var recs []auditRecord
	if strings.HasPrefix(out, "[") {
		err := json.Unmarshal([]byte(out), &recs)
		return recs, err
	}
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || !strings.HasPrefix(line, "{") {
			continue
		}
		var r auditRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return nil, fmt.Errorf("audit line %q: %w", line, err)
		}
		recs = append(recs, r)
	}
	return recs, nil
}

// anyUp is the leader, or else any replica that runs.
func (f *fleet) anyUp() string {
	if id := f.leader(); id != "" {
		return id
	}
	for id, r := range f.replicas {
		if r.proc != nil && r.proc.Cmd.ProcessState == nil {
			return id
		}
	}
	return ""
}

func dumpAudit(t *testing.T, recs []auditRecord) string {
	var b strings.Builder
	for _, r := range recs {
		b.WriteString(r.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// consoleURL is the replicas' api.public_url: webhooks link under it.
const consoleURL = "https://fenced.example.test/ops"

// webhookSink receives the replicas' webhooks.
type webhookSink struct {
	srv    *httptest.Server
	mu     sync.Mutex
	bodies []string
}

func newWebhookSink(t *testing.T) *webhookSink {
	s := &webhookSink{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.bodies = append(s.bodies, string(b))
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *webhookSink) about(host string) int {
	return s.count(`"` + host + `"`)
}

// count is how many webhooks carry text.
func (s *webhookSink) count(text string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, b := range s.bodies {
		if strings.Contains(b, text) {
			n++
		}
	}
	return n
}

// signalGroup sends sig to a replica's process group.
func signalGroup(p *harness.Proc, sig syscall.Signal) {
	_ = syscall.Kill(-p.Cmd.Process.Pid, sig)
}
