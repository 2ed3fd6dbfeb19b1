package prometheus

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/fencedhq/fenced/integration/internal/harness"
)

// TestMetricsOfADevRun: a real Prometheus scrapes `fenced run --dev` with
// the shipped alert rules loaded. Every rule evaluates against the real
// series without error, and FencedExecutionIncoherence goes pending for the
// starving host; after an approved power cycle, a scrape of /metrics passes
// `promtool check metrics` with no complaint, and every fenced_ family in it
// is documented in docs/operations.md.
func TestMetricsOfADevRun(t *testing.T) {
	need(t, "prometheus", "promtool")
	bin := harness.Fenced(t)
	port := harness.FreePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	harness.Start(t, bin, harness.DevArgs(port)...)
	harness.WaitHTTP(t, base+"/healthz", 20*time.Second)

	dir := t.TempDir()
	rules := filepath.Join(harness.Root(), "deploy", "prometheus", "fenced.rules.yml")
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: fenced
    static_configs:
      - targets: ["127.0.0.1:%d"]
`, rules, port)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	promPort := harness.FreePort(t)
	harness.Start(t, "prometheus", "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", promPort))
	prom := fmt.Sprintf("http://127.0.0.1:%d", promPort)
	harness.WaitHTTP(t, prom+"/-/ready", 60*time.Second)

	// lab-007 starves; while it awaits approval it is execution-incoherent
	harness.WaitState(t, base, "lab-007", 60*time.Second, "awaiting_approval")
	deadline := time.Now().Add(30 * time.Second)
	var last []promRule
	for {
		var err error
		last, err = promRules(prom)
		if err == nil && incoherentAlert(last, "lab-007") && allEvaluated(last) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus: no FencedExecutionIncoherence alert for lab-007, or rules not all evaluated (%v):\n%+v", err, last)
		}
		time.Sleep(500 * time.Millisecond)
	}
	for _, r := range last {
		if r.Health != "ok" {
			t.Errorf("rule %s: health %s: %s", r.Name, r.Health, r.LastError)
		}
	}

	// an approved power cycle: the actor's and the Redfish fencer's
	// histograms get their series
	out, err := exec.Command(bin, "approve", "lab-007", "--server", base, "--operator", "ci", "--reason", "metrics test").CombinedOutput()
	if err != nil {
		t.Fatalf("fenced approve: %v\n%s", err, out)
	}
	harness.WaitState(t, base, "lab-007", 60*time.Second, "restored", "normal")
	metrics := scrape(t, base+"/metrics")
	for _, want := range []string{`fenced_action_duration_seconds_count{action="power_off",outcome="ok"} 1`,
		`fenced_redfish_operation_duration_seconds_count{operation="power_off",outcome="ok"} 1`,
		`fenced_build_info{commit=`, "\nfenced_leader 1\n", `fenced_host_state{host="lab-007",state=`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if out := runPromtool(t, dir, []byte(metrics), "check", "metrics"); strings.TrimSpace(out) != "" {
		t.Errorf("promtool check metrics complains:\n%s", out)
	}

	doc, err := os.ReadFile(filepath.Join(harness.Root(), "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	for _, f := range families(metrics) {
		if !strings.Contains(string(doc), "`"+f+"`") && !strings.Contains(string(doc), "`"+f+"{") {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		t.Errorf("docs/operations.md does not name these metrics: %s", strings.Join(missing, ", "))
	}
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	return string(b)
}

var typeLine = regexp.MustCompile(`(?m)^# TYPE (fenced_[a-z0-9_]+) `)

// families lists the fenced_ metric families of a scrape.
func families(text string) []string {
	var out []string
	for _, m := range typeLine.FindAllStringSubmatch(text, -1) {
		out = append(out, m[1])
	}
	sort.Strings(out)
	return out
}

type promRule struct {
	Name           string `json:"name"`
	Health         string `json:"health"`
	LastError      string `json:"lastError"`
	LastEvaluation string `json:"lastEvaluation"`
	Alerts         []struct {
		Labels map[string]string `json:"labels"`
		State  string            `json:"state"`
	} `json:"alerts"`
}

func promRules(prom string) ([]promRule, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", prom+"/api/v1/rules", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Data struct {
			Groups []struct {
				Rules []promRule `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	var out []promRule
	for _, g := range body.Data.Groups {
		out = append(out, g.Rules...)
	}
	return out, nil
}

func incoherentAlert(rules []promRule, host string) bool {
	for _, r := range rules {
		for _, a := range r.Alerts {
			if r.Name == "FencedExecutionIncoherence" && a.Labels["host"] == host {
				return true
			}
		}
	}
	return false
}

func allEvaluated(rules []promRule) bool {
	for _, r := range rules {
		if strings.HasPrefix(r.LastEvaluation, "0001-") {
			return false
		}
	}
	return len(rules) > 0
}
