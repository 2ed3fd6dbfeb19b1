package simulate

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fencedhq/fenced/pkg/playbook"
	"github.com/fencedhq/fenced/pkg/policy"
	"github.com/fencedhq/fenced/pkg/signals"
	"github.com/fencedhq/fenced/pkg/trace"
)

const traces = "../../testdata/traces/"

func runTrace(t *testing.T, file, mode string) (*Result, []playbook.Change) {
	t.Helper()
	p, err := policy.Default().WithMode(mode)
	if err != nil {
		t.Fatal(err)
	}
	r, err := trace.Open(traces + file)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out bytes.Buffer
	res, err := Run(context.Background(), r, Options{Policy: p, Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	// stdout carries exactly one JSON object per change, with the public fields
	var printed []playbook.Change
	dec := json.NewDecoder(&out)
	dec.DisallowUnknownFields()
	for {
		var c playbook.Change
		if err := dec.Decode(&c); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("stdout is not one change per line: %v", err)
		}
		printed = append(printed, c)
	}
	if len(printed) != len(res.Changes) {
		t.Fatalf("printed %d changes, result has %d", len(printed), len(res.Changes))
	}
	return res, printed
}

// firstCrossing scans a trace for the first sample of a signal on a host at or over v.
func firstCrossing(t *testing.T, file, host string, sig signals.Name, v float64) time.Time {
	t.Helper()
	r, err := trace.Open(traces + file)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for {
		rec, err := r.Next()
		if err != nil {
			t.Fatalf("%s never crosses %v on %s: %v", sig, v, host, err)
		}
		if rec.Host == host && rec.Kind == trace.KindSignal && rec.Signal == sig && rec.Value >= v {
			return rec.T
		}
	}
}

func changesOf(cs []playbook.Change, host string) []playbook.Change {
	var out []playbook.Change
	for _, c := range cs {
		if c.Host == host {
			out = append(out, c)
		}
	}
	return out
}

func path(cs []playbook.Change) string {
	if len(cs) == 0 {
		return ""
	}
	s := []string{string(cs[0].From)}
	for _, c := range cs {
		s = append(s, string(c.To))
	}
	return strings.Join(s, "→")
}

func TestIncidentAuto(t *testing.T) {
	res, printed := runTrace(t, "incident.jsonl.gz", "auto")
	lagOver := firstCrossing(t, "incident.jsonl.gz", "cmp-017", signals.HeartbeatLag, 30)
	cs := changesOf(printed, "cmp-017")
	if got, want := path(cs), "normal→warn→critical→fenced→rebooting→restored→normal"; got != want {
		t.Fatalf("cmp-017 went %s, want %s", got, want)
	}
	crit, fenced := cs[1], cs[2]
	if d := crit.At.Sub(lagOver); d < 0 || d > 10*time.Second {
		t.Errorf("critical at %s, heartbeat lag crossed 30 s at %s: want within one tick", crit.At, lagOver)
	}
	if !strings.Contains(crit.Reason, "heartbeat_lag_s over critical") || !strings.Contains(crit.Reason, "execution incoherence") {
		t.Errorf("critical reason should name the trigger and the incoherence: %q", crit.Reason)
	}
	if d := fenced.At.Sub(crit.At); d < 0 || d > 10*time.Second {
		t.Errorf("fenced %s after critical, want within one tick", d)
	}
	if !strings.Contains(cs[3].Reason, "gate closed") {
		t.Errorf("libvirt is unresponsive: the gate must send the host to a power cycle, got %q", cs[3].Reason)
	}
	if res.PowerCycles != 1 || res.Migrations != 0 || res.Evacuations == 0 {
		t.Errorf("power cycles %d migrations %d evacuations %d, want one power off/on and the servers evacuated",
			res.PowerCycles, res.Migrations, res.Evacuations)
	}
	// the paper: decision at 02:02 (48 min after 01:14), restoration at 02:25 (71 min)
	if fenced.At.Sub(trace.IncidentOnset) >= PaperDecision/4 {
		t.Errorf("decision %s after onset, not clearly better than the paper's 48 min", fenced.At.Sub(trace.IncidentOnset))
	}
	if r := cs[4].At.Sub(trace.IncidentOnset); r >= PaperRestoration/4 {
		t.Errorf("restored %s after onset", r)
	}
	for _, c := range printed {
		if c.Host != "cmp-017" {
			t.Errorf("healthy host changed state: %+v", c)
		}
	}
}

func TestIncidentApproveWaitsAndExpires(t *testing.T) {
	res, printed := runTrace(t, "incident.jsonl.gz", "approve")
	cs := changesOf(printed, "cmp-017")
	if got := path(cs); !strings.HasPrefix(got, "normal→warn→critical→awaiting_approval→needs_human") {
		t.Fatalf("cmp-017 went %s", got)
	}
	if d := cs[3].At.Sub(cs[2].At); d < 15*time.Minute || d > 15*time.Minute+10*time.Second {
		t.Errorf("approval expired after %s, want the 15 min deadline", d)
	}
	if res.PowerCycles != 0 || res.Migrations != 0 {
		t.Errorf("acted without approval: %d power cycles, %d migrations", res.PowerCycles, res.Migrations)
	}
}

func TestIncidentObserveNeverActs(t *testing.T) {
	res, printed := runTrace(t, "incident.jsonl.gz", "observe")
	for _, c := range printed {
		if c.To.Rank() >= playbook.Fenced.Rank() || c.To == playbook.AwaitingApproval {
			t.Errorf("observe mode reached %s", c.To)
		}
	}
	if res.Intents != 0 || res.PowerCycles != 0 {
		t.Errorf("observe mode journalled %d intents, %d power cycles", res.Intents, res.PowerCycles)
	}
	if res.Hosts["cmp-017"].First[playbook.Critical].IsZero() {
		t.Error("observe mode must still classify the host as critical")
	}
}

func TestHealthyNoisyFleetNeverLeavesNormal(t *testing.T) {
	res, printed := runTrace(t, "healthy.jsonl.gz", "auto")
	if len(printed) != 0 {
		t.Fatalf("healthy fleet changed state %d times, first %+v", len(printed), printed[0])
	}
	noisy := 0
	for _, h := range res.Hosts {
		if !h.Onset.IsZero() {
			noisy++
		}
	}
	if noisy == 0 {
		t.Fatal("the healthy trace has no spike over a warn threshold: it tests nothing")
	}
	if res.PowerCycles+res.Intents != 0 {
		t.Fatal("acted on a healthy fleet")
	}
}

func TestClusterWideSaturationStopsFencing(t *testing.T) {
	res, printed := runTrace(t, "saturation.jsonl.gz", "auto")
	for _, c := range printed {
		if c.To == playbook.Fenced || c.To == playbook.Rebooting {
			t.Fatalf("fenced %s in a saturated cluster", c.Host)
		}
	}
	starved := 0
	for _, name := range []string{"cmp-103", "cmp-107"} {
		h := res.Hosts[name]
		if h.Final == playbook.Critical && strings.Contains(h.Note, "cluster-wide saturation") {
			starved++
		}
	}
	if starved != 2 {
		t.Fatalf("both starved hosts must be held in critical with a saturation note: %+v %+v", res.Hosts["cmp-103"], res.Hosts["cmp-107"])
	}
	if res.PowerCycles != 0 {
		t.Fatal("power-cycled in a saturated cluster")
	}
}

func TestBadTraceNamesTheLine(t *testing.T) {
	r, err := trace.Open("testdata/bad-value.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out bytes.Buffer
	_, err = Run(context.Background(), r, Options{Out: &out})
	if err == nil || !strings.Contains(err.Error(), "testdata/bad-value.jsonl:3") {
		t.Fatalf("error %v should name testdata/bad-value.jsonl:3", err)
	}
}

// The committed traces are what the generator makes: regenerate and compare.
func TestTracesMatchGenerator(t *testing.T) {
	for file, sc := range map[string]trace.Scenario{
		"incident.jsonl.gz":   {Kind: "incident", Step: 10 * time.Second, Seed: 1},
		"healthy.jsonl.gz":    {Kind: "healthy", Hosts: 12, Start: trace.IncidentDate, Duration: 6 * time.Hour, Step: 30 * time.Second, Seed: 1},
		"saturation.jsonl.gz": {Kind: "saturation", Step: 10 * time.Second, Seed: 1},
		"groups.jsonl.gz":     {Kind: "groups", Step: 10 * time.Second, Seed: 1},
		"reserved.jsonl.gz":   {Kind: "reserved", Step: 10 * time.Second, Seed: 1},
	} {
		f, err := os.Open(traces + file)
		if err != nil {
			t.Fatal(err)
		}
		gz, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		have, err := io.ReadAll(gz)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		var want bytes.Buffer
		if err := trace.Generate(&want, sc); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(have, want.Bytes()) {
			t.Errorf("%s differs from `fenced trace generate`; regenerate it (see testdata/traces/README.md)", file)
		}
	}
}
