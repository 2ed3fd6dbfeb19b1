package main

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fencedhq/fenced/pkg/api"
	"github.com/fencedhq/fenced/pkg/record"
	"github.com/fencedhq/fenced/pkg/trace"
)

func newTraceCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "trace", Short: "Generate synthetic traces, or record a live replica's, for simulate"}
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
	cmd.AddCommand(gen, newTraceRecordCmd())
	return cmd
}

func newTraceRecordCmd() *cobra.Command {
	var (
		co    clientOpts
		out   string
		dur   time.Duration
		every time.Duration
	)
	cmd := &cobra.Command{
		Use:   "record --server URL --out FILE [--for DURATION]",
		Short: "Record what a running replica observes, as a trace simulate replays",
		Long: `record polls a running fenced's API (GET /api/v1/observations) and writes what
its leader observed at each tick — the samples, what Nova said of each host,
the faults it saw, the collectors' errors — as a trace in the format simulate
reads, with the replica's own ticks. Point --server at the leader (a follower
does not tick and records nothing). The replica keeps its last few ticks once
someone asks; poll at least that often (--every, default 2s) or the trace has
gaps, which record reports on stderr.

It stops after --for (default: until interrupted) and flushes the file.`,
		Example: `  fenced trace record --server https://fenced.example:8480 --token "$TOKEN" --out today.jsonl --for 1h
  fenced simulate --trace today.jsonl --policy candidate.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return fmt.Errorf("--out is required (a file, or - for stdout)")
			}
			if dur < 0 || every <= 0 {
				return fmt.Errorf("--for must not be negative and --every must be positive")
			}
			ctx := cmd.Context()
			if dur > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, dur)
				defer cancel()
			}
			var w io.Writer = cmd.OutOrStdout()
			if out != "-" {
				f, err := os.Create(out)
				if err != nil {
					return err
				}
				defer f.Close()
				w = f
			}
			st, err := recordFrom(ctx, &co, w, every, cmd.ErrOrStderr())
			fmt.Fprintf(cmd.ErrOrStderr(), "recorded %d ticks, %d samples from %s to %s\n", st.ticks, st.samples, co.server, out)
			return err
		},
	}
	co.flags(cmd)
	f := cmd.Flags()
	f.StringVarP(&out, "out", "o", "", "trace file to write (- for stdout)")
	f.DurationVar(&dur, "for", 0, "stop after this long (0: until interrupted)")
	f.DurationVar(&every, "every", 2*time.Second, "how often to ask the replica")
	return cmd
}

type recordStats struct{ ticks, samples int }

// recordFrom polls the API until ctx ends, writing each new tick once.
func recordFrom(ctx context.Context, co *clientOpts, w io.Writer, every time.Duration, warn io.Writer) (recordStats, error) {
	var st recordStats
	enc := record.NewEncoder(w)
	var last time.Time
	warnedFollower, polls := false, 0
	for {
		path := "/api/v1/observations"
		if !last.IsZero() {
			path += "?since=" + url.QueryEscape(last.Format(time.RFC3339Nano))
		}
		var raw json.RawMessage
		err := co.call(ctx, "GET", path, nil, &raw)
		if ctx.Err() != nil {
			return st, enc.Flush()
		}
		var reply api.ObservationsReply
		if err == nil {
			if uerr := json.Unmarshal(raw, &reply); uerr != nil {
				err = fmt.Errorf("fenced API: observations: unexpected reply: %w", uerr)
			}
		}
		if err != nil && polls == 0 {
			return st, errors.Join(err, enc.Flush()) // a wrong address or token: say so at once
		}
		polls++
		if err != nil {
			// a failover or a network blip: go on asking (the gap, if any, is reported)
			fmt.Fprintf(warn, "%v; asking again\n", err)
		}
		if !reply.Leader && !warnedFollower {
			fmt.Fprintf(warn, "%s does not lead: it observes nothing until it does (point --server at the leader)\n", co.server)
			warnedFollower = true
		}
		if reply.Missed {
			fmt.Fprintf(warn, "ticks after %s were missed: the trace has a gap (poll more often with --every)\n", last.Format(time.RFC3339Nano))
		}
		for _, o := range reply.Observations {
			if !o.At.After(last) {
				continue
			}
			enc.Encode(o)
			st.ticks++
			st.samples += len(o.Samples)
			last = o.At
		}
		if err := enc.Flush(); err != nil {
			return st, err
		}
		select {
		case <-ctx.Done():
			return st, nil
		case <-time.After(every):
		}
	}
}
