package detection

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fencedhq/fenced/integration/internal/harness"
)

const (
	viewerToken   = "view-det-0123456789abcdef"
	operatorToken = "op-det-0123456789abcdef0"
	operatorName  = "dora"
)

// replica is one `fenced run --config` with an embedded etcd of its own.
type replica struct {
	t    *testing.T
	mode string
	port int
	cfg  string
	proc *harness.Proc
}

// startReplica writes a config and the policy into the test's directory,
// starts fenced in mode (observe, approve, auto) and waits for its API; it
// stops when the test ends.
func startReplica(t *testing.T, mode string) *replica {
	t.Helper()
	dir := t.TempDir()
	r := &replica{t: t, mode: mode, port: harness.FreePort(t), cfg: filepath.Join(dir, "fenced.yaml")}
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte(fmt.Sprintf("operator %s %s\nviewer vic %s\n", operatorName, operatorToken, viewerToken)), 0o600); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# fenced replica of %s\n", t.Name())
	fmt.Fprintf(&b, "tick: %s\npolicy: %s\nhosts: [%s]\n", tick, writePolicy(t, dir), strings.Join(computes, ", "))
	fmt.Fprintf(&b, "api:\n  listen: 127.0.0.1:%d\n  tokens_file: %s\n", r.port, tokens)
	fmt.Fprintf(&b, "etcd:\n  embedded:\n    data_dir: %s\n", filepath.Join(dir, "etcd"))
	fmt.Fprintf(&b, "nova:\n  report_interval: %s\n", reportInterval) // the cloud: the OS_* variables of the stack's openrc
	fmt.Fprintf(&b, "bmc:\n  check_interval: 1m\n  template:\n    endpoint: %s\n    system_id: \"{host}\"\n    username: %s\n    password_env: FENCED_BMC_PASSWORD\n",
		bmc.url, bmcUser)
	b.WriteString("libvirt:\n  hosts:\n")
	for _, h := range computes {
		fmt.Fprintf(&b, "    %s: %q\n", h, st.LibvirtURI(h))
	}
	if err := os.WriteFile(r.cfg, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	check := exec.Command(fencedBin, "config", "check", r.cfg)
	check.Env = append(os.Environ(), "FENCED_BMC_PASSWORD="+bmcPassword)
	if out, err := check.CombinedOutput(); err != nil {
		t.Fatalf("fenced config check: %v\n%s\nconfig:\n%s", err, out, b.String())
	}
	r.proc = harness.StartEnv(t, []string{"FENCED_BMC_PASSWORD=" + bmcPassword}, fencedBin,
		"run", "--config", r.cfg, "--mode", mode, "--id", "det", "--log-json")
	harness.WaitHTTP(t, r.url()+"/healthz", 60*time.Second)
	return r
}

// writePolicy is policies/default.yaml with one change: the storm guard's
// saturation_fraction 0.5 instead of 0.3, since one bad host of three
// computes is not a saturated cluster (with 0.3 auto mode would never fence
// here). Thresholds, weights, windows, dwell and hard_failure stay the
// defaults.
func writePolicy(t *testing.T, dir string) string {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(harness.Root(), "policies", "default.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^(\s*saturation_fraction:\s*)[0-9.]+`)
	if !re.Match(src) {
		t.Fatal("policies/default.yaml has no storm_guard.saturation_fraction")
	}
	out := re.ReplaceAll(src, []byte("${1}0.5"))
	path := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command(fencedBin, "policy", "check", path).CombinedOutput(); err != nil {
		t.Fatalf("the test policy does not check: %v\n%s", err, b)
	}
	return path
}

func (r *replica) url() string { return fmt.Sprintf("http://127.0.0.1:%d", r.port) }

func (r *replica) get(path string, v any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", r.url()+path, nil)
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
	return json.Unmarshal(b, v)
}

// hostView is what the tests read of GET /api/v1/hosts/{host}.
type hostView struct {
	Host struct {
		Name   string    `json:"name"`
		State  string    `json:"state"`
		Since  time.Time `json:"since"`
		Reason string    `json:"reason"`
	} `json:"host"`
	Verdict struct {
		D             float64 `json:"d"`
		Blind         bool    `json:"blind"`
		Triggers      []string
		Incoherent    bool   `json:"incoherent"`
		Incoherence   string `json:"incoherence"`
		HardFailure   string `json:"hard_failure"`
		AgentDown     string `json:"agent_down"`
		Contributions []struct {
			Signal string  `json:"signal"`
			Value  float64 `json:"value"`
			Stale  bool    `json:"stale"`
		} `json:"contributions"`
	} `json:"verdict"`
}

// value is the verdict's value of signal (ok false: absent or stale).
func (h hostView) value(signal string) (float64, bool) {
	for _, c := range h.Verdict.Contributions {
		if c.Signal == signal {
			return c.Value, !c.Stale
		}
	}
	return 0, false
}

func (r *replica) host(name string) (hostView, error) {
	var h hostView
	err := r.get("/api/v1/hosts/"+name, &h)
	return h, err
}

// severe: at or beyond critical.
func severe(state string) bool {
	switch state {
	case "critical", "awaiting_approval", "fenced", "rebooting", "restored", "needs_human":
		return true
	}
	return false
}

// waitWatching waits until every compute is normal and fenced reads both
// the heartbeat and libvirt of each (fresh samples), so a trial starts from
// a replica that sees the whole fleet.
func (r *replica) waitWatching(timeout time.Duration) {
	r.t.Helper()
	deadline := time.Now().Add(timeout)
	var last []string
	for time.Now().Before(deadline) {
		last = last[:0]
		ok := true
		for _, c := range computes {
			h, err := r.host(c)
			if err != nil {
				ok = false
				last = append(last, c+": "+err.Error())
				continue
			}
			_, lv := h.value("libvirt_latency_p95_ms")
			_, hb := h.value("heartbeat_lag_s")
			if h.Host.State != "normal" || !lv || !hb {
				ok = false
			}
			last = append(last, fmt.Sprintf("%s %s libvirt=%v heartbeat=%v", c, h.Host.State, lv, hb))
		}
		if ok {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	r.t.Fatalf("fenced does not watch every compute within %s: %s\n%s", timeout, strings.Join(last, "; "), tail(r.proc.Output(), 3000))
}

// cli runs a fenced client command against the replica with the operator token.
func (r *replica) cli(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, fencedBin, append(args, "--server", r.url(), "--token", operatorToken)...).CombinedOutput()
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
}

func (a auditRecord) String() string {
	return fmt.Sprintf("#%d %s %s host=%s vm=%s action=%s outcome=%s %q", a.Seq, a.Timestamp.Format(time.TimeOnly),
		a.Component, a.HostID, a.VMID, a.Action, a.Outcome, a.Detail)
}

// audit reads the whole audit log through `fenced audit --json`.
func (r *replica) audit() ([]auditRecord, error) {
	out, err := r.cli("audit", "--json")
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
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var a auditRecord
		if err := json.Unmarshal([]byte(line), &a); err != nil {
			return nil, fmt.Errorf("audit line %q: %w", line, err)
		}
		recs = append(recs, a)
	}
	return recs, nil
}
