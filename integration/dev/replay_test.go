package dev

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fencedhq/fenced/integration/internal/harness"
	"github.com/fencedhq/fenced/pkg/playbook"
	"github.com/fencedhq/fenced/pkg/simulate"
)

// TestRecordedDevRunReplays records a `fenced run --dev` session twice —
// inside the replica (--record) and from its API (fenced trace record) —
// and replays each through `fenced simulate` with the same policy: the
// replay makes the same transitions as the live run, each within one tick
// (5 s of lab time) of when the live run made it. --compare of the default
// policy with a stricter one then shows where they part.
func TestRecordedDevRunReplays(t *testing.T) {
	bin := harness.Fenced(t)
	port := harness.FreePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	dir := t.TempDir()
	inside, polled := filepath.Join(dir, "inside.jsonl"), filepath.Join(dir, "polled.jsonl")
	const tick = 5 * time.Second // run --dev's default
	// in two groups: the recorded trace carries them (the API's
	// observations, which trace record polls, do not)
	p := harness.Start(t, bin, append(harness.DevArgs(port), "--record", inside, "--groups", "2")...)
	harness.WaitHTTP(t, base+"/healthz", 20*time.Second)
	poller := harness.Start(t, bin, "trace", "record", "--server", base, "--out", polled, "--every", "200ms")

	// lab-007 starves 30 s (lab time) after start: warn, critical, then it
	// waits for an approval that never comes
	harness.WaitState(t, base, "lab-007", 60*time.Second, "awaiting_approval")
	time.Sleep(2 * time.Second) // another minute of lab time
	live := liveChanges(t, base)
	poller.Stop()
	p.Stop()
	if len(live) < 3 {
		t.Fatalf("the live run made %d transitions: %+v", len(live), live)
	}
	if !strings.Contains(poller.Output(), "recorded ") {
		t.Fatalf("fenced trace record:\n%s", poller.Output())
	}

	for _, file := range []string{inside, polled} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b, []byte(`"tick":true`)) {
			t.Fatalf("%s has no tick lines", file)
		}
		if file == inside && (!bytes.Contains(b, []byte(`{"group":"rack-1"}`)) || !bytes.Contains(b, []byte(`{"host":"lab-007","group":"rack-2"}`))) {
			t.Fatalf("%s lacks the group lines of --groups 2", file)
		}
		out, err := exec.Command(bin, "simulate", "--trace", file, "--reboot-time", "30s", "--quiet").Output()
		if err != nil {
			t.Fatalf("simulate %s: %v", file, err)
		}
		var replay []playbook.Change
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			var c playbook.Change
			if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
				t.Fatalf("simulate's stdout: %v: %s", err, sc.Text())
			}
			replay = append(replay, c)
		}
		cmp := simulate.Compare(live, replay, tick)
		var worst time.Duration
		for _, c := range live {
			for _, r := range replay {
				if r.Host == c.Host && r.From == c.From && r.To == c.To {
					worst = max(worst, time.Duration(math.Abs(float64(r.At.Sub(c.At)))))
				}
			}
		}
		var table strings.Builder
		simulate.WriteComparison(&table, cmp, "live", "replay")
		if len(cmp.Diffs) > 0 {
			t.Errorf("%s: the replay differs from the live run by more than a tick:\n%s", filepath.Base(file), table.String())
			continue
		}
		t.Logf("%s (%d bytes): %d of %d live transitions replayed, the largest time difference %s (one tick: %s)",
			filepath.Base(file), len(b), cmp.Same, len(live), worst, tick)
	}

	// what a stricter policy would have done on the same history
	strict := filepath.Join(dir, "strict.yaml")
	pol, err := os.ReadFile(filepath.Join(harness.Root(), "policies", "default.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	stricter := strings.Replace(string(pol), "d_warn: 0.4", "d_warn: 0.6", 1)
	if stricter == string(pol) {
		t.Fatal("policies/default.yaml has no d_warn: 0.4 to change")
	}
	if err := os.WriteFile(strict, []byte(stricter), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "simulate", "--compare", filepath.Join(harness.Root(), "policies", "default.yaml"), strict,
		"--trace", inside, "--reboot-time", "30s").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "lab-007") || !strings.Contains(string(out), "normal → warn") {
		t.Fatalf("simulate --compare: %v\n%s", err, out)
	}
	t.Logf("simulate --compare default strict:\n%s", out)
}

// liveChanges reads every host's state changes from the API.
func liveChanges(t *testing.T, base string) []playbook.Change {
	t.Helper()
	var hosts struct{ Hosts []harness.Host }
	get(t, base+"/api/v1/hosts", &hosts)
	var all []playbook.Change
	for _, h := range hosts.Hosts {
		var rep struct{ Changes []playbook.Change }
		get(t, base+"/api/v1/hosts/"+h.Host, &rep)
		all = append(all, rep.Changes...)
	}
	return all
}

func get(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("%s: %v", url, err)
	}
}
