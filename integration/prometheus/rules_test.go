package prometheus

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/fencedhq/fenced/integration/internal/harness"
)

// promtool is Debian's (package prometheus).
func promtool(t *testing.T) string {
	t.Helper()
	need(t, "promtool")
	p, _ := exec.LookPath("promtool")
	return p
}

// runPromtool runs promtool in dir and fails on a non-zero exit.
func runPromtool(t *testing.T, dir string, stdin []byte, args ...string) string {
	t.Helper()
	cmd := exec.Command(promtool(t), args...)
	cmd.Dir = dir
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

type ruleTests struct {
	Tests []struct {
		AlertRuleTest []struct {
			Alertname string `yaml:"alertname"`
			ExpAlerts []any  `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

const runbookBase = "https://github.com/fencedhq/fenced/blob/main/"

// TestAlertRules: the shipped rules pass promtool check rules and their
// unit tests (promtool test rules); each alert has a severity, a summary, a
// description and a runbook that exists, and a test case that fires it and
// one that does not.
func TestAlertRules(t *testing.T) {
	dir := filepath.Join(harness.Root(), "deploy", "prometheus")
	out := runPromtool(t, dir, nil, "check", "rules", "fenced.rules.yml")
	t.Logf("%s", out)
	out = runPromtool(t, dir, nil, "test", "rules", "fenced.rules.test.yml")
	t.Logf("%s", out)

	var rules ruleFile
	readYAML(t, filepath.Join(dir, "fenced.rules.yml"), &rules)
	var tests ruleTests
	readYAML(t, filepath.Join(dir, "fenced.rules.test.yml"), &tests)
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			n++
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("%s: severity %q, want critical or warning", r.Alert, s)
			}
			for _, k := range []string{"summary", "description", "runbook_url"} {
				if r.Annotations[k] == "" {
					t.Errorf("%s: no %s annotation", r.Alert, k)
				}
			}
			rel, ok := strings.CutPrefix(r.Annotations["runbook_url"], runbookBase)
			if !ok || !strings.HasPrefix(rel, "docs/runbooks/") {
				t.Errorf("%s: runbook_url %q is not under %sdocs/runbooks/", r.Alert, r.Annotations["runbook_url"], runbookBase)
			} else if _, err := os.Stat(filepath.Join(harness.Root(), rel)); err != nil {
				t.Errorf("%s: runbook %s: %v", r.Alert, rel, err)
			}
			if !fires[r.Alert] || !quiet[r.Alert] {
				t.Errorf("%s: a test that fires it: %v, one that does not: %v", r.Alert, fires[r.Alert], quiet[r.Alert])
			}
		}
	}
	if n < 9 {
		t.Fatalf("%d alerts in fenced.rules.yml, want at least 9", n)
	}
}
