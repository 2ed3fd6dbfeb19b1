package simulate

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/fencedhq/fenced/pkg/playbook"
	"github.com/fencedhq/fenced/pkg/policy"
	"github.com/fencedhq/fenced/pkg/trace"
)

// TestTwoAggregatesOneSaturated: in a fleet of two aggregates, the one
// loaded to warn is saturated and holds its starving host in critical
// (no power, no evacuation), while the other aggregate's starving host is
// fenced and recovered — the fleet as a whole is not saturated.
func TestTwoAggregatesOneSaturated(t *testing.T) {
	res, changes := runTrace(t, "groups.jsonl.gz", "auto")
	held, healed := res.Hosts["cmp-202"], res.Hosts["cmp-217"]
	if held.Group != "agg-a" || healed.Group != "agg-b" {
		t.Fatalf("groups from the trace: cmp-202 in %q, cmp-217 in %q", held.Group, healed.Group)
	}
	if held.Final != playbook.Critical || !strings.Contains(held.Note, "group agg-a saturated") {
		t.Errorf("cmp-202 ends %s (%s); want critical, held by agg-a's saturation", held.Final, held.Note)
	}
	for _, c := range changesOf(changes, "cmp-202") {
		if c.To.Rank() > playbook.Critical.Rank() {
			t.Errorf("cmp-202 went %s→%s in a saturated aggregate", c.From, c.To)
		}
	}
	if _, ok := healed.First[playbook.Restored]; !ok || healed.Final != playbook.Normal {
		t.Errorf("cmp-217 ends %s, restored %v; want fenced, recovered, normal", healed.Final, healed.First)
	}
	if res.PowerCycles != 1 {
		t.Errorf("%d power cycles, want 1 (cmp-217's)", res.PowerCycles)
	}
	var a, b bool
	for _, g := range res.Groups {
		switch g.Name {
		case "agg-a":
			a = g.Total == 4 && strings.Contains(g.Hold, "saturated")
		case "agg-b":
			b = g.Total == 16 && g.Hold == "" && g.Guard.MaxConcurrent == 1 && g.Guard.MinHealthy.Percent == 50
		}
	}
	if !a || !b {
		t.Errorf("groups at the end: %+v", res.Groups)
	}
	var sum bytes.Buffer
	WriteSummary(&sum, res, 0)
	if !strings.Contains(sum.String(), "group agg-a: 4 hosts") || !strings.Contains(sum.String(), "cmp-202 (group agg-a)") {
		t.Errorf("summary lacks the groups:\n%s", sum.String())
	}

	// the same trace without its group lines is one fleet: the group guard
	// is what held cmp-202, and both starving hosts are power-cycled
	flat := withoutGroupLines(t, "groups.jsonl.gz")
	p, _ := policy.Default().WithMode("auto")
	res2, err := Run(context.Background(), trace.NewReader(bytes.NewReader(flat), "flat"), Options{Policy: p})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := res2.Hosts["cmp-202"].First[playbook.Rebooting]; !ok || len(res2.Groups) != 0 {
		t.Errorf("without groups cmp-202 should be fenced like cmp-217: %+v", res2.Hosts["cmp-202"])
	}
}

