package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/fencedhq/fenced/pkg/policy"
	"github.com/fencedhq/fenced/pkg/simulate"
	"github.com/fencedhq/fenced/pkg/trace"
)

func loadPolicy(path, mode string) (*policy.Policy, error) {
	p := policy.Default()
	if path != "" {
		var err error
		if p, err = policy.Load(path); err != nil {
			return nil, err
		}
	}
	if mode != "" {
		return p.WithMode(mode)
	}
	return p, nil
}

func newSimulateCmd() *cobra.Command {
	var (
		tracePath, policyPath, mode string
		tick, reboot                time.Duration
		maxHosts                    int
		quiet, asJSON               bool
		compare                     []string
		tolerance                   time.Duration
	)
	cmd := &cobra.Command{
		Use:   "simulate --trace FILE [--policy FILE | --compare A.yaml B.yaml] [--mode auto|approve|observe]",
		Short: "Replay a trace through the real evaluator and playbook on a simulated clock",
		Long: `simulate reads a trace (JSON Lines; .gz is read through gzip; - is stdin),
runs the real signal evaluator and per-host playbook on a simulated clock
against simulated backends (Nova, the live-migration gate, Redfish power) that
obey the trace's fault lines, and writes one JSON object per state change to
stdout:

  {"t":"2026-01-15T01:20:20Z","host":"cmp-017","from":"warn","to":"critical","d":0.74,"reason":"..."}

and a human summary to stderr: per host, time from onset to each state, and a
comparison with the paper's incident (48 min to decision, 71 min to restoration).

In approve mode nothing is ever approved, so hosts wait in awaiting_approval
until the deadline. A host fenced power-cycles is back after --reboot-time.

A trace recorded by a running replica (record: in the run config, run --dev
--record, fenced trace record) carries the replica's ticks: it is evaluated at
those ticks, and --tick does not apply. --policy then shows what that policy
would have done on real history.

--compare A.yaml B.yaml replays the trace under each policy and prints, per
host, where their transitions differ: a transition one made and the other did
not, or the same one at other times (more than --tolerance apart); --json
prints the comparison as JSON.

Exit status: 0 on success, 1 on a bad trace or policy (the error names the file
and line), 2 on bad flags.`,
		Example: `  fenced trace generate --scenario incident > incident.jsonl
  fenced simulate --trace incident.jsonl --mode auto
  fenced simulate --trace testdata/traces/healthy.jsonl.gz --policy policies/default.yaml 2>/dev/null | jq .
  fenced simulate --trace /var/lib/fenced/record/fenced-20260115T011400.000000000Z.jsonl --policy candidate.yaml
  fenced simulate --compare policies/default.yaml candidate.yaml --trace recorded.jsonl --mode auto`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(compare) == 0 {
				return cobra.NoArgs(cmd, args)
			}
			return cobra.MaximumNArgs(1)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if tracePath == "" {
				return fmt.Errorf("--trace is required (a file, or - for stdin)")
			}
			if len(compare) > 0 {
				pols := append(append([]string(nil), compare...), args...)
				switch {
				case len(pols) != 2:
					return fmt.Errorf("--compare: give two policy files (--compare A.yaml B.yaml), have %d", len(pols))
				case policyPath != "":
					return fmt.Errorf("--policy and --compare exclude each other")
				case tracePath == "-":
					return fmt.Errorf("--compare reads the trace twice: give a file, not -")
				case tolerance < 0:
					return fmt.Errorf("--tolerance must not be negative")
				}
				return runCompare(cmd, tracePath, pols[0], pols[1], mode, simulate.Options{Tick: tick, RebootTime: reboot}, tolerance, asJSON)
			}
			if asJSON || tolerance != 0 {
				return fmt.Errorf("--json and --tolerance go with --compare (simulate's stdout is already JSON)")
			}
			p, err := loadPolicy(policyPath, mode)
			if err != nil {
				return err
			}
			r, err := trace.Open(tracePath)
			if err != nil {
				return err
			}
			defer r.Close()
			start := time.Now()
			res, err := simulate.Run(cmd.Context(), r, simulate.Options{Policy: p, Tick: tick, RebootTime: reboot, Out: cmd.OutOrStdout()})
			if err != nil {
				return err
			}
			if !quiet {
				simulate.WriteSummary(cmd.ErrOrStderr(), res, maxHosts)
				fmt.Fprintf(cmd.ErrOrStderr(), "\nsimulated %s in %s\n", res.End.Sub(res.Start), time.Since(start).Round(time.Millisecond))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&tracePath, "trace", "", "trace file (JSON Lines, .gz allowed, - for stdin)")
	f.StringVar(&policyPath, "policy", "", "policy file (default: the built-in policies/default.yaml)")
	f.StringVar(&mode, "mode", "", "override the policy's mode: auto, approve or observe")
	f.DurationVar(&tick, "tick", 10*time.Second, "evaluation interval")
	f.DurationVar(&reboot, "reboot-time", 6*time.Minute, "simulated time from a power cycle until the host is back")
	f.IntVar(&maxHosts, "summary-hosts", 20, "at most this many hosts in the summary (0: all)")
	f.BoolVar(&quiet, "quiet", false, "no summary on stderr")
	f.StringSliceVar(&compare, "compare", nil, "compare two policies on the trace: --compare A.yaml B.yaml")
	f.DurationVar(&tolerance, "tolerance", 0, "with --compare: the same transition this close in time is no difference")
	f.BoolVar(&asJSON, "json", false, "with --compare: print the comparison as JSON")
	return cmd
}

// runCompare replays the trace under two policies and prints where their
// transitions differ.
func runCompare(cmd *cobra.Command, tracePath, pathA, pathB, mode string, opt simulate.Options, tolerance time.Duration, asJSON bool) error {
	var runs [2]*simulate.Result
	for i, path := range []string{pathA, pathB} {
		p, err := loadPolicy(path, mode)
		if err != nil {
			return err
		}
		r, err := trace.Open(tracePath)
		if err != nil {
			return err
		}
		o := opt
		o.Policy = p
		runs[i], err = simulate.Run(cmd.Context(), r, o)
		r.Close()
		if err != nil {
			return err
		}
	}
	c := simulate.Compare(runs[0].Changes, runs[1].Changes, tolerance)
	if asJSON {
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Trace string    `json:"trace"`
			A     string    `json:"a"`
			B     string    `json:"b"`
			Start time.Time `json:"start"`
			End   time.Time `json:"end"`
			simulate.Comparison
		}{tracePath, pathA, pathB, runs[0].Start, runs[0].End, c})
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s, %s to %s: A %s (%s, policy %s), B %s (%s, policy %s)\n\n", tracePath,
		runs[0].Start.UTC().Format(time.RFC3339), runs[0].End.UTC().Format(time.RFC3339),
		pathA, runs[0].Mode, runs[0].PolicyVersion, pathB, runs[1].Mode, runs[1].PolicyVersion)
	return simulate.WriteComparison(cmd.OutOrStdout(), c, pathA, pathB)
}
