package simulate

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fencedhq/fenced/pkg/playbook"
)

// Diff is one place where two runs' transitions of a host differ: the same
// transition at different times, or one that only one run made.
type Diff struct {
	Host string         `json:"host"`
	From playbook.State `json:"from"`
	To   playbook.State `json:"to"`
	A    *time.Time     `json:"a,omitempty"` // when run A made it; nil: A did not
	B    *time.Time     `json:"b,omitempty"` // when run B made it; nil: B did not
	// DeltaSeconds is B − A when both made it.
	DeltaSeconds *float64 `json:"delta_seconds,omitempty"`
}

// Comparison is where two runs of the same trace differ, host by host.
type Comparison struct {
	Hosts       int    `json:"hosts"`       // hosts that moved in either run
	Differing   int    `json:"differing"`   // hosts with at least one difference
	Same        int    `json:"same"`        // transitions both made within the tolerance
	Transitions [2]int `json:"transitions"` // transitions of A and of B
	Diffs       []Diff `json:"differences"` // by host, then time
	ToleranceS  int64  `json:"tolerance_s"` // times this close count as the same
	MaxDeltaS   int64  `json:"max_delta_s"` // the largest |B − A| of a transition both made
	Unmatched   int    `json:"unmatched"`   // transitions only one run made
}

// Compare lines up each host's transitions in runs a and b (the longest
// common sequence of from→to steps) and reports the steps made at times
// further apart than tolerance, and the steps only one run made.
func Compare(a, b []playbook.Change, tolerance time.Duration) Comparison {
	byHost := func(ch []playbook.Change) map[string][]playbook.Change {
		m := map[string][]playbook.Change{}
		for _, c := range ch {
			m[c.Host] = append(m[c.Host], c)
		}
		return m
	}
	ha, hb := byHost(a), byHost(b)
	hosts := map[string]bool{}
	for h := range ha {
		hosts[h] = true
	}
	for h := range hb {
		hosts[h] = true
	}
	names := make([]string, 0, len(hosts))
	for h := range hosts {
		names = append(names, h)
	}
	sort.Strings(names)
	cmp := Comparison{Hosts: len(names), Transitions: [2]int{len(a), len(b)}, ToleranceS: int64(tolerance / time.Second)}
	for _, h := range names {
		d, same, maxDelta := compareHost(h, ha[h], hb[h], tolerance)
		cmp.Same += same
		cmp.MaxDeltaS = max(cmp.MaxDeltaS, int64(maxDelta/time.Second))
		if len(d) > 0 {
			cmp.Differing++
		}
		for _, x := range d {
			if x.A == nil || x.B == nil {
				cmp.Unmatched++
			}
		}
		cmp.Diffs = append(cmp.Diffs, d...)
	}
	return cmp
}

func compareHost(host string, a, b []playbook.Change, tolerance time.Duration) (diffs []Diff, same int, maxDelta time.Duration) {
	key := func(c playbook.Change) string { return string(c.From) + "→" + string(c.To) }
	// longest common subsequence of the steps
	n, m := len(a), len(b)
	l := make([][]int, n+1)
	for i := range l {
		l[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if key(a[i]) == key(b[j]) {
				l[i][j] = l[i+1][j+1] + 1
			} else {
				l[i][j] = max(l[i+1][j], l[i][j+1])
			}
		}
	}
	only := func(c playbook.Change, inA bool) Diff {
		at := c.At
		d := Diff{Host: host, From: c.From, To: c.To}
		if inA {
			d.A = &at
		} else {
			d.B = &at
		}
		return d
	}
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && key(a[i]) == key(b[j]):
			delta := b[j].At.Sub(a[i].At)
			abs := max(delta, -delta)
			maxDelta = max(maxDelta, abs)
			if abs > tolerance {
				ta, tb, s := a[i].At, b[j].At, delta.Seconds()
				diffs = append(diffs, Diff{Host: host, From: a[i].From, To: a[i].To, A: &ta, B: &tb, DeltaSeconds: &s})
			} else {
				same++
			}
			i, j = i+1, j+1
		case j >= m || i < n && l[i+1][j] >= l[i][j+1]:
			diffs = append(diffs, only(a[i], true))
			i++
		default:
			diffs = append(diffs, only(b[j], false))
			j++
		}
	}
	first := func(d Diff) time.Time {
		if d.A != nil && (d.B == nil || d.A.Before(*d.B)) {
			return *d.A
		}
		return *d.B
	}
	sort.SliceStable(diffs, func(i, j int) bool { return first(diffs[i]).Before(first(diffs[j])) })
	return diffs, same, maxDelta
}

// WriteComparison prints the comparison as a table: one row per
// difference, then a summary.
func WriteComparison(w io.Writer, c Comparison, nameA, nameB string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if len(c.Diffs) > 0 {
		fmt.Fprintf(tw, "HOST\tTRANSITION\tA: %s\tB: %s\tB − A\n", nameA, nameB)
		for _, d := range c.Diffs {
			delta := "only A"
			switch {
			case d.A == nil:
				delta = "only B"
			case d.B != nil:
				delta = fmtDelta(time.Duration(*d.DeltaSeconds * float64(time.Second)))
			}
			fmt.Fprintf(tw, "%s\t%s → %s\t%s\t%s\t%s\n", d.Host, d.From, d.To, fmtAt(d.A), fmtAt(d.B), delta)
		}
		fmt.Fprintln(tw)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s moved; %d differ. A made %d transitions, B %d; %d the same", plural(c.Hosts, "host"), c.Differing, c.Transitions[0], c.Transitions[1], c.Same)
	if c.ToleranceS > 0 {
		fmt.Fprintf(&b, " (within %ds)", c.ToleranceS)
	}
	fmt.Fprintf(&b, ", %d at other times, %d made by one only.", len(c.Diffs)-c.Unmatched, c.Unmatched)
	if len(c.Diffs) == 0 {
		b.WriteString(" The two policies make the same transitions on this trace.")
	}
	_, err := fmt.Fprintln(w, b.String())
	return err
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func fmtAt(t *time.Time) string {
	if t == nil {
		return "—"
	}
	return t.UTC().Format(time.RFC3339)
}

func fmtDelta(d time.Duration) string {
	d = d.Round(time.Millisecond)
	if d >= 0 {
		return "+" + d.String()
	}
	return d.String()
}
