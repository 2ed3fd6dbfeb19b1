// Command fenced-package builds the Debian package of fenced with nfpm used
// as a Go library: `make package` runs it after `make build` and it writes
// dist/fenced_<version>_<arch>.deb. It is a tool of the repository, never
// part of the fenced binary.
//
// The package holds the binary, a minimal /etc/fenced/fenced.yaml and the
// default policy in observe mode (both conffiles), the hardened systemd
// unit, the Prometheus alert rules, the docs and the full example config
// (docs/operations.md, "Packaging").
package main

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"

	"github.com/fencedhq/fenced/pkg/playbook"
	"github.com/fencedhq/fenced/pkg/policy"
)

func main() {
	var o options
	flag.StringVar(&o.Version, "version", "", "the version: git describe --tags --always --dirty (required)")
	flag.StringVar(&o.Binary, "binary", "bin/fenced", "the fenced binary to package")
	flag.StringVar(&o.Root, "root", ".", "the repository's root")
	flag.StringVar(&o.Out, "out", "dist", "directory the .deb is written to")
	flag.StringVar(&o.Arch, "arch", runtime.GOARCH, "GOARCH the binary was built for")
	flag.Parse()
	path, notes, err := build(o)
	for _, n := range notes {
		fmt.Fprintln(os.Stderr, "fenced-package: note:", n)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "fenced-package:", err)
		os.Exit(1)
	}
	fmt.Println(path)
}

type options struct {
	Version, Binary, Root, Out, Arch string
	// RulesTracked says whether git tracks the alert rules (nil: ask git).
	RulesTracked func() bool
}

// Where things come from, relative to the repository's root.
const (
	unitSrc     = "deploy/systemd/fenced.service"
	confSrc     = "deploy/package/fenced.yaml"
	exampleSrc  = "deploy/fenced.yaml"
	policySrc   = "policies/default.yaml"
	rulesSrc    = "deploy/prometheus/fenced.rules.yml"
	scriptsDir  = "deploy/package"
	maintainer  = "fenced maintainers <fenced@fencedhq.invalid>"
	homepage    = "https://github.com/fencedhq/fenced"
	description = `fencing and recovery orchestrator for OpenStack compute hosts
fenced watches what compute hosts really do (CPU steal, run queue, libvirt
latency, heartbeat lag, ...), scores how far Nova's picture has drifted from
it, and drives each host through a recovery playbook: warn, critical, fenced
(disabled and forced down in Nova), rebooting (powered off through Redfish,
servers evacuated, powered on) and restored. Replicas coordinate through etcd.`
)

// build writes the package and returns its path, with notes on what was
// left out.
func build(o options) (string, []string, error) {
	if o.Version == "" {
		return "", nil, errors.New("--version is required (git describe --tags --always --dirty)")
	}
	version, err := debVersion(o.Version)
	if err != nil {
		return "", nil, err
	}
	root := o.Root
	src := func(p string) string { return filepath.Join(root, p) }
	if st, err := os.Stat(o.Binary); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		return "", nil, fmt.Errorf("binary %s: not an executable file (run make build first): %v", o.Binary, err)
	}
	tmp, err := os.MkdirTemp("", "fenced-package-")
	if err != nil {
		return "", nil, fmt.Errorf("temporary directory: %w", err)
	}
	defer os.RemoveAll(tmp)

	// the default policy, in observe mode: the first step of the rollout
	pol, err := os.ReadFile(src(policySrc))
	if err != nil {
		return "", nil, fmt.Errorf("policy: %w", err)
	}
	observe, err := observePolicy(pol)
	if err != nil {
		return "", nil, fmt.Errorf("%s: %w", policySrc, err)
	}
	observePath := filepath.Join(tmp, "policy.yaml")
	if err := os.WriteFile(observePath, observe, 0o644); err != nil {
		return "", nil, fmt.Errorf("policy: %w", err)
	}

	file := func(s, dst string, mode os.FileMode) *files.Content {
		return &files.Content{Source: s, Destination: dst, FileInfo: &files.ContentFileInfo{Mode: mode, Owner: "root", Group: "root"}}
	}
	conf := func(s, dst string) *files.Content {
		c := file(s, dst, 0o644)
		c.Type = files.TypeConfigNoReplace
		return c
	}
	contents := files.Contents{
		file(o.Binary, "/usr/bin/fenced", 0o755),
		conf(src(confSrc), "/etc/fenced/fenced.yaml"),
		conf(observePath, "/etc/fenced/policy.yaml"),
		file(src(unitSrc), "/usr/lib/systemd/system/fenced.service", 0o644),
		file(src(exampleSrc), "/usr/share/doc/fenced/examples/fenced.yaml", 0o644),
		file(src(policySrc), "/usr/share/doc/fenced/examples/policy.yaml", 0o644),
		file(src("README.md"), "/usr/share/doc/fenced/README.md", 0o644),
		{Destination: "/etc/fenced", Type: files.TypeDir, FileInfo: &files.ContentFileInfo{Mode: 0o755, Owner: "root", Group: "root"}},
	}

	// the alert rules: shipped when present; once git tracks them a tree
	// without them is broken, and the build says so
	var notes []string
	if _, err := os.Stat(src(rulesSrc)); err == nil {
		contents = append(contents, file(src(rulesSrc), "/usr/share/fenced/prometheus/fenced.rules.yml", 0o644))
	} else {
		tracked := o.RulesTracked
		if tracked == nil {
			tracked = func() bool { return gitTracks(root, rulesSrc) }
		}
		if tracked() {
			return "", nil, fmt.Errorf("%s: tracked by git but missing from the tree; the package must ship the alert rules", rulesSrc)
		}
		notes = append(notes, rulesSrc+" does not exist yet: the package has no alert rules")
	}

	docs, err := docFiles(root)
	if err != nil {
		return "", notes, err
	}
	for _, d := range docs {
		contents = append(contents, file(src(filepath.Join("docs", d)), "/usr/share/doc/fenced/"+filepath.ToSlash(d), 0o644))
	}

	info := &nfpm.Info{
		Name:          "fenced",
		Arch:          o.Arch,
		Platform:      "linux",
		Version:       version,
		VersionSchema: "none",
		Section:       "admin",
		Priority:      "optional",
		Maintainer:    maintainer,
		Description:   description,
		Homepage:      homepage,
		License:       "proprietary",
		Overridables: nfpm.Overridables{
			Depends:  []string{"adduser"},
			Suggests: []string{"prometheus", "etcd-server"},
			Contents: contents,
			Scripts: nfpm.Scripts{
				PostInstall: src(filepath.Join(scriptsDir, "postinst")),
				PreRemove:   src(filepath.Join(scriptsDir, "prerm")),
				PostRemove:  src(filepath.Join(scriptsDir, "postrm")),
			},
		},
	}
	info = nfpm.WithDefaults(info)
	if err := nfpm.Validate(info); err != nil {
		return "", notes, fmt.Errorf("package: %w", err)
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return "", notes, fmt.Errorf("output directory: %w", err)
	}
	path := filepath.Join(o.Out, deb.Default.ConventionalFileName(info))
	f, err := os.Create(path + ".tmp")
	if err != nil {
		return "", notes, fmt.Errorf("package: %w", err)
	}
	if err := deb.Default.Package(info, f); err != nil {
		f.Close()
		os.Remove(f.Name())
		return "", notes, fmt.Errorf("package: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return "", notes, fmt.Errorf("package: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return "", notes, fmt.Errorf("package: %w", err)
	}
	return path, notes, nil
}

