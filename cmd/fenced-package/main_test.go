package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/fencedhq/fenced/pkg/policy"
	"github.com/fencedhq/fenced/policies"
)

func TestDebVersion(t *testing.T) {
	for in, want := range map[string]string{
		"v1.2.3":                  "1.2.3",
		"1.2.3":                   "1.2.3",
		"v1.2.3-dirty":            "1.2.3+dirty",
		"v1.2.3-4-gabc1234":       "1.2.3+4.gabc1234",
		"v1.2.3-4-gabc1234-dirty": "1.2.3+4.gabc1234.dirty",
		"v1.2.3rc1-4-gabc1234":    "1.2.3rc1+4.gabc1234",
		"8590af2":                 "0.0.0~git8590af2",
		"8590af2-dirty":           "0.0.0~git8590af2.dirty",
	} {
		got, err := debVersion(in)
		if err != nil || got != want {
			t.Errorf("%s: %q %v, want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "unknown", "v1.2.3_x", "release-1"} {
		if v, err := debVersion(bad); err == nil {
			t.Errorf("%q: accepted as %q", bad, v)
		}
	}
}

func TestObservePolicy(t *testing.T) {
	out, err := observePolicy(policies.Default)
	if err != nil {
		t.Fatal(err)
	}
	p, err := policy.Parse("p.yaml", out)
	if err != nil || p.PlaybookConfig().Mode != "observe" {
		t.Fatalf("%v %v", p, err)
	}
	def, _ := policy.Parse("d.yaml", policies.Default)
	if p.SignalsConfig().DWarn != def.SignalsConfig().DWarn {
		t.Fatal("thresholds changed")
	}
	if _, err := observePolicy([]byte("version: 1\n")); err == nil {
		t.Fatal("a policy without a mode line was accepted")
	}
}

// TestBuild builds the package from the repository with a stand-in binary
// and reads it back: the files, the conffiles, the maintainer scripts.
func TestBuild(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "fenced")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\necho fenced\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	rules := filepath.Join("..", "..", rulesSrc)
	_, statErr := os.Stat(rules)
	haveRules := statErr == nil
	o := options{Version: "v1.2.3-4-gabc1234", Binary: bin, Root: "../..", Out: filepath.Join(dir, "dist"), Arch: "amd64",
		RulesTracked: func() bool { return false }}
	path, notes, err := build(o)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(path) != "fenced_1.2.3+4.gabc1234_amd64.deb" {
		t.Fatalf("name %s", path)
	}
	if haveRules != (len(notes) == 0) {
		t.Fatalf("rules present %v, notes %q", haveRules, notes)
	}
	members := readAr(t, path)
	data := readTarGz(t, members["data.tar.gz"])
	for _, want := range []string{"./usr/bin/fenced", "./etc/fenced/fenced.yaml", "./etc/fenced/policy.yaml",
		"./usr/lib/systemd/system/fenced.service", "./usr/share/doc/fenced/examples/fenced.yaml",
		"./usr/share/doc/fenced/README.md", "./usr/share/doc/fenced/production.md", "./usr/share/doc/fenced/runbooks/critical.md"} {
		if _, ok := data[want]; !ok {
			t.Errorf("package lacks %s", want)
		}
	}
	if _, ok := data["./usr/share/fenced/prometheus/fenced.rules.yml"]; ok != haveRules {
		t.Errorf("alert rules shipped %v, present in the tree %v", ok, haveRules)
	}
	if h := data["./usr/bin/fenced"]; h.Mode&0o111 == 0 {
		t.Errorf("binary mode %o", h.Mode)
	}
	ctl := readTarGz(t, members["control.tar.gz"])
	if got := string(ctl["./conffiles"].body); got != "/etc/fenced/fenced.yaml\n/etc/fenced/policy.yaml\n" {
		t.Errorf("conffiles %q", got)
	}
	control := string(ctl["./control"].body)
	for _, want := range []string{"Package: fenced\n", "Version: 1.2.3+4.gabc1234\n", "Architecture: amd64\n", "Depends: adduser\n"} {
		if !strings.Contains(control, want) {
			t.Errorf("control lacks %q:\n%s", want, control)
		}
	}
	for _, s := range []string{"./postinst", "./prerm", "./postrm"} {
		if f, ok := ctl[s]; !ok || f.Mode&0o111 == 0 {
			t.Errorf("script %s missing or not executable", s)
		}
	}
	// the conffile is the minimal one, the example the full one
	if c := string(data["./etc/fenced/fenced.yaml"].body); !strings.Contains(c, "embedded:") || strings.Contains(c, "tls_cert:") {
		t.Errorf("/etc/fenced/fenced.yaml is not the minimal config:\n%s", c)
	}

	// git tracks the rules but the tree lacks them: the build fails
	if !haveRules {
		o.RulesTracked = func() bool { return true }
		if _, _, err := build(o); err == nil || !strings.Contains(err.Error(), rulesSrc) {
			t.Errorf("rules tracked but missing: %v", err)
		}
	}
	o.Version = "not a version"
	if _, _, err := build(o); err == nil {
		t.Error("a bad version was accepted")
	}
}

type entry struct {
	Mode int64
	body []byte
}

// readAr reads the members of an ar archive (a .deb).
func readAr(t *testing.T, path string) map[string][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("!<arch>\n")) {
		t.Fatal("not an ar archive")
	}
	out := map[string][]byte{}
	for b = b[8:]; len(b) >= 60; {
		name := strings.TrimRight(strings.TrimSpace(string(b[0:16])), "/")
		size, err := strconv.Atoi(strings.TrimSpace(string(b[48:58])))
		if err != nil || 60+size > len(b) {
			t.Fatalf("bad ar header %q", b[:60])
		}
		out[name] = b[60 : 60+size]
		b = b[60+size+size%2:]
	}
	return out
}

func readTarGz(t *testing.T, b []byte) map[string]entry {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	out := map[string]entry{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out[h.Name] = entry{Mode: h.Mode, body: body}
	}
}
