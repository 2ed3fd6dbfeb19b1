package prometheus

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fencedhq/fenced/integration/internal/harness"
)

const (
	viewerToken = "viewer-token-0123456789"
	amToken     = "alertmanager-token-0123456789"
)

// hostView is the part of GET /api/v1/hosts/{host} the test reads.
type hostView struct {
	Host struct {
		State string `json:"state"`
	} `json:"host"`
	Verdict struct {
		D         float64 `json:"d"`
		AlertWarn string  `json:"alert_warn"`
		Hard      string  `json:"hard_failure"`
		Alerts    []struct {
			Name   string  `json:"name"`
			Signal string  `json:"signal"`
			Value  float64 `json:"value"`
			Score  float64 `json:"score"`
		} `json:"alerts"`
	} `json:"verdict"`
}

func call(t *testing.T, method, url, token string, body []byte) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestAlertmanagerAlertsNeverFenceAlone: the real Prometheus evaluates a
// rule that fires an alert carrying the host label of the scripted target
// (cmp-002), routes it to Debian's real Alertmanager, which posts it with
// its bearer token (credentials_file) to a `fenced run --config` replica's
// POST /api/v1/alerts. The replica shows the alert on cmp-002's verdict as
// a cpu_steal_pct value read from the annotation, takes the host to warn
// (dwell 1 s), and never further: the host's own signals are healthy, and
// alerts alone never go past warn. When the rule stops firing, Alertmanager
// posts it resolved and the observation is withdrawn.
func TestAlertmanagerAlertsNeverFenceAlone(t *testing.T) {
	need(t, "prometheus-alertmanager")
	dir := t.TempDir()
	fencedPort, amPort := harness.FreePort(t), harness.FreePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", fencedPort)

	// Alertmanager first: Prometheus sends a firing alert again only after
	// its resend delay (1 min), so the receiver must be up when it fires
	tokenFile := filepath.Join(dir, "am-token")
	write(t, tokenFile, amToken+"\n", 0o600)
	amCfg := filepath.Join(dir, "alertmanager.yml")
	write(t, amCfg, fmt.Sprintf(`route:
  receiver: fenced
  group_by: [alertname, host]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 5s
receivers:
  - name: fenced
    webhook_configs:
      - url: %s/api/v1/alerts
        send_resolved: true
        http_config:
          authorization:
            credentials_file: %s
`, base, tokenFile), 0o644)
	harness.Start(t, "prometheus-alertmanager", "--config.file="+amCfg, "--storage.path="+filepath.Join(dir, "am"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", amPort), "--cluster.listen-address=")
	harness.WaitHTTP(t, fmt.Sprintf("http://127.0.0.1:%d/-/ready", amPort), 30*time.Second)

	// the rule fires while the scripted exporter reports evictions; its
	// annotation carries a steal figure the mapping reads
	rules := filepath.Join(dir, "inbound.rules.yml")
	write(t, rules, `groups:
  - name: inbound
    interval: 1s
    rules:
      - alert: ScriptedHostStealHigh
        expr: kubelet_evictions{job="scripted"} > 0
        annotations:
          steal_pct: "{{ $value }}"
      - alert: ScriptedWatchdog
        expr: up{job="scripted"} == 1
`, 0o644)
	st := startStack(t, fmt.Sprintf(`rule_files: [%q]
alerting:
  alertmanagers:
    - static_configs:
        - targets: ["127.0.0.1:%d"]
`, rules, amPort))
	st.exp.set(0, 45) // no steal of its own; 45 evictions: the rule fires with value 45

	policy, err := os.ReadFile(filepath.Join(harness.Root(), "policies", "default.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	fast := strings.Replace(strings.Replace(string(policy), "warn: 30s", "warn: 1s", 1), "critical: 60s", "critical: 1s", 1)
	if fast == string(policy) {
		t.Fatal("policies/default.yaml: dwell lines not found")
	}
	policyPath := filepath.Join(dir, "policy.yaml")
	write(t, policyPath, fast, 0o644)
	tokens := filepath.Join(dir, "tokens")
	write(t, tokens, "viewer ci "+viewerToken+"\nalerts alertmanager "+amToken+"\n", 0o600)
	cfg := filepath.Join(dir, "fenced.yaml")
	write(t, cfg, fmt.Sprintf(`policy: %s
api:
  listen: 127.0.0.1:%d
  tokens_file: %s
tick: 1s
etcd:
  embedded: {data_dir: %s}
prometheus:
  url: %s
  host_label: host
  queries:
    cpu_steal_pct: '100 * avg by (host) (rate(node_cpu_seconds_total{mode="steal"}[5s]))'
alerts:
  host_label: host
  expire_after: 1m
  map:
    ScriptedHostStealHigh: {signal: cpu_steal_pct, value_from: "annotation:steal_pct"}
`, policyPath, fencedPort, tokens, filepath.Join(dir, "etcd"), st.promURL), 0o644)
	bin := harness.Fenced(t)
	proc := harness.Start(t, bin, "run", "--config", cfg, "--mode", "observe", "--log-json")
	harness.WaitHTTP(t, base+"/healthz", 20*time.Second)

	// every state cmp-002 goes through, polled until the end
	var last hostView
	worst := map[string]bool{}
	look := func() bool {
		code, b := call(t, "GET", base+"/api/v1/hosts/cmp-002", viewerToken, nil)
		if code != 200 {
			return false
		}
		last = hostView{}
		if err := json.Unmarshal(b, &last); err != nil {
			t.Fatalf("host reply: %v\n%s", err, b)
		}
		worst[last.Host.State] = true
		return true
	}
	until := func(what string, timeout time.Duration, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(timeout)
		for !(look() && cond()) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within %s; last %+v\nfenced:\n%s", what, timeout, last, proc.Output())
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
	hasAlert := func() bool {
		for _, a := range last.Verdict.Alerts {
			if a.Name == "ScriptedHostStealHigh" && a.Signal == "cpu_steal_pct" && a.Value == 45 && a.Score == 1 {
				return true
			}
		}
		return false
	}
	start := time.Now()
	until("the alert on cmp-002's verdict", 40*time.Second, hasAlert)
	t.Logf("alert on the verdict %.1fs after the replica started", time.Since(start).Seconds())
	until("cmp-002 at warn on alert evidence", 15*time.Second, func() bool { return last.Host.State == "warn" && last.Verdict.AlertWarn != "" })
	// held well past the critical dwell: never further than warn
	hold := time.Now().Add(5 * time.Second)
	for time.Now().Before(hold) {
		look()
		time.Sleep(250 * time.Millisecond)
	}
	if !hasAlert() || last.Verdict.D > 0.1 || last.Verdict.Hard != "" {
		t.Fatalf("after the hold: %+v", last)
	}

	// the rule stops firing: Alertmanager posts it resolved, the observation goes
	st.exp.set(0, 0)
	until("the resolved alert withdrawn", 30*time.Second, func() bool { return len(last.Verdict.Alerts) == 0 && last.Verdict.AlertWarn == "" })

	for s := range worst {
		if s != "normal" && s != "warn" {
			t.Fatalf("cmp-002 reached %s on alert evidence alone (states seen %v)", s, worst)
		}
	}

	// a malformed notification is refused naming the field; the alerts
	// token reads nothing
	code, b := call(t, "POST", base+"/api/v1/alerts", amToken, []byte(`{"version":"4","status":"firing","alerts":[{"status":"firing"}]}`))
	if code != 400 || !strings.Contains(string(b), `"field": "alerts[0].labels"`) {
		t.Fatalf("malformed notification: %d %s", code, b)
	}
	if code, _ := call(t, "GET", base+"/api/v1/hosts", amToken, nil); code != 403 {
		t.Fatalf("alerts token reading hosts: %d", code)
	}
	_, m := call(t, "GET", base+"/metrics", viewerToken, nil)
	for _, want := range []string{`fenced_alerts_accepted_total{status="firing"} `, `fenced_alerts_accepted_total{status="resolved"} `,
		`fenced_alerts_ignored_total{reason="unmapped"} `, "fenced_alerts_rejected_payloads_total 1"} {
		i := strings.Index(string(m), want)
		if i < 0 || strings.HasPrefix(string(m[i+len(want):]), "0\n") {
			t.Errorf("/metrics: %s missing or zero", want)
		}
	}
	if !strings.Contains(proc.Output(), `"action":"alert_resolved"`) {
		t.Errorf("no log line of the resolved alert")
	}
}

func write(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}
