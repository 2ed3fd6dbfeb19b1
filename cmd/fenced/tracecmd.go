package main

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fencedhq/fenced/pkg/trace"
)

func newTraceCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "trace", Short: "Generate synthetic traces for simulate"}
	var (
		sc     trace.Scenario
		start  string
		output string
	)
	gen := &cobra.Command{
		Use:   "generate --scenario incident|healthy|saturation|fleet",
		Short: "Write a deterministic synthetic trace",
		Long: `generate writes a trace in the format simulate reads.

  incident     the paper's section 3: 10 hosts, cmp-017 starves from 01:14, libvirt
               stops answering at 01:20, migration fails, historical reboot 02:02
  healthy      a noisy but healthy fleet (--hosts, --duration, --step)
  saturation   section 4.3: every host at warn, two starved; nowhere to evacuate
  fleet        --hosts noisy hosts, one in a hundred starving, for scale runs

A name ending in .gz is written gzip-compressed.`,
		Example: `  fenced trace generate --scenario incident > incident.jsonl
  fenced trace generate --scenario fleet --hosts 1000 --duration 24h --step 10s -o fleet.jsonl.gz`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := time.Parse(time.RFC3339, start)
			if err != nil {
				return fmt.Errorf("--start: %w", err)
			}
			sc.Start = t
			var out io.Writer = cmd.OutOrStdout()
			if output != "" && output != "-" {
				f, err := os.Create(output)
				if err != nil {
					return err
				}
				defer f.Close()
				bw := bufio.NewWriterSize(f, 1<<20)
				defer bw.Flush()
				out = bw
				if strings.HasSuffix(output, ".gz") {
					gz := gzip.NewWriter(bw)
					defer gz.Close()
					out = gz
				}
			}
			return trace.Generate(out, sc)
		},
	}
	f := gen.Flags()
	f.StringVar(&sc.Kind, "scenario", "incident", "incident, healthy, saturation or fleet")
	f.IntVar(&sc.Hosts, "hosts", 20, "hosts (healthy, fleet)")
	f.DurationVar(&sc.Duration, "duration", 2*time.Hour, "length (healthy, fleet)")
	f.DurationVar(&sc.Step, "step", 10*time.Second, "sample interval")
	f.Uint64Var(&sc.Seed, "seed", 1, "random seed")
	f.StringVar(&start, "start", "2026-01-15T00:00:00Z", "start time (healthy, fleet)")
	f.StringVarP(&output, "output", "o", "", "write to this file instead of stdout (.gz compresses)")
	cmd.AddCommand(gen)
	return cmd
}
