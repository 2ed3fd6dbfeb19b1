package report

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"strings"
	"time"
)

// A chart is drawn twice from one description: as SVG (the console's
// incident view and the HTML report) and as PNG (fenced report --png).
type chart struct {
	w, h   int
	t      []time.Time
	lines  []line
	hlines []hline
	marks  []mark
	stack  []line // stacked areas, bottom first (ys are each layer's own height)
	ymax   float64
	title  string
}

type line struct {
	name  string
	ys    []float64 // aligned with chart.t from its end (a shorter series starts later)
	color string
}

type hline struct {
	y     float64
	color string
	label string
}

type mark struct {
	t     time.Time
	label string
}

const padL, padR, padT, padB = 34, 8, 16, 16

func (c *chart) span() (time.Time, time.Time) {
	if len(c.t) == 0 {
		return time.Time{}, time.Time{}
	}
	return c.t[0], c.t[len(c.t)-1]
}

func (c *chart) x(t time.Time) float64 {
	t0, t1 := c.span()
	w := float64(c.w - padL - padR)
	if !t1.After(t0) {
		return padL + w
	}
	return padL + w*float64(t.Sub(t0))/float64(t1.Sub(t0))
}

func (c *chart) y(v float64) float64 {
	h := float64(c.h - padT - padB)
	m := c.ymax
	if m <= 0 {
		m = 1
	}
	return padT + h - h*math.Min(math.Max(v/m, 0), 1.02)
}

// shown are the marks within the chart's span (the audit reaches back
// further than the history).
func (c *chart) shown() []mark {
	t0, t1 := c.span()
	var out []mark
	for _, m := range c.marks {
		if !m.t.Before(t0) && !m.t.After(t1) {
			out = append(out, m)
		}
	}
	return out
}

// at is the time of the i-th value of a series of n values (series end at
// the chart's last time).
func (c *chart) at(i, n int) time.Time { return c.t[len(c.t)-n+i] }

