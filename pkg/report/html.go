package report

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"sort"
	"strings"

	"github.com/fencedhq/fenced/pkg/audit"
)

// marks are the state changes of the timeline.
func (r Report) marks() []mark {
	var ms []mark
	for _, rec := range r.Timeline {
		if to, ok := strings.CutPrefix(rec.Action, "transition "); ok {
			ms = append(ms, mark{t: rec.Timestamp, label: to})
		}
	}
	return ms
}

func (r Report) thresholds() Thresholds {
	if r.Thresholds != nil {
		return *r.Thresholds
	}
	return Thresholds{}
}

// dChart is d(t) with the warn and critical lines and the state changes.
func (r Report) dChart(w, h int) *chart {
	c := &chart{w: w, h: h, ymax: 1, title: "d(t)"}
	if r.History != nil {
		c.t = r.History.T
		c.lines = []line{{name: "d", ys: r.History.D, color: "#222222"}}
	}
	th := r.thresholds()
	if th.Warn > 0 {
		c.hlines = append(c.hlines, hline{y: th.Warn, color: "#b08800", label: fmt.Sprintf("warn %.2g", th.Warn)})
	}
	if th.Crit > 0 {
		c.hlines = append(c.hlines, hline{y: th.Crit, color: "#cc0000", label: fmt.Sprintf("crit %.2g", th.Crit)})
	}
	c.marks = r.marks()
	return c
}

// stackChart is each signal's contribution to d, stacked.
func (r Report) stackChart(w, h int) *chart {
	c := &chart{w: w, h: h, ymax: 1, title: "contributions to d (stacked)"}
	if r.History == nil {
		return c
	}
	c.t = r.History.T
	for i, s := range r.History.Signals {
		c.stack = append(c.stack, line{name: s.Signal, ys: s.Contribution, color: palette[i%len(palette)]})
	}
	th := r.thresholds()
	if th.Crit > 0 {
		c.hlines = []hline{{y: th.Crit, color: "#cc0000", label: "crit"}}
	}
	c.marks = r.marks()
	return c
}

// signalCharts are one small chart per signal with its thresholds.
func (r Report) signalCharts(w, h int) []*chart {
	if r.History == nil {
		return nil
	}
	var out []*chart
	for i, s := range r.History.Signals {
		top := math.Max(s.Crit*1.2, 1e-9)
		for _, v := range s.Value {
			top = math.Max(top, v)
		}
		c := &chart{w: w, h: h, t: r.History.T, ymax: top, title: s.Signal,
			lines: []line{{name: s.Signal, ys: s.Value, color: palette[i%len(palette)]}}}
		if s.Warn > 0 {
			c.hlines = append(c.hlines, hline{y: s.Warn, color: "#b08800", label: "warn"})
		}
		if s.Crit > 0 {
			c.hlines = append(c.hlines, hline{y: s.Crit, color: "#cc0000", label: "crit"})
		}
		out = append(out, c)
	}
	return out
}

// Events are the timeline and the actions in the audit's order: transitions,
// intents, outcomes and operator commands.
func (r Report) Events() []audit.Record {
	all := append(append([]audit.Record(nil), r.Timeline...), r.Actions...)
	sort.SliceStable(all, func(i, j int) bool { return all[i].Seq < all[j].Seq })
	return all
}

// PNG writes the d(t) chart as a PNG image (fenced report --png).
func (r Report) PNG(w io.Writer) error { return r.dChart(900, 300).png(w) }

// HTML writes the incident view: the whole page, self-contained (inline
// style, inline SVG, no script, nothing fetched), or with fragment only
// the part the console puts into its own page.
func (r Report) HTML(w io.Writer, fragment bool) error {
	var sig []template.HTML
	for _, c := range r.signalCharts(300, 110) {
		sig = append(sig, template.HTML(c.svg(c.title))) //nolint:gosec // chart.svg escapes every text
	}
	data := struct {
		R        Report
		Fragment bool
		DChart   template.HTML
		Stack    template.HTML
		Signals  []template.HTML
	}{R: r, Fragment: fragment,
		DChart:  template.HTML(r.dChart(900, 260).svg("d(t) of " + r.Host)),              //nolint:gosec
		Stack:   template.HTML(r.stackChart(900, 180).svg("contributions of " + r.Host)), //nolint:gosec
		Signals: sig}
	if err := page.Execute(w, data); err != nil {
		return fmt.Errorf("report: html: %w", err)
	}
	return nil
}

