// Package buildinfo says which build of fenced is running: the version and
// commit the Makefile stamps with -ldflags, falling back to what the Go
// toolchain recorded (runtime/debug.ReadBuildInfo), and the Go version.
// `fenced version` prints it and /metrics exposes it as fenced_build_info.
package buildinfo

import (
	"runtime"
	"runtime/debug"
	"sync"
)

// Set at link time by the Makefile:
//
//	-X github.com/fencedhq/fenced/internal/buildinfo.version=$(git describe --tags --always --dirty)
//	-X github.com/fencedhq/fenced/internal/buildinfo.commit=$(git rev-parse HEAD)
var (
	version string
	commit  string
)

// Unknown is the version or commit of a build that recorded none.
const Unknown = "unknown"

// Info is one build's identity.
type Info struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	GoVersion string `json:"go_version"`
	// Modified: the tree had uncommitted changes (known only from the Go
	// toolchain's VCS stamp, or a version that ends in -dirty).
	Modified bool `json:"modified,omitempty"`
}

var (
	once   sync.Once
	cached Info
)

// Get returns the running binary's build information.
func Get() Info {
	once.Do(func() {
		bi, _ := debug.ReadBuildInfo()
		cached = resolve(version, commit, bi)
	})
	return cached
}

// resolve combines the link-time values with the toolchain's record: the
// link-time values win; what they leave empty comes from the VCS stamp
// (vcs.revision, vcs.modified) or the main module's version.
func resolve(ldVersion, ldCommit string, bi *debug.BuildInfo) Info {
	in := Info{Version: ldVersion, Commit: ldCommit, GoVersion: runtime.Version()}
	if bi != nil {
		if bi.GoVersion != "" {
			in.GoVersion = bi.GoVersion
		}
		var rev string
		var modified bool
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if in.Commit == "" {
			in.Commit = rev
		}
		if in.Version == "" {
			switch v := bi.Main.Version; {
			case v != "" && v != "(devel)":
				in.Version = v
			case rev != "":
				in.Version = short(rev)
				if modified {
					in.Version += "-dirty"
				}
			}
		}
		in.Modified = modified
	}
	if len(in.Version) > 6 && in.Version[len(in.Version)-6:] == "-dirty" {
		in.Modified = true
	}
	if in.Version == "" {
		in.Version = Unknown
	}
	if in.Commit == "" {
		in.Commit = Unknown
	}
	return in
}

func short(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}
