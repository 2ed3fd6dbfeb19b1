package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSimulateCompareFromTheCLI(t *testing.T) {
	const tr = "../../testdata/traces/incident.jsonl.gz"
	def := "../../policies/default.yaml"
	pol, err := os.ReadFile(def)
	if err != nil {
		t.Fatal(err)
	}
	late := filepath.Join(t.TempDir(), "late.yaml")
	if err := os.WriteFile(late, []byte(strings.Replace(string(pol), "d_warn: 0.4", "d_warn: 0.5", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	// --compare A B: B is the argument after the flag's value
	out, _, err := run(t, "simulate", "--compare", def, late, "--trace", tr, "--mode", "auto")
	if err != nil || !strings.Contains(out, "cmp-017  normal → warn") || !strings.Contains(out, "+40s") || !strings.Contains(out, "1 differ") {
		t.Fatalf("%v\n%s", err, out)
	}
	out, _, err = run(t, "simulate", "--compare", def+","+late, "--trace", tr, "--mode", "auto", "--json", "--tolerance", "1m")
	var c struct {
		Differences []json.RawMessage `json:"differences"`
		Same        int               `json:"same"`
		A, B        string
	}
	if err != nil || json.Unmarshal([]byte(out), &c) != nil || len(c.Differences) != 0 || c.Same != 6 || c.B != late {
		t.Fatalf("--json --tolerance 1m: %v %+v\n%s", err, c, out)
	}
	for _, bad := range [][]string{
		{"simulate", "--compare", def, "--trace", tr},
		{"simulate", "--compare", def, late, "--policy", def, "--trace", tr},
		{"simulate", "--compare", def, late, "--trace", "-"},
		{"simulate", "--trace", tr, "--json"},
		{"simulate", "--trace", tr, late},
	} {
		if _, _, err := run(t, bad...); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
