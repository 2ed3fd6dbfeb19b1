package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunConfigRefusesFlagsItDoesNotUse(t *testing.T) {
	for _, flag := range [][]string{{"--listen", "127.0.0.1:1"}, {"--etcd-endpoints", "http://127.0.0.1:1"}, {"--webhook", "http://x/"}, {"--tick", "1s"}, {"--policy", "p.yaml"}} {
		_, _, err := run(t, append([]string{"run", "--config", "../../deploy/fenced.yaml"}, flag...)...)
		if err == nil || !strings.Contains(err.Error(), flag[0]) || !strings.Contains(err.Error(), "not used with --config") {
			t.Errorf("%v: %v", flag, err)
		}
	}
}

func TestRunConfigActingNeedsNovaAndBMC(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "f.yaml")
	body := "etcd: {embedded: {data_dir: " + filepath.Join(dir, "etcd") + "}}\nlibvirt: {hosts: {cn1: \"test:///default\"}}\n"
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := run(t, "run", "--config", cfg, "--mode", "approve")
	if err == nil || !strings.Contains(err.Error(), "f.yaml") || !strings.Contains(err.Error(), "nova") || !strings.Contains(err.Error(), "--mode observe") {
		t.Fatalf("approve without nova: %v", err)
	}
}

func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte("operator carol 0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "good.yaml")
	body := "api: {listen: 127.0.0.1:8480, tokens_file: " + tokens + "}\netcd: {embedded: {data_dir: " + dir + "}}\n" +
		"hosts: [cn1]\nbmc:\n  template: {endpoint: \"http://127.0.0.1:8000\", system_id: \"{host}\", username: admin, password_env: FENCED_TEST_BMC_PW}\n"
	if err := os.WriteFile(good, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("FENCED_TEST_BMC_PW", "secret-value")
	out, _, err := run(t, "config", "check", good)
	if err != nil || !strings.Contains(out, "valid") || !strings.Contains(out, "1 BMCs resolved") || strings.Contains(out, "secret-value") {
		t.Fatalf("%v\n%s", err, out)
	}
	// the same file without the password in the environment: named, exit 1
	t.Setenv("FENCED_TEST_BMC_PW", "")
	_, stderr, err := run(t, "config", "check", good)
	var ec exitCode
	if !errors.As(err, &ec) || !strings.Contains(stderr, "good.yaml:") || !strings.Contains(stderr, "bmc.template.password_env") {
		t.Fatalf("%v\n%s", err, stderr)
	}
}

// TestRunDevRefusesFlagsItDoesNotUse: a flag the chosen mode does not use,
// or a bad one, stops `run` before anything starts (no lab, no etcd).
func TestRunDevRefusesFlagsItDoesNotUse(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--lab", "http://127.0.0.1:1", "--etcd-endpoints", "http://127.0.0.1:2", "--hosts", "50"}, "--hosts: not used here"},
		{[]string{"run", "--lab", "http://127.0.0.1:1", "--etcd-endpoints", "http://127.0.0.1:2", "--groups", "2"}, "--groups: not used here"},
		{[]string{"run", "--lab", "http://127.0.0.1:1", "--etcd-endpoints", "http://127.0.0.1:2", "--speed", "10", "--ramp", "1s"}, "--ramp, --speed: not used here"},
		{[]string{"run", "--dev", "--etcd-endpoints", "http://127.0.0.1:2", "--data-dir", "/tmp/x"}, "--data-dir: not used here"},
		{[]string{"run", "--dev", "--etcd-ca", "/ca.pem"}, "--etcd-ca: not used here"},
		{[]string{"run", "--dev", "--webhook", "ftp://oncall.example/hook"}, `--webhook "ftp://oncall.example/hook"`},
		{[]string{"run", "--dev", "--hosts", "1"}, "--hosts: need at least 2"},
	} {
		_, stderr, err := run(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want %q", c.args, err, c.want)
		}
		if strings.Contains(stderr, "lab hosts") || strings.Contains(stderr, "embedded etcd") {
			t.Errorf("%v: started before refusing:\n%s", c.args, stderr)
		}
	}
}
