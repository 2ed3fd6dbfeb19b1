package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/fencedhq/fenced/internal/buildinfo"
)

func TestVersion(t *testing.T) {
	out, _, err := run(t, "version")
	in := buildinfo.Get()
	if err != nil || !strings.Contains(out, "fenced "+in.Version+"\n") || !strings.Contains(out, "commit "+in.Commit) || !strings.Contains(out, in.GoVersion) {
		t.Fatalf("%v\n%s", err, out)
	}
	out, _, err = run(t, "version", "--json")
	var got buildinfo.Info
	if err != nil || json.Unmarshal([]byte(out), &got) != nil || got != in {
		t.Fatalf("--json: %v %+v\n%s", err, got, out)
	}
}
