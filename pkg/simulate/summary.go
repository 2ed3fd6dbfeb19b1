package simulate

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fencedhq/fenced/pkg/playbook"
	"github.com/fencedhq/fenced/pkg/trace"
)

// The paper's incident (section 3, Table 1), measured from the onset at 01:14.
var (
	PaperDecision    = trace.IncidentDecision.Sub(trace.IncidentOnset) // 48 min
	PaperRestoration = trace.IncidentRestored.Sub(trace.IncidentOnset) // 71 min
)

func since(from, to time.Time) string {
	if from.IsZero() || to.IsZero() {
		return "-"
	}
	d := to.Sub(from)
	if d < 0 {
		return "-" + (-d).String()
	}
	return "+" + d.String()
}

// WriteSummary writes a human summary of a run.
func WriteSummary(out io.Writer, res *Result, maxHosts int) {
	fmt.Fprintf(out, "fenced simulate: %d hosts, %s → %s, %d ticks, mode %s, policy %s\n",
		len(res.Hosts), res.Start.Format(time.RFC3339), res.End.Format(time.RFC3339), res.Ticks, res.Mode, res.PolicyVersion)
	fmt.Fprintf(out, "  %d samples, %d state changes, %d intents journalled, %d live migrations (%d failed), %d power cycles, %d evacuations, %d notifications\n",
		res.Samples, len(res.Changes), res.Intents, res.Migrations, res.MigrationFails, res.PowerCycles, res.Evacuations, res.Notifications)

	var moved []*HostResult
	finals := map[playbook.State]int{}
	for _, h := range res.Hosts {
		finals[h.Final]++
		if h.Changes > 0 || h.Final != playbook.Normal || h.Reserved != "" {
			moved = append(moved, h)
		}
	}
	var fs []string
	for _, s := range playbook.States {
		if finals[s] > 0 {
			fs = append(fs, fmt.Sprintf("%s %d", s, finals[s]))
		}
	}
	fmt.Fprintf(out, "  final states: %s\n", strings.Join(fs, ", "))
	for _, g := range res.Groups {
		if g.Name == playbook.DefaultGroup && g.Total == 0 {
			continue
		}
		line := fmt.Sprintf("  group %s: %d hosts, %d healthy, %d at warn or worse, %d fenced", g.Name, g.Total, g.Healthy, g.AtWarnOrWorse, g.Fencing)
		if g.PolicyOverrides {
			line += ", policy with group overrides (mode " + string(g.Mode) + ")"
		}
		if g.Hold != "" {
			line += "; holds automatic fencing: " + g.Hold
		}
		fmt.Fprintln(out, line)
	}
	sort.Slice(moved, func(i, j int) bool { return moved[i].Host < moved[j].Host })
	if len(moved) == 0 {
		fmt.Fprintln(out, "  no host left normal")
		return
	}
	if maxHosts > 0 && len(moved) > maxHosts {
		fmt.Fprintf(out, "  %d hosts left normal; the first %d:\n", len(moved), maxHosts)
		moved = moved[:maxHosts]
	}
	for _, h := range moved {
		name := h.Host
		if len(res.Groups) > 0 {
			name += " (group " + h.Group + ")"
		}
		if h.Reserved != "" {
			name += fmt.Sprintf(", reserved host %s, %d servers at the end", h.Reserved, h.Servers)
		}
		if h.Changes == 0 {
			fmt.Fprintf(out, "\n%s: now %s, no state change\n", name, h.Final)
			continue
		}
		fmt.Fprintf(out, "\n%s: onset %s (first fresh signal over warn), now %s\n", name, h.Onset.Format("15:04:05"), h.Final)
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  state\tfirst entered\tsince onset\treason")
		for _, s := range playbook.States {
			at, ok := h.First[s]
			if !ok {
				continue
			}
			reason := h.Reasons[s]
			if len(reason) > 90 {
				reason = reason[:87] + "..."
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", s, at.Format("15:04:05"), since(h.Onset, at), reason)
		}
		tw.Flush()
		if h.Note != "" && h.Final != playbook.Normal {
			fmt.Fprintf(out, "  last note: %s\n", h.Note)
		}
		dec, okD := h.First[playbook.Fenced]
		rest, okR := h.First[playbook.Restored]
		if okD || okR {
			line := fmt.Sprintf("  vs the paper's incident (48 min to decision, 71 min to restoration):")
			if okD {
				line += fmt.Sprintf(" decision after %s (%s sooner)", dec.Sub(h.Onset), PaperDecision-dec.Sub(h.Onset))
			}
			if okR {
				line += fmt.Sprintf(", restored after %s (%s sooner)", rest.Sub(h.Onset), PaperRestoration-rest.Sub(h.Onset))
			}
			fmt.Fprintln(out, line)
		}
	}
}