func (c *chart) svg(label string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="%s" xmlns="http://www.w3.org/2000/svg">`, c.w, c.h, c.w, c.h, xmlEsc(label))
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="#fafafa" stroke="#ddd"/>`, padL, padT, c.w-padL-padR, c.h-padT-padB)
	if c.title != "" {
		fmt.Fprintf(&b, `<text x="%d" y="11" font-size="11" fill="#333">%s</text>`, padL, xmlEsc(c.title))
	}
	fmt.Fprintf(&b, `<text x="%d" y="%.1f" font-size="9" fill="#666" text-anchor="end">%s</text>`, padL-3, c.y(c.ymax)+3, num(c.ymax))
	fmt.Fprintf(&b, `<text x="%d" y="%.1f" font-size="9" fill="#666" text-anchor="end">0</text>`, padL-3, c.y(0)+3)
	if t0, t1 := c.span(); t1.After(t0) {
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="9" fill="#666">%s</text>`, padL, c.h-4, t0.UTC().Format("15:04:05"))
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="9" fill="#666" text-anchor="end">%s UTC</text>`, c.w-padR, c.h-4, t1.UTC().Format("15:04:05"))
	}
	// stacked areas: each layer from the sum below it to the sum with it
	if len(c.stack) > 0 && len(c.t) > 0 {
		n := len(c.stack[0].ys)
		base := make([]float64, n)
		for _, l := range c.stack {
			var top, bot []string
			for i := 0; i < n; i++ {
				x := c.x(c.at(i, n))
				top = append(top, fmt.Sprintf("%.1f,%.1f", x, c.y(base[i]+l.ys[i])))
				bot = append(bot, fmt.Sprintf("%.1f,%.1f", x, c.y(base[i])))
			}
			for i, j := 0, len(bot)-1; i < j; i, j = i+1, j-1 {
				bot[i], bot[j] = bot[j], bot[i]
			}
			fmt.Fprintf(&b, `<polygon class="area" data-signal="%s" fill="%s" fill-opacity=".75" points="%s %s"><title>%s</title></polygon>`,
				xmlEsc(l.name), l.color, strings.Join(top, " "), strings.Join(bot, " "), xmlEsc(l.name))
			for i := range base {
				base[i] += l.ys[i]
			}
		}
	}
	for _, h := range c.hlines {
		y := c.y(h.y)
		fmt.Fprintf(&b, `<line class="threshold" x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="%s" stroke-dasharray="4,3"/>`, padL, c.w-padR, y, y, h.color)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" font-size="9" fill="%s" text-anchor="end">%s</text>`, c.w-padR-2, y-2, h.color, xmlEsc(h.label))
	}
	for _, m := range c.shown() {
		x := c.x(m.t)
		fmt.Fprintf(&b, `<line class="mark" x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#555" stroke-width="1"><title>%s</title></line>`, x, x, padT, c.h-padB, xmlEsc(m.label))
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="9" fill="#333" transform="rotate(-90 %.1f %d)" text-anchor="end">%s</text>`, x+3, padT+2, x+3, padT+2, xmlEsc(m.label))
	}
	for _, l := range c.lines {
		n := len(l.ys)
		if n == 0 {
			continue
		}
		pts := make([]string, n)
		for i, v := range l.ys {
			pts[i] = fmt.Sprintf("%.1f,%.1f", c.x(c.at(i, n)), c.y(v))
		}
		fmt.Fprintf(&b, `<polyline class="series" data-series="%s" fill="none" stroke="%s" stroke-width="1.6" points="%s"/>`, xmlEsc(l.name), l.color, strings.Join(pts, " "))
	}
	b.WriteString(`</svg>`)
	return b.String()
}

// png draws the chart without text: the lines, thresholds (dashed) and marks.
func (c *chart) png(w io.Writer) error {
	img := image.NewRGBA(image.Rect(0, 0, c.w, c.h))
	fill(img, 0, 0, c.w, c.h, color.RGBA{255, 255, 255, 255})
	fill(img, padL, padT, c.w-padR, c.h-padB, color.RGBA{250, 250, 250, 255})
	frame := color.RGBA{200, 200, 200, 255}
	seg(img, padL, padT, c.w-padR, padT, frame, 0)
	seg(img, padL, c.h-padB, c.w-padR, c.h-padB, frame, 0)
	seg(img, padL, padT, padL, c.h-padB, frame, 0)
	seg(img, c.w-padR, padT, c.w-padR, c.h-padB, frame, 0)
	for _, h := range c.hlines {
		y := int(c.y(h.y))
		seg(img, padL, y, c.w-padR, y, hex(h.color), 6)
	}
	for _, m := range c.shown() {
		x := int(c.x(m.t))
		seg(img, x, padT, x, c.h-padB, color.RGBA{90, 90, 90, 255}, 0)
	}
	for _, l := range c.lines {
		n := len(l.ys)
		col := hex(l.color)
		for i := 1; i < n; i++ {
			x0, y0 := c.x(c.at(i-1, n)), c.y(l.ys[i-1])
			x1, y1 := c.x(c.at(i, n)), c.y(l.ys[i])
			for _, d := range []float64{0, 1} { // 2 px wide
				seg(img, int(x0), int(y0+d), int(x1), int(y1+d), col, 0)
			}
		}
	}
	if err := png.Encode(w, img); err != nil {
		return fmt.Errorf("report: png: %w", err)
	}
	return nil
}

func fill(img *image.RGBA, x0, y0, x1, y1 int, c color.RGBA) {
	for y := y0; y < y1; y++ {
		for x := x0; x < x1; x++ {
			img.SetRGBA(x, y, c)
		}
	}
}

// seg draws a line (DDA); dash > 0 leaves every other dash-long run blank.
func seg(img *image.RGBA, x0, y0, x1, y1 int, c color.RGBA, dash int) {
	dx, dy := x1-x0, y1-y0
	n := max(abs(dx), abs(dy))
	if n == 0 {
		img.SetRGBA(x0, y0, c)
		return
	}
	for i := 0; i <= n; i++ {
		if dash > 0 && (i/dash)%2 == 1 {
			continue
		}
		img.SetRGBA(x0+dx*i/n, y0+dy*i/n, c)
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func hex(s string) color.RGBA {
	var r, g, b uint8
	if _, err := fmt.Sscanf(s, "#%02x%02x%02x", &r, &g, &b); err != nil {
		return color.RGBA{0, 0, 0, 255}
	}
	return color.RGBA{r, g, b, 255}
}

func num(v float64) string { return fmt.Sprintf("%.3g", v) }

func xmlEsc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&#39;").Replace(s)
}

// palette colours the signals (the same order everywhere).
var palette = []string{"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f"}
