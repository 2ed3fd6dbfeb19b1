package main

import (
	"io"
	"os"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"
)

type rootOpts struct {
	logLevel string
	logJSON  bool
}

func newRootCmd() *cobra.Command {
	o := &rootOpts{}
	root := &cobra.Command{
		Use:   "fenced",
		Short: "Fence and recover OpenStack compute hosts that lost execution truth",
		Long: `fenced watches what compute hosts really do (CPU steal, run queue, libvirt
latency and timeouts, heartbeat lag, kubelet delay, evictions, I/O latency,
management CPU share), scores how far Nova's picture ("ACTIVE", "up") has drifted
from it, and drives each host through the recovery playbook:

  normal → warn → critical → fenced → rebooting → restored → normal

with awaiting_approval (approve mode) and needs_human (every automatic path
failed) where a person must decide. Live migration runs only while libvirt is
responsive; otherwise fenced power-cycles the host out of band through Redfish.

Start with:
  fenced policy check policies/default.yaml      validate a policy
  fenced trace generate --scenario incident > t.jsonl
  fenced simulate --trace t.jsonl --mode auto     replay it, one JSON line per state change`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRun: func(cmd *cobra.Command, _ []string) {
			setupLogging(o, cmd.ErrOrStderr())
		},
	}
	root.PersistentFlags().StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	root.PersistentFlags().BoolVar(&o.logJSON, "log-json", false, "write logs as JSON lines (default: console format)")
	root.AddCommand(newRunCmd(), newSimulateCmd(), newPolicyCmd(), newConfigCmd(), newTraceCmd(), newHostsCmd(), newHostCmd(),
		newOperateCmd("approve"), newOperateCmd("abort"), newOperateCmd("unfence"), newAuditCmd(),
		newPauseCmd(true), newPauseCmd(false), newReportCmd(), newLabCmd(), newBMCCmd(), newVersionCmd())
	return root
}

func setupLogging(o *rootOpts, stderr io.Writer) {
	lvl, err := zerolog.ParseLevel(o.logLevel)
	if err != nil {
		lvl = zerolog.InfoLevel
	}
	zerolog.SetGlobalLevel(lvl)
	// a package global that loggers read while they write: set it once (a
	// second command in the same process, as in tests, must not race them)
	timeFormatOnce.Do(func() { zerolog.TimeFieldFormat = time.RFC3339Nano })
	var w io.Writer = stderr
	if !o.logJSON {
		w = zerolog.ConsoleWriter{Out: stderr, TimeFormat: time.RFC3339, NoColor: os.Getenv("NO_COLOR") != "" || !isTerminal(stderr)}
	}
	logger = zerolog.New(w).With().Timestamp().Logger()
}

var timeFormatOnce sync.Once

// logger is the process logger, set up by the root command.
var logger = zerolog.Nop()

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
