package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestSignedAuditThroughRunConfig: keys made by `fenced audit keygen`, a
// replica of `fenced run --config` that signs its audit, `fenced audit
// verify` through its API, `fenced audit export`, and the export verified
// offline with the config's public keys; a cut export fails with exit 1.
func TestSignedAuditThroughRunConfig(t *testing.T) {
	dir := t.TempDir()
	var pubs []string
	for _, name := range []string{"r1.key", "r2.key"} {
		out, _, err := run(t, "audit", "keygen", "--out", filepath.Join(dir, name))
		m := regexp.MustCompile(`public key: (\S+)`).FindStringSubmatch(out)
		if err != nil || m == nil {
			t.Fatalf("keygen: %v\n%s", err, out)
		}
		pubs = append(pubs, m[1])
	}
	if _, _, err := run(t, "audit", "keygen", "--out", filepath.Join(dir, "r1.key")); err == nil {
		t.Fatal("keygen overwrote a key")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := filepath.Join(dir, "fenced.yaml")
	body := fmt.Sprintf("tick: 1s\napi: {listen: %q}\netcd: {embedded: {data_dir: %s}}\nlibvirt: {hosts: {cn1: \"test:///default\"}}\n"+
		"audit:\n  signing_key_file: %s\n  public_keys: [%s, %s]\n  witness_file: %s\n",
		addr, filepath.Join(dir, "etcd"), filepath.Join(dir, "r1.key"), pubs[0], pubs[1], filepath.Join(dir, "audit.witness"))
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, _, err := run(t, "config", "check", cfg); err != nil || !strings.Contains(out, "audit") {
		t.Fatalf("config check: %v\n%s", err, out)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		cmd := newRootCmd()
		cmd.SetOut(io.Discard) // written from many goroutines, as stderr is
		cmd.SetErr(io.Discard)
		cmd.SetArgs([]string{"run", "--config", cfg, "--mode", "observe", "--id", "r1"})
		done <- cmd.ExecuteContext(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	server := "http://" + addr
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(server + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replica's API never answered: %v", err)
		}
		select {
		case err := <-done:
			t.Fatalf("fenced run --config ended: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	// the replica recorded its key (the chain's first signed record) before
	// its API started serving
	out, _, err := run(t, "audit", "verify", "--server", server)
	if err != nil || !strings.Contains(out, "audit chain intact") || !strings.Contains(out, "1 signed") {
		t.Fatalf("verify through the API: %v\n%s", err, out)
	}
	export := filepath.Join(dir, "audit.jsonl")
	if _, _, err := run(t, "audit", "export", "--server", server, "--out", export); err != nil {
		t.Fatal(err)
	}
	out, _, err = run(t, "audit", "verify", "--file", export, "--config", cfg)
	if err != nil || !strings.Contains(out, "audit chain intact") || !strings.Contains(out, "checkpoint by r1") {
		t.Fatalf("offline verify: %v\n%s", err, out)
	}
	data, _ := os.ReadFile(export)
	lines := strings.SplitAfter(strings.TrimSuffix(string(data), "\n"), "\n")
	cut := filepath.Join(dir, "cut.jsonl")
	_ = os.WriteFile(cut, []byte(strings.Join(lines[:len(lines)-1], "")), 0o600)
	out, _, err = run(t, "audit", "verify", "--file", cut, "--public-key", pubs[0])
	var ec exitCode
	if !errors.As(err, &ec) || !strings.Contains(out, "AUDIT CHAIN BROKEN") || !strings.Contains(out, "no checkpoint line") {
		t.Fatalf("a cut export: %v\n%s", err, out)
	}
	if _, _, err := run(t, "audit", "verify", "--file", export); err == nil || !strings.Contains(err.Error(), "public keys") {
		t.Fatalf("offline verify without keys: %v", err)
	}
}

// TestRunConfigRefusesAnOpenSigningKey: a key others can read stops the
// replica at start, naming the field.
func TestRunConfigRefusesAnOpenSigningKey(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "audit.key")
	out, _, err := run(t, "audit", "keygen", "--out", key)
	if err != nil {
		t.Fatal(err)
	}
	pub := regexp.MustCompile(`public key: (\S+)`).FindStringSubmatch(out)[1]
	_ = os.Chmod(key, 0o644)
	cfg := filepath.Join(dir, "fenced.yaml")
	body := fmt.Sprintf("etcd: {embedded: {data_dir: %s}}\nlibvirt: {hosts: {cn1: \"test:///default\"}}\naudit: {signing_key_file: %s, public_keys: [%s]}\n",
		filepath.Join(dir, "etcd"), key, pub)
	_ = os.WriteFile(cfg, []byte(body), 0o600)
	_, _, err = run(t, "run", "--config", cfg, "--mode", "observe")
	if err == nil || !strings.Contains(err.Error(), "audit.signing_key_file") || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("%v", err)
	}
}
