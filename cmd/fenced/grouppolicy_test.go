package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/fencedhq/fenced/policies"
)

// TestGroupPolicyOverrides: policy check shows each group's overrides;
// config check and run --config refuse overrides for a group the config
// does not define (naming the policy file, line and field); run --dev,
// whose lab fleet has no groups, refuses them too.
func TestGroupPolicyOverrides(t *testing.T) {
	dir := t.TempDir()
	pol := filepath.Join(dir, "p.yaml")
	body := string(policies.Default) + "\ngroups:\n  a:\n    mode: auto\n    thresholds: {d_crit: 0.8}\n  web:\n    approval: {on_timeout: proceed}\n"
	if err := os.WriteFile(pol, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, err := run(t, "policy", "check", pol)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"group overrides", "a      auto", "thresholds.d_crit: 0.8", "approval.on_timeout: proceed"} {
		if !strings.Contains(out, want) {
			t.Errorf("policy check lacks %q:\n%s", want, out)
		}
	}
	out, _, err = run(t, "policy", "check", "--json", pol)
	if err != nil || !strings.Contains(out, `"groups"`) || !strings.Contains(out, `"DCrit": 0.8`) {
		t.Errorf("policy check --json: %v\n%s", err, out)
	}

	cfg := filepath.Join(dir, "f.yaml")
	conf := "etcd: {embedded: {data_dir: " + filepath.Join(dir, "etcd") + "}}\nhosts: [cmp-01, cn-01]\nlibvirt: {hosts: {cmp-01: \"test:///default\"}}\n" +
		"policy: " + pol + "\ngroups:\n  - {name: a, hosts: [\"cmp-*\"]}\n"
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	line := strings.Count(body[:strings.Index(body, "  web:")], "\n") + 1
	for _, args := range [][]string{{"config", "check", cfg}, {"run", "--config", cfg, "--mode", "observe"}} {
		_, stderr, err := run(t, args...)
		msg := stderr
		if err != nil {
			msg += err.Error()
		}
		if err == nil || !strings.Contains(msg, "p.yaml:"+strconv.Itoa(line)+": groups.web: no group web in the run config's groups: (defined: a)") {
			t.Errorf("%v: want the override for web refused at p.yaml:%d, got %v\n%s", args, line, err, stderr)
		}
	}
	conf = strings.Replace(conf, "  - {name: a, hosts: [\"cmp-*\"]}\n", "  - {name: a, hosts: [\"cmp-*\"]}\n  - {name: web, hosts: [\"cn-*\"]}\n", 1)
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, _, err := run(t, "config", "check", cfg); err != nil {
		t.Fatalf("both groups defined: %v\n%s", err, out)
	}

	_, _, err = run(t, "run", "--dev", "--policy", pol)
	if err == nil || !strings.Contains(err.Error(), "groups.a") || !strings.Contains(err.Error(), "no groups are defined") {
		t.Fatalf("run --dev with group overrides: %v", err)
	}
	_, _, err = run(t, "run", "--dev", "--policy", pol, "--groups", "2")
	if err == nil || !strings.Contains(err.Error(), "groups.a") || !strings.Contains(err.Error(), "defined: rack-1, rack-2") {
		t.Fatalf("run --dev --groups 2 with overrides for a and web: %v", err)
	}
	_, _, err = run(t, "run", "--dev", "--hosts", "4", "--groups", "5")
	if err == nil || !strings.Contains(err.Error(), "--groups 5") {
		t.Fatalf("more groups than hosts: %v", err)
	}
}

// TestLabGroups: --groups N splits the lab's hosts in order into N groups
// of nearly equal size, every host in exactly one.
func TestLabGroups(t *testing.T) {
	hosts := []string{"lab-001", "lab-002", "lab-003", "lab-004", "lab-005", "lab-006", "lab-007"}
	m := labGroups(hosts, 3, 0)
	got := map[string][]string{}
	for _, h := range hosts {
		g := m.Of(h)
		got[g] = append(got[g], h)
	}
	if strings.Join(got["rack-1"], ",") != "lab-001,lab-002" || strings.Join(got["rack-2"], ",") != "lab-003,lab-004" ||
		strings.Join(got["rack-3"], ",") != "lab-005,lab-006,lab-007" {
		t.Fatalf("%v", got)
	}
}

// TestLabReserved: --reserved N makes the last N hosts of each lab group
// its reserved hosts; it needs --groups and room in every group.
func TestLabReserved(t *testing.T) {
	hosts := []string{"lab-001", "lab-002", "lab-003", "lab-004", "lab-005", "lab-006", "lab-007"}
	m := labGroups(hosts, 3, 1)
	var got []string
	for _, d := range m.Defs() {
		got = append(got, d.Name+"="+strings.Join(d.Reserved, ","))
	}
	if strings.Join(got, " ") != "rack-1=lab-002 rack-2=lab-004 rack-3=lab-007" || m.Of("lab-004") != "rack-2" {
		t.Fatalf("%v", got)
	}
	for _, args := range [][]string{
		{"run", "--dev", "--reserved", "1"},
		{"run", "--dev", "--hosts", "4", "--groups", "2", "--reserved", "2"},
		{"run", "--dev", "--groups", "2", "--reserved", "-1"},
	} {
		if _, _, err := run(t, args...); err == nil || !strings.Contains(err.Error(), "--reserved") {
			t.Errorf("%v: %v", args, err)
		}
	}
}
