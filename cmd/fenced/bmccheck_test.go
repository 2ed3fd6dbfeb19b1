package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fencedhq/fenced/pkg/fencing/redfish/bmcsim"
)

// bmcCheckConfig writes a config with two BMCs: cmp-good answers, cmp-bad
// refuses the credentials (an auth-fail fault on its system). extra is
// appended.
func bmcCheckConfig(t *testing.T, extra string) (path, goodURL string) {
	t.Helper()
	good := bmcsim.New("admin", "s3cret", 10*time.Millisecond, "sys-good", "cmp-tpl")
	bad := bmcsim.New("admin", "s3cret", 10*time.Millisecond, "sys-bad")
	bad.SetFaults("sys-bad", bmcsim.Faults{AuthFail: true})
	gs, bs := httptest.NewServer(good.Handler()), httptest.NewServer(bad.Handler())
	t.Cleanup(gs.Close)
	t.Cleanup(bs.Close)
	t.Setenv("FENCED_TEST_BMC_PASSWORD", "s3cret")
	dir := t.TempDir()
	cfg := fmt.Sprintf(`etcd: {embedded: {data_dir: %s}}
bmc:
  hosts:
    cmp-good: {endpoint: %q, system_id: sys-good, username: admin, password_env: FENCED_TEST_BMC_PASSWORD}
    cmp-bad: {endpoint: %q, system_id: sys-bad, username: admin, password_env: FENCED_TEST_BMC_PASSWORD}
%s`, filepath.Join(dir, "etcd"), gs.URL, bs.URL, extra)
	path = filepath.Join(dir, "fenced.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, gs.URL
}

func TestBMCCheck(t *testing.T) {
	path, goodURL := bmcCheckConfig(t, "")
	out, stderr, err := run(t, "bmc", "check", "--config", path, "--timeout", "5s")
	var ec exitCode
	if !errors.As(err, &ec) || ec != 1 {
		t.Fatalf("an unfenceable host must exit 1, got %v\n%s%s", err, out, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 {
		t.Fatalf("want a header, two rows and a summary:\n%s", out)
	}
	for i, re := range []string{
		`^HOST +ENDPOINT +POWER +LATENCY +RESULT$`,
		`^cmp-bad +http://127\.0\.0\.1:\d+ \(sys-bad\) +- +\d+ms +UNFENCEABLE: BMC refused the credentials$`,
		`^cmp-good +` + regexp.QuoteMeta(goodURL) + ` \(sys-good\) +On +\d+ms +ok$`,
		`^1 of 2 BMCs unfenceable$`,
	} {
		if !regexp.MustCompile(re).MatchString(lines[i]) {
			t.Errorf("line %d %q does not match %s", i, lines[i], re)
		}
	}
	// columns line up (tabwriter)
	if strings.Index(lines[0], "POWER") != strings.Index(lines[2], "On") {
		t.Errorf("columns do not line up:\n%s", out)
	}

	// one host, the good one: exit 0
	out, _, err = run(t, "bmc", "check", "cmp-good", "--config", path)
	if err != nil || !strings.Contains(out, "cmp-good") || strings.Contains(out, "cmp-bad") || !strings.Contains(out, "all 1 BMCs answered") {
		t.Fatalf("check of the good host: %v\n%s", err, out)
	}

	// JSON
	out, stderr, err = run(t, "bmc", "check", "--config", path, "--json")
	var rep struct {
		Results     []bmcCheckRow
		Checked     int
		Unfenceable int
	}
	if jerr := json.Unmarshal([]byte(out), &rep); jerr != nil || !errors.As(err, &ec) || ec != 1 {
		t.Fatalf("--json: %v %v\n%s", jerr, err, out)
	}
	if rep.Checked != 2 || rep.Unfenceable != 1 || len(rep.Results) != 2 || rep.Results[0].Host != "cmp-bad" || rep.Results[0].OK ||
		rep.Results[0].Error != "BMC refused the credentials" || !rep.Results[1].OK || rep.Results[1].PowerState != "On" ||
		!strings.Contains(stderr, "1 of 2 BMCs unfenceable") {
		t.Fatalf("--json: %+v\nstderr %s", rep, stderr)
	}

	// a host the config does not name, and no template
	_, _, err = run(t, "bmc", "check", "cmp-good", "cmp-nowhere", "--config", path)
	if err == nil || errors.As(err, &ec) || !strings.Contains(err.Error(), "cmp-nowhere") || !strings.Contains(err.Error(), "no bmc.hosts entry and no bmc.template") {
		t.Fatalf("unknown host: %v", err)
	}
}

func TestBMCCheckTemplateHosts(t *testing.T) {
	// the template serves the hosts: list; the per-host entries still count
	path, _ := bmcCheckConfig(t, "")
	data, _ := os.ReadFile(path)
	m := regexp.MustCompile(`endpoint: "(http://[^"]+)", system_id: sys-good`).FindSubmatch(data)
	if m == nil {
		t.Fatal("no good endpoint in the config")
	}
	extra := fmt.Sprintf(`  template: {endpoint: %q, system_id: "{host}", username: admin, password_env: FENCED_TEST_BMC_PASSWORD}
hosts: [cmp-tpl]
`, m[1])
	if err := os.WriteFile(path, append(data, extra...), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, err := run(t, "bmc", "check", "--config", path)
	var ec exitCode
	if !errors.As(err, &ec) || ec != 1 || !regexp.MustCompile(`(?m)^cmp-tpl +\S+ \(cmp-tpl\) +On +\d+ms +ok$`).MatchString(out) ||
		!strings.Contains(out, "1 of 3 BMCs unfenceable") {
		t.Fatalf("%v\n%s", err, out)
	}
}

func TestBMCCheckHelpTeaches(t *testing.T) {
	out, _, err := run(t, "bmc", "check", "--help")
	for _, want := range []string{"--config", "--timeout", "--json", "Exit status", "unfenceable", "fenced bmc check cmp-017"} {
		if err != nil || !strings.Contains(out, want) {
			t.Fatalf("help lacks %q: %v\n%s", want, err, out)
		}
	}
}