// docFiles lists the Markdown files under docs/, relative to it, sorted.
func docFiles(root string) ([]string, error) {
	var out []string
	dir := filepath.Join(root, "docs")
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".md") {
			rel, err := filepath.Rel(dir, p)
			if err != nil {
				return err
			}
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("docs: %w", err)
	}
	sort.Strings(out)
	return out, nil
}

// gitTracks says whether git tracks path (false when git cannot tell).
func gitTracks(root, path string) bool {
	cmd := exec.Command("git", "ls-files", "--error-unmatch", "--", path)
	cmd.Dir = root
	return cmd.Run() == nil
}

var (
	describeRE = regexp.MustCompile(`^v?([0-9][0-9A-Za-z.]*)(?:-([0-9]+)-g([0-9a-f]+))?(-dirty)?$`)
	commitRE   = regexp.MustCompile(`^([0-9a-f]{4,40})(-dirty)?$`)
	debRE      = regexp.MustCompile(`^[0-9][A-Za-z0-9.+~]*$`)
)

// debVersion turns `git describe --tags --always --dirty` into a Debian
// version that sorts the way the builds do:
//
//	v1.2.3                → 1.2.3
//	v1.2.3-4-gabc1234     → 1.2.3+4.gabc1234
//	v1.2.3-4-gabc1234-dirty → 1.2.3+4.gabc1234.dirty
//	abc1234 (no tag yet)  → 0.0.0~gitabc1234 (before any 0.0.0 and later tag)
func debVersion(describe string) (string, error) {
	var v string
	if m := describeRE.FindStringSubmatch(describe); m != nil && !commitRE.MatchString(describe) {
		v = m[1]
		if m[2] != "" {
			v += "+" + m[2] + ".g" + m[3]
		}
		if m[4] != "" {
			if m[2] == "" {
				v += "+dirty"
			} else {
				v += ".dirty"
			}
		}
	} else if m := commitRE.FindStringSubmatch(describe); m != nil {
		v = "0.0.0~git" + m[1]
		if m[2] != "" {
			v += ".dirty"
		}
	} else {
		return "", fmt.Errorf("version %q: want git describe output (v1.2.3, v1.2.3-4-gabc1234, abc1234, with -dirty)", describe)
	}
	if !debRE.MatchString(v) {
		return "", fmt.Errorf("version %q: %q is not a Debian version", describe, v)
	}
	return v, nil
}

var modeLine = regexp.MustCompile(`(?m)^mode: *[a-z]+[ \t]*$`)

// observePolicy is the default policy with mode: observe, checked.
func observePolicy(data []byte) ([]byte, error) {
	if n := len(modeLine.FindAllIndex(data, -1)); n != 1 {
		return nil, fmt.Errorf("want exactly one top-level \"mode:\" line to set observe, found %d", n)
	}
	out := modeLine.ReplaceAll(data, []byte("# Installed by the Debian package in observe mode, the first step of the\n"+
		"# rollout observe → approve → auto (docs/production.md).\nmode: observe"))
	p, err := policy.Parse("policy.yaml", out)
	if err != nil {
		return nil, fmt.Errorf("observe variant: %w", err)
	}
	if m := p.PlaybookConfig().Mode; m != playbook.ModeObserve {
		return nil, fmt.Errorf("observe variant has mode %s", m)
	}
	return out, nil
}
