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
