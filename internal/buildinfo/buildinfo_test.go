package buildinfo

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	vcs := &debug.BuildInfo{GoVersion: "go1.99", Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"}, {Key: "vcs.modified", Value: "true"}}}
	for _, c := range []struct {
		name, ldv, ldc string
		bi             *debug.BuildInfo
		want           Info
	}{
		{"ldflags win", "v1.2.0-3-gabc", "abc123", vcs, Info{Version: "v1.2.0-3-gabc", Commit: "abc123", GoVersion: "go1.99", Modified: true}},
		{"vcs stamp", "", "", vcs, Info{Version: "0123456789ab-dirty", Commit: "0123456789abcdef0123456789abcdef01234567", GoVersion: "go1.99", Modified: true}},
		{"module version", "", "", &debug.BuildInfo{GoVersion: "go1.99", Main: debug.Module{Version: "v0.3.0"}}, Info{Version: "v0.3.0", Commit: Unknown, GoVersion: "go1.99"}},
		{"nothing", "", "", nil, Info{Version: Unknown, Commit: Unknown}},
		{"dirty describe", "8590af2-dirty", "8590af2", nil, Info{Version: "8590af2-dirty", Commit: "8590af2", Modified: true}},
	} {
		got := resolve(c.ldv, c.ldc, c.bi)
		if c.want.GoVersion == "" {
			if !strings.HasPrefix(got.GoVersion, "go") {
				t.Errorf("%s: go version %q", c.name, got.GoVersion)
			}
			c.want.GoVersion = got.GoVersion
		}
		if got != c.want {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
		}
	}
}

func TestGet(t *testing.T) {
	in := Get()
	if in.Version == "" || in.Commit == "" || !strings.HasPrefix(in.GoVersion, "go") {
		t.Fatalf("%+v", in)
	}
}
