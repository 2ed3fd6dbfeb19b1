package pkgtest

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fencedhq/fenced/integration/internal/harness"
)

// TestUnitLint lints the repository's unit file (no root needed).
func TestUnitLint(t *testing.T) {
	lintUnit(t, filepath.Join(harness.Root(), "deploy/systemd/fenced.service"))
}

// lintUnit is the documented lint of fenced.service (docs/operations.md,
// "Packaging"), for machines without systemd-analyze and beside it: the
// sections are the three a service has, every line is KEY=VALUE, and the
// keys that make the unit what it promises have their values:
//
//   - how it runs: ExecStart runs the replica on the installed config,
//     ExecReload checks the config and sends SIGHUP, Restart=on-failure;
//   - as whom: User=fenced (the package's system user) or DynamicUser=yes,
//     and StateDirectory=fenced for /var/lib/fenced;
//   - the hardening: NoNewPrivileges, ProtectSystem=strict, ProtectHome,
//     PrivateTmp, PrivateDevices, the kernel and cgroup protections, no
//     capabilities, a system call filter, and the allowed address families.
func lintUnit(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	keys := map[string][]string{} // "Section.Key" → values in order
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.Trim(line, "[]")
			if section != "Unit" && section != "Service" && section != "Install" {
				t.Errorf("%s:%d: section [%s] does not belong in a service unit", path, n, section)
			}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Errorf("%s:%d: want KEY=VALUE inside a section: %q", path, n, line)
				continue
			}
			keys[section+"."+strings.TrimSpace(k)] = append(keys[section+"."+strings.TrimSpace(k)], strings.TrimSpace(v))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	last := func(k string) (string, bool) {
		v, ok := keys[k]
		if !ok {
			return "", false
		}
		return v[len(v)-1], true
	}
	want := map[string]string{
		"Service.ExecStart":               "/usr/bin/fenced run --config /etc/fenced/fenced.yaml --log-json",
		"Service.Restart":                 "on-failure",
		"Service.StateDirectory":          "fenced",
		"Service.NoNewPrivileges":         "yes",
		"Service.ProtectSystem":           "strict",
		"Service.PrivateTmp":              "yes",
		"Service.PrivateDevices":          "yes",
		"Service.ProtectKernelTunables":   "yes",
		"Service.ProtectKernelModules":    "yes",
		"Service.ProtectControlGroups":    "yes",
		"Service.RestrictSUIDSGID":        "yes",
		"Service.LockPersonality":         "yes",
		"Service.CapabilityBoundingSet":   "",
		"Service.SystemCallArchitectures": "native",
		"Install.WantedBy":                "multi-user.target",
	}
	for k, w := range want {
		if v, ok := last(k); !ok || v != w {
			t.Errorf("%s: %s=%q, want %q", path, k, v, w)
		}
	}
	if v, _ := last("Service.ProtectHome"); v != "yes" && v != "read-only" && v != "tmpfs" {
		t.Errorf("%s: ProtectHome=%q, want yes, read-only or tmpfs", path, v)
	}
	user, _ := last("Service.User")
	dyn, _ := last("Service.DynamicUser")
	if user != "fenced" && dyn != "yes" {
		t.Errorf("%s: want User=fenced or DynamicUser=yes, have User=%q DynamicUser=%q", path, user, dyn)
	}
	reload := strings.Join(keys["Service.ExecReload"], "\n")
	if !strings.Contains(reload, "kill -HUP $MAINPID") {
		t.Errorf("%s: ExecReload does not send SIGHUP: %q", path, reload)
	}
	if f := keys["Service.SystemCallFilter"]; len(f) == 0 || f[0] != "@system-service" {
		t.Errorf("%s: SystemCallFilter starts %q, want @system-service", path, f)
	}
	fams, _ := last("Service.RestrictAddressFamilies")
	for _, fam := range strings.Fields(fams) {
		if fam != "AF_UNIX" && fam != "AF_INET" && fam != "AF_INET6" && fam != "AF_NETLINK" {
			t.Errorf("%s: RestrictAddressFamilies allows %s", path, fam)
		}
	}
	if fams == "" {
		t.Errorf("%s: RestrictAddressFamilies unset", path)
	}
}
