package main

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/fencedhq/fenced/pkg/playbook"
	"github.com/fencedhq/fenced/pkg/policy"
	"github.com/fencedhq/fenced/pkg/signals"
)

func newPolicyCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "policy", Short: "Work with policy files"}
	var asJSON bool
	check := &cobra.Command{
		Use:   "check FILE...",
		Short: "Validate policy files strictly (unknown keys, relations); print a table of what each signal does",
		Long: `check loads each file the way fenced run does: unknown keys are errors,
thresholds must be ordered (warn < crit, d_warn < d_crit), durations positive,
the storm guard sane. An error names the file, line and field. Exit status 1 if
any file is invalid.`,
		Example: "  fenced policy check policies/default.yaml",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			bad := 0
			for _, path := range args {
				p, err := policy.Load(path)
				if err != nil {
					fmt.Fprintln(cmd.ErrOrStderr(), err)
					bad++
					continue
				}
				if asJSON {
					doc := map[string]any{"file": path, "version": p.Version(), "valid": true, "signals": p.SignalsConfig().Signals, "playbook": p.PlaybookConfig(),
						"recovery": p.PlaybookConfig().Chain()}
					if names := p.GroupNames(); len(names) > 0 {
						gs := map[string]any{}
						for _, g := range names {
							gp := p.Group(g)
							gs[g] = map[string]any{"overrides": p.Overrides(g), "signals": gp.SignalsConfig().Signals, "playbook": gp.PlaybookConfig(), "recovery": gp.PlaybookConfig().Chain()}
						}
						doc["groups"] = gs
					}
					out, _ := json.MarshalIndent(doc, "", "  ")
					fmt.Fprintln(cmd.OutOrStdout(), string(out))
					continue
				}
				printPolicy(cmd, path, p)
			}
			if bad > 0 {
				return exitCode(1)
			}
			return nil
		},
	}
	check.Flags().BoolVar(&asJSON, "json", false, "print the parsed policy as JSON")
	cmd.AddCommand(check)
	return cmd
}

func printPolicy(cmd *cobra.Command, path string, p *policy.Policy) {
	out := cmd.OutOrStdout()
	sc, pc := p.SignalsConfig(), p.PlaybookConfig()
	fmt.Fprintf(out, "%s: ok (%s)\n  mode %s, d_warn %.2f, d_crit %.2f, hysteresis %.2f, dwell %s/%s, stale after %s\n",
		path, p.Version(), pc.Mode, sc.DWarn, sc.DCrit, pc.Hysteresis, pc.DwellWarn, pc.DwellCrit, sc.StaleAfter)
	fmt.Fprintf(out, "  storm guard: max %d fenced at once, max %.0f%% of the fleet, saturation above %.0f%% at warn or worse\n",
		pc.Storm.MaxConcurrent, 100*pc.Storm.MaxFraction, 100*pc.Storm.SaturationFraction)
	fmt.Fprintf(out, "  approval: expires after %s, then on_timeout %s\n", pc.ApprovalTimeout, pc.ApprovalOnTimeout.Describe())
	fmt.Fprintf(out, "  %s\n\n", describeRecovery(pc))
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SIGNAL\tWARN\tCRIT\tWEIGHT\tWINDOW\tAGG\tTRIGGER")
	names := make([]string, 0, len(sc.Signals))
	for n := range sc.Signals {
		names = append(names, string(n))
	}
	sort.Strings(names)
	for _, n := range names {
		s := sc.Signals[signals.Name(n)]
		trig := ""
		if s.Trigger {
			trig = "critical alone"
		}
		fmt.Fprintf(tw, "%s\t%g\t%g\t%.2f\t%s\t%s\t%s\n", n, s.Warn, s.Crit, s.Weight, s.Window, s.Agg, trig)
	}
	tw.Flush()
	if names := p.GroupNames(); len(names) > 0 {
		fmt.Fprintf(out, "\n  group overrides (each group's policy is the file's with these fields changed; validated as a whole):\n")
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  GROUP\tMODE\tD_WARN\tD_CRIT\tOVERRIDES")
		for _, g := range names {
			gp := p.Group(g).PlaybookConfig()
			ov := strings.Join(p.Overrides(g), "; ")
			if ov == "" {
				ov = "(none: the file's policy)"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%.2f\t%.2f\t%s\n", g, gp.Mode, gp.DWarn, gp.DCrit, ov)
		}
		tw.Flush()
		for _, g := range names {
			if gp := p.Group(g).PlaybookConfig(); describeRecovery(gp) != describeRecovery(pc) {
				fmt.Fprintf(out, "  group %s %s\n", g, describeRecovery(gp))
			}
		}
		fmt.Fprintf(out, "  (the run config must define each group: fenced config check says so)\n")
	}
}

// describeRecovery is the escalation chain in force and the instance
// filter, for people.
func describeRecovery(pc playbook.Config) string {
	from := "recovery:"
	if len(pc.Recovery) == 0 {
		from = "after_fence " + string(pc.AfterFence)
	}
	return fmt.Sprintf("recovery (%s): %s; instances: skip_error %v", from, playbook.DescribeChain(pc.Chain()), pc.SkipError)
}
