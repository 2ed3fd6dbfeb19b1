package simulate

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/fencedhq/fenced/pkg/playbook"
)

func TestCompareLinesUpTransitions(t *testing.T) {
	t0 := time.Date(2026, 1, 15, 1, 14, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	ch := func(host string, from, to playbook.State, s int) playbook.Change {
		return playbook.Change{Host: host, From: from, To: to, At: at(s)}
	}
	a := []playbook.Change{
		ch("cmp-017", playbook.Normal, playbook.Warn, 250),
		ch("cmp-017", playbook.Warn, playbook.Critical, 380),
		ch("cmp-017", playbook.Critical, playbook.Fenced, 390),
		ch("cmp-017", playbook.Fenced, playbook.Rebooting, 390),
		ch("cmp-003", playbook.Normal, playbook.Warn, 100), // same in both
		ch("cmp-009", playbook.Normal, playbook.Warn, 500), // only A
	}
	b := []playbook.Change{
		ch("cmp-003", playbook.Normal, playbook.Warn, 100),
		ch("cmp-017", playbook.Normal, playbook.Warn, 250),
		ch("cmp-017", playbook.Warn, playbook.Critical, 440), // a minute later
		ch("cmp-017", playbook.Critical, playbook.AwaitingApproval, 440),
		ch("cmp-042", playbook.Normal, playbook.Warn, 600), // only B
	}
	c := Compare(a, b, 0)
	if c.Hosts != 4 || c.Differing != 3 || c.Same != 2 || c.Transitions != [2]int{6, 5} || c.MaxDeltaS != 60 || c.Unmatched != 5 {
		t.Fatalf("summary %+v", c)
	}
	type row struct {
		host, step string
		a, b       bool
		delta      float64
	}
	var got []row
	for _, d := range c.Diffs {
		r := row{host: d.Host, step: string(d.From) + "→" + string(d.To), a: d.A != nil, b: d.B != nil}
		if d.DeltaSeconds != nil {
			r.delta = *d.DeltaSeconds
		}
		got = append(got, r)
	}
	want := []row{
		{"cmp-009", "normal→warn", true, false, 0},
		{"cmp-017", "warn→critical", true, true, 60},
		{"cmp-017", "critical→fenced", true, false, 0},
		{"cmp-017", "fenced→rebooting", true, false, 0},
		{"cmp-017", "critical→awaiting_approval", false, true, 0},
		{"cmp-042", "normal→warn", false, true, 0},
	}
	if len(got) != len(want) {
		t.Fatalf("rows %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("row %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	var out strings.Builder
	if err := WriteComparison(&out, c, "a.yaml", "b.yaml"); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"HOST", "A: a.yaml", "cmp-017  warn → critical", "2026-01-15T01:20:20Z", "+1m0s", "only A", "only B",
		"4 hosts moved; 3 differ. A made 6 transitions, B 5; 2 the same, 1 at other times, 5 made by one only."} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("table lacks %q:\n%s", s, out.String())
		}
	}
	if _, err := json.Marshal(c); err != nil {
		t.Fatal(err)
	}

	// within a tolerance the later critical counts as the same
	if c := Compare(a, b, time.Minute); c.Same != 3 || len(c.Diffs) != 5 {
		t.Fatalf("tolerance: %+v", c)
	}
	// identical runs: no rows, and the summary says so
	out.Reset()
	WriteComparison(&out, Compare(a, a, 0), "a", "a")
	if strings.Contains(out.String(), "HOST") || !strings.Contains(out.String(), "the same transitions") {
		t.Fatalf("identical runs:\n%s", out.String())
	}
}
