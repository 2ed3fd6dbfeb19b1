// Package pkgtest builds the Debian package with `make package`, installs it
// on this machine with dpkg, checks what it installed, and purges it.
// It needs root (dpkg -i); without root it skips. The unit file's lint
// (unit_test.go) runs without root.
package pkgtest

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fencedhq/fenced/integration/internal/harness"
	"github.com/fencedhq/fenced/internal/buildinfo"
)

// run runs a command and returns its combined output; a failure fails the test.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func installed(name string) bool {
	out, err := exec.Command("dpkg-query", "-W", "-f=${Status}", name).Output()
	return err == nil && strings.Contains(string(out), "install ok installed")
}

func TestInstallRemove(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("dpkg -i needs root: the package test runs as root only")
	}
	if installed("fenced") {
		t.Fatal("a fenced package is already installed on this machine; this test installs and purges its own: remove it first (dpkg --purge fenced)")
	}
	start := time.Now()
	root := harness.Root()
	version := strings.TrimSpace(run(t, "git", "-C", root, "describe", "--tags", "--always", "--dirty"))
	commit := strings.TrimSpace(run(t, "git", "-C", root, "rev-parse", "HEAD"))
	tmp := t.TempDir()
	dist := filepath.Join(tmp, "dist")
	out := run(t, "make", "-C", root, "--no-print-directory", "package", "BIN="+filepath.Join(tmp, "fenced"), "DIST="+dist,
		"VERSION="+version, "COMMIT="+commit)
	debs, _ := filepath.Glob(filepath.Join(dist, "fenced_*_*.deb"))
	if len(debs) != 1 {
		t.Fatalf("make package made %v\n%s", debs, out)
	}
	deb := debs[0]
	built := time.Since(start)
	t.Logf("built %s in %s", filepath.Base(deb), built.Round(100*time.Millisecond))

	t.Cleanup(func() {
		if installed("fenced") {
			_ = exec.Command("dpkg", "--purge", "fenced").Run()
		}
	})
	run(t, "dpkg", "-i", deb)
	files := strings.Fields(run(t, "dpkg", "-L", "fenced"))

	// the binary reports the build make stamped
	var v buildinfo.Info
	if err := json.Unmarshal([]byte(run(t, "/usr/bin/fenced", "version", "--json")), &v); err != nil {
		t.Fatal(err)
	}
	if v.Version != version || v.Commit != commit || !strings.HasPrefix(v.GoVersion, "go") {
		t.Errorf("fenced version: %+v, want %s %s", v, version, commit)
	}
	if text := run(t, "/usr/bin/fenced", "version"); !strings.HasPrefix(text, "fenced "+version+"\n") {
		t.Errorf("fenced version:\n%s", text)
	}

	// the conffiles as installed pass the check, as root and as the service's user
	for _, who := range [][]string{{}, {"runuser", "-u", "fenced", "--"}} {
		args := append(append([]string{}, who...), "/usr/bin/fenced", "config", "check", "/etc/fenced/fenced.yaml")
		check := run(t, args[0], args[1:]...)
		if !strings.Contains(check, "valid") || !strings.Contains(check, "(mode observe)") || !strings.Contains(check, "embedded etcd in /var/lib/fenced/etcd") {
			t.Errorf("%v:\n%s", args, check)
		}
	}
	if c := run(t, "dpkg-query", "-W", "-f=${Conffiles}", "fenced"); !strings.Contains(c, "/etc/fenced/fenced.yaml") || !strings.Contains(c, "/etc/fenced/policy.yaml") {
		t.Errorf("conffiles:\n%s", c)
	}
	// the service's user and its state directory
	run(t, "getent", "passwd", "fenced")
	if st := run(t, "stat", "-c", "%U:%G %a", "/var/lib/fenced"); strings.TrimSpace(st) != "fenced:fenced 750" {
		t.Errorf("/var/lib/fenced: %s", st)
	}
	for _, f := range []string{"/usr/lib/systemd/system/fenced.service", "/usr/share/doc/fenced/examples/fenced.yaml",
		"/usr/share/doc/fenced/README.md", "/usr/share/doc/fenced/production.md"} {
		if _, err := os.Stat(f); err != nil {
			t.Error(err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "deploy/prometheus/fenced.rules.yml")); err == nil {
		if _, err := os.Stat("/usr/share/fenced/prometheus/fenced.rules.yml"); err != nil {
			t.Errorf("alert rules: %v", err)
		}
	}

	// the unit: systemd's own verifier where this machine has it (it needs
	// no running systemd), and its exposure score; the lint runs anyway
	unit := "/usr/lib/systemd/system/fenced.service"
	lintUnit(t, unit)
	if sa, err := exec.LookPath("systemd-analyze"); err == nil {
		if out, err := exec.Command(sa, "verify", unit).CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
		// exposure on systemd's 0–10 scale, threshold in tenths: at most 2.5
		out, err := exec.Command(sa, "security", "--offline=yes", "--threshold=25", unit).CombinedOutput()
		if err != nil {
			t.Errorf("systemd-analyze security: %v\n%s", err, out)
		}
		if m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`).FindStringSubmatch(string(out)); m != nil {
			t.Logf("systemd-analyze security: exposure %s", m[1])
		}
	} else {
		t.Log("systemd-analyze not found: the unit is checked by the lint only")
	}

	// an edited conffile survives a reinstall (an upgrade)
	edited := strings.Replace(readFile(t, "/etc/fenced/fenced.yaml"), "tick: 10s", "tick: 15s", 1)
	if err := os.WriteFile("/etc/fenced/fenced.yaml", []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, "dpkg", "-i", "--force-confold", deb)
	if !strings.Contains(readFile(t, "/etc/fenced/fenced.yaml"), "tick: 15s") {
		t.Error("reinstall replaced the edited /etc/fenced/fenced.yaml")
	}

	// purge: every file of the package, the conffiles and the state are gone
	run(t, "dpkg", "--purge", "fenced")
	if installed("fenced") {
		t.Fatal("still installed after dpkg --purge")
	}
	for _, f := range append(files, "/etc/fenced", "/var/lib/fenced", "/usr/share/doc/fenced", "/usr/share/fenced") {
		if !strings.Contains(f, "fenced") {
			continue // a shared directory such as /usr/share/doc
		}
		if _, err := os.Lstat(f); err == nil {
			t.Errorf("%s left after purge", f)
		}
	}
	if out, _ := exec.Command("dpkg-query", "-W", "-f=${Status}", "fenced").CombinedOutput(); strings.Contains(string(out), "config-files") {
		t.Errorf("dpkg still lists config files: %s", out)
	}
	t.Logf("build, install, checks, reinstall and purge took %s", time.Since(start).Round(100*time.Millisecond))
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
