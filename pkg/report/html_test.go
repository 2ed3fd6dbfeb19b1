package report

import (
	"bytes"
	"image/png"
	"strings"
	"testing"
	"time"

	"github.com/fencedhq/fenced/pkg/audit"
	"github.com/fencedhq/fenced/pkg/fleet"
	"github.com/fencedhq/fenced/pkg/playbook"
)

func incident() Report {
	t0 := time.Date(2026, 1, 15, 1, 0, 0, 0, time.UTC)
	recs := []audit.Record{
		{Seq: 1, Timestamp: t0.Add(20 * time.Second), Action: "transition normal→warn", Component: "playbook", Verdict: "d=0.45 <script>alert(1)</script>"},
		{Seq: 2, Timestamp: t0.Add(30 * time.Second), Action: "disable", Outcome: audit.OutcomeIntent, Component: "playbook", RequestID: "req-1f2e"},
		{Seq: 3, Timestamp: t0.Add(35 * time.Second), Action: "live_migration_gate", Outcome: "open", Component: "migration-gate", Detail: "destination cmp-020; libvirt answers"},
		{Seq: 4, Timestamp: t0.Add(40 * time.Second), Action: "approve", Operator: "alice", Component: "api"},
	}
	h := &History{Detail: 1}
	for i := range 6 {
		h.T = append(h.T, t0.Add(time.Duration(i)*10*time.Second))
		h.D = append(h.D, 0.15*float64(i))
		h.State = append(h.State, "warn")
	}
	h.Signals = []Series{{Signal: "cpu_steal_pct", Warn: 10, Crit: 25, Value: []float64{5, 10, 20, 30, 40}, Contribution: []float64{.1, .2, .3, .4, .5}}}
	v := fleet.View{Host: playbook.Host{Name: "cmp-017", State: playbook.AwaitingApproval}}
	return Build(v, recs, Capacity{Cores: 16, VCPUs: 64, R2: 1.5, Known: true}).
		WithExtras(recs, Extras{At: t0.Add(time.Minute), History: h, Thresholds: Thresholds{Warn: 0.4, Crit: 0.7}, Servers: []string{"vm-1 (abc) ACTIVE"}})
}

// TestHTML: the frozen incident view holds its charts (d(t) with the
// thresholds and a mark per state change, the stacked contributions, one
// chart per signal), the timeline with request ids, the gate's verdict and
// destination, r1, r2, r_eff and the recommendation; it is self-contained
// and escapes what it quotes.
func TestHTML(t *testing.T) {
	var b bytes.Buffer
	rep := incident()
	rep.Chain = []ChainStep{{Step: "power_cycle", RequestID: "req-9a", Start: rep.At, Outcome: "ok", Plan: "step 1 of 2"}}
	if err := rep.HTML(&b, false); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, want := range []string{`data-series="d"`, `class="threshold"`, `<title>normal→warn</title>`, `class="area" data-signal="cpu_steal_pct"`,
		`data-series="cpu_steal_pct"`, "req-1f2e", "gate <b>open</b>", "destination <b>cmp-020</b>", "vm-1 (abc) ACTIVE",
		"r_eff ≈ r1·r2</b> 6.00", `<td>power_cycle</td>`, "step 1 of 2", "lower the CPU allocation ratio", "&lt;script&gt;"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	for _, never := range []string{"<script", "src=", `href="http`, "url(", "@import"} {
		if strings.Contains(page, never) {
			t.Errorf("the page is not self-contained or not escaped: %s", never)
		}
	}
}

func TestPNG(t *testing.T) {
	var b bytes.Buffer
	if err := incident().PNG(&b); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&b)
	if err != nil {
		t.Fatal(err)
	}
	// the d line is drawn: a dark pixel on the last point (d=0.75, near the top right)
	c := incident().dChart(900, 300)
	x, y := int(c.x(c.t[5])), int(c.y(0.75))
	dark := false
	for dy := -2; dy <= 2; dy++ {
		for dx := -2; dx <= 0; dx++ {
			r, g, bl, _ := img.At(x+dx, y+dy).RGBA()
			dark = dark || r>>8 < 80 && g>>8 < 80 && bl>>8 < 80
		}
	}
	if img.Bounds().Dx() != 900 || !dark {
		t.Errorf("png %v: no d line at (%d,%d)", img.Bounds(), x, y)
	}
}

// TestPNGMarksWithinTheSpan: a state change before the history's first
// point is not drawn (the SVG leaves it out too), not even in the margin.
func TestPNGMarksWithinTheSpan(t *testing.T) {
	rep := incident()
	before := rep.History.T[0].Add(-time.Second)
	rep.Timeline = append(rep.Timeline, audit.Record{Seq: 5, Timestamp: before, Action: "transition warn→critical"})
	c := rep.dChart(900, 300)
	x := int(c.x(before))
	if x < 0 || x >= padL {
		t.Fatalf("the test wants the mark in the left margin, at x=%d", x)
	}
	if strings.Contains(c.svg("d"), "warn→critical") {
		t.Error("the SVG draws a mark outside the span")
	}
	var b bytes.Buffer
	if err := rep.PNG(&b); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&b)
	if err != nil {
		t.Fatal(err)
	}
	if r, g, bl, _ := img.At(x, padT+40).RGBA(); r>>8 != 255 || g>>8 != 255 || bl>>8 != 255 {
		t.Errorf("the PNG draws a mark in the margin at x=%d", x)
	}
}