var page = template.Must(template.New("report").Funcs(template.FuncMap{
	"hms": func(t any) string {
		type timer interface{ Format(string) string }
		if tt, ok := t.(timer); ok {
			return tt.Format("2006-01-02 15:04:05 UTC")
		}
		return ""
	},
	"f2":    func(v float64) string { return fmt.Sprintf("%.2f", v) },
	"color": func(i int) string { return palette[i%len(palette)] },
}).Parse(`{{if not .Fragment}}<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>fenced — incident of {{.R.Host}}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
</head><body>{{end}}<div class="incident" id="incident" data-host="{{.R.Host}}" data-state="{{.R.State}}">
<style>
.incident { font: 14px/1.4 system-ui, sans-serif; color: #222; max-width: 940px; }
.incident h2 { font-size: 1.25em; margin: .2em 0; } .incident h3 { font-size: 1.05em; margin: 1.2em 0 .3em; }
.incident table { border-collapse: collapse; width: 100%; font-size: .9em; }
.incident th, .incident td { text-align: left; padding: .25em .5em; border-bottom: 1px solid #eee; vertical-align: top; }
.incident th { background: #f6f6f6; } .incident .rid { font-family: monospace; font-size: .85em; color: #555; }
.incident .signals { display: grid; grid-template-columns: repeat(3, 300px); gap: 6px; }
.incident .legend span { display: inline-block; margin-right: .8em; font-size: .85em; }
.incident .legend i { display: inline-block; width: .9em; height: .9em; margin-right: .3em; vertical-align: middle; }
.incident .kv b { display: inline-block; min-width: 9em; }
.incident .rec { background: #f3f7ff; border-left: 4px solid #4e79a7; padding: .5em .8em; }
</style>
<h2>{{.R.Host}} — <span class="state">{{.R.State}}</span></h2>
<div class="kv">{{if not .R.At.IsZero}}<div><b>as of</b> {{hms .R.At}} (the daemon's clock)</div>{{end}}
{{if not .R.Onset.IsZero}}<div><b>onset</b> {{hms .R.Onset}}</div>{{end}}
{{with .R.Thresholds}}<div><b>thresholds</b> warn d ≥ {{.Warn}}, critical d ≥ {{.Crit}}</div>{{end}}</div>
<h3>d(t)</h3>
{{.DChart}}
<h3>Contributions to d</h3>
{{.Stack}}
{{with .R.History}}<div class="legend">{{range $i, $s := .Signals}}<span><i style="background:{{color $i}}"></i>{{$s.Signal}}</span>{{end}}</div>{{end}}
<h3>Signals</h3>
{{if .Signals}}<div class="signals">{{range .Signals}}{{.}}{{end}}</div>{{else}}<p>no signal history kept for this host (kept from when it nears warn)</p>{{end}}
<h3>Live-migration gate</h3>
{{with .R.Gate}}<p class="gate">gate <b>{{.Outcome}}</b> at {{hms .At}}{{if .Destination}}; destination <b>{{.Destination}}</b>{{end}}{{if .Detail}} — {{.Detail}}{{end}}</p>{{else}}<p class="gate">the gate has not been asked for this host</p>{{end}}
<h3>Servers on the host</h3>
{{if .R.Servers}}<ul class="servers">{{range .R.Servers}}<li>{{.}}</li>{{end}}</ul>{{else}}<p>none known</p>{{end}}
<h3>Timeline</h3>
<table class="timeline"><thead><tr><th>time (UTC)</th><th>what</th><th>who</th><th>outcome</th><th>request id</th><th>detail</th></tr></thead><tbody>
{{range .R.Events}}<tr><td>{{hms .Timestamp}}</td><td>{{.Action}}</td><td>{{if .Operator}}{{.Operator}}{{else if .FenceToken}}token {{.FenceToken}}{{end}}</td><td>{{.Outcome}}</td><td class="rid">{{.RequestID}}</td><td>{{if .Verdict}}{{.Verdict}}{{else}}{{.Detail}}{{end}}</td></tr>{{end}}
</tbody></table>
{{with .R.Chain}}<h3>Recovery chain</h3>
<table class="chain"><thead><tr><th>step</th><th>start</th><th>end</th><th>outcome</th><th>request id</th><th>plan</th><th>why it ended</th></tr></thead><tbody>
{{range .}}<tr><td>{{.Step}}</td><td>{{hms .Start}}</td><td>{{if not .End.IsZero}}{{hms .End}}{{end}}</td><td>{{.Outcome}}</td><td class="rid">{{.RequestID}}</td><td>{{.Plan}}</td><td>{{.Detail}}</td></tr>{{end}}
</tbody></table>{{end}}
<h3>Oversubscription and recommendation</h3>
{{if gt .R.R1 0.0}}<p class="kv"><b>r1 = V/C</b> {{f2 .R.R1}} · <b>r2 = P/v</b> {{f2 .R.R2}} · <b>r_eff ≈ r1·r2</b> {{f2 .R.REff}}</p>{{else}}<p>capacity unknown: r1, r2 and r_eff not computed</p>{{end}}
<p class="rec">{{.R.Recommendation}}</p>
</div>{{if not .Fragment}}</body></html>{{end}}
`))