// TestGroupPolicyInSimulate: a policy's override for a trace's group
// decides that group's hosts; one for a group the trace lacks is an error.
func TestGroupPolicyInSimulate(t *testing.T) {
	src, err := os.ReadFile("../../policies/default.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// agg-b decided in observe (the file in auto): its starving host is
	// classified and notified, never acted on
	p, err := policy.Parse("p.yaml", append([]byte(strings.Replace(string(src), "mode: approve", "mode: auto", 1)), []byte("\ngroups:\n  agg-b:\n    mode: observe\n")...))
	if err != nil {
		t.Fatal(err)
	}
	r, err := trace.Open(traces + "groups.jsonl.gz")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	res, err := Run(context.Background(), r, Options{Policy: p})
	if err != nil {
		t.Fatal(err)
	}
	h := res.Hosts["cmp-217"]
	if _, fenced := h.First[playbook.Fenced]; fenced || res.PowerCycles != 0 || h.Final.Rank() < playbook.Warn.Rank() {
		t.Errorf("cmp-217 in an observe group: %s, first %v, %d power cycles; want classified, never fenced", h.Final, h.First, res.PowerCycles)
	}

	p2, err := policy.Parse("p.yaml", append(src, []byte("\ngroups:\n  agg-z:\n    mode: auto\n")...))
	if err != nil {
		t.Fatal(err)
	}
	r2, err := trace.Open(traces + "groups.jsonl.gz")
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if _, err := Run(context.Background(), r2, Options{Policy: p2}); err == nil || !strings.Contains(err.Error(), "groups.agg-z") {
		t.Fatalf("an override for a group the trace lacks: %v", err)
	}
}

func withoutGroupLines(t *testing.T, file string) []byte {
	t.Helper()
	return rewriteTrace(t, file, func(l []byte) []byte {
		if bytes.Contains(l, []byte(`"group"`)) {
			return nil
		}
		return l
	})
}

// TestReservedHostTakesTheEvacuatedServers: a fenced host's servers go to
// its group's own hosts while they have room, and the rest to the group's
// reserved host, taken into service; nothing to the other aggregate. With
// room enough in the group, the spare stays a spare, empty.
func TestReservedHostTakesTheEvacuatedServers(t *testing.T) {
	res, _ := runTrace(t, "reserved.jsonl.gz", "auto")
	if h := res.Hosts["cmp-301"]; h.Final != playbook.Normal || h.First[playbook.Restored].IsZero() {
		t.Fatalf("cmp-301 ends %s; want evacuated, restored, normal", h.Final)
	}
	spare := res.Hosts["cmp-309"]
	if spare.Reserved != playbook.ReservedInService || spare.Servers != 4 || spare.Group != "agg-r" {
		t.Errorf("cmp-309: %s with %d servers in %s; want in service with the 4 servers agg-r had no room for", spare.Reserved, spare.Servers, spare.Group)
	}
	for _, h := range []string{"cmp-300", "cmp-302", "cmp-303"} {
		if n := res.Hosts[h].Servers; n != 12 {
			t.Errorf("%s holds %d servers, want 12 (room for 2 more each, filled first)", h, n)
		}
	}
	for _, h := range []string{"cmp-310", "cmp-311", "cmp-315"} {
		if n := res.Hosts[h].Servers; n != 4 {
			t.Errorf("%s (agg-s) holds %d servers, want its own 4", h, n)
		}
	}
	if res.Evacuations != 10 {
		t.Errorf("%d evacuations, want 10", res.Evacuations)
	}

	// the group's hosts with room for all ten: the spare is not needed
	roomy := rewriteTrace(t, "reserved.jsonl.gz", func(l []byte) []byte {
		for _, h := range []string{"cmp-300", "cmp-302", "cmp-303"} {
			if bytes.Contains(l, []byte(`"host":"`+h+`","control":"servers_active","value":10`)) {
				return bytes.Replace(l, []byte(`"value":10`), []byte(`"value":4`), 1)
			}
		}
		return l
	})
	p, _ := policy.Default().WithMode("auto")
	res2, err := Run(context.Background(), trace.NewReader(bytes.NewReader(roomy), "roomy"), Options{Policy: p})
	if err != nil {
		t.Fatal(err)
	}
	if s := res2.Hosts["cmp-309"]; s.Reserved != playbook.ReservedSpare || s.Servers != 0 || res2.Evacuations != 10 {
		t.Errorf("with room in the group the spare is %s with %d servers (%d evacuations); want an empty spare", s.Reserved, s.Servers, res2.Evacuations)
	}
}

// rewriteTrace is a trace file's lines, each passed through f.
func rewriteTrace(t *testing.T, file string, f func([]byte) []byte) []byte {
	t.Helper()
	fh, err := os.Open(traces + file)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	gz, err := gzip.NewReader(fh)
	if err != nil {
		t.Fatal(err)
	}
	all, err := io.ReadAll(gz)
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	for _, l := range bytes.SplitAfter(all, []byte("\n")) {
		out = append(out, f(l)...)
	}
	return out
}

func TestReservedHostNamedLateIsAnError(t *testing.T) {
	tr := `{"t":"2026-01-15T01:00:00Z","host":"a","signal":"cpu_steal_pct","value":1}
{"host":"b","group":"g","reserved":true}
`
	_, err := Run(context.Background(), trace.NewReader(strings.NewReader(tr), "late"), Options{})
	if err == nil || !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), "before it") {
		t.Fatalf("a spare named after the first timed line: %v", err)
	}
}
