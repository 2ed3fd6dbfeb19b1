package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/fencedhq/fenced/pkg/fencing/redfish/bmcsim"
)

func newLabBMCCmd() *cobra.Command {
	var (
		listen, user, passwordEnv string
		adminListen               string
		systems                   []string
		count                     string
		hook                      string
		hookTimeout               time.Duration
		delay                     time.Duration
		faults                    []string
		useTLS                    bool
	)
	cmd := &cobra.Command{
		Use:   "bmc",
		Short: "Run the Redfish BMC simulator alone (for redfishtool, gofish, sushy)",
		Long: `bmc serves a Redfish BMC simulator: the service root, Systems with
ComputerSystem.Reset, Managers, Chassis, SessionService sessions and basic auth,
and a power model that takes --power-delay for each change. Faults are injected
per system with --fault SYSTEM:KIND[=VALUE]; kinds: hang, slow=DUR, conflict409
(409 on ForceOff when already off), fail5xx=N, never-off, auth-fail.

--systems takes a count (lab-001 … lab-N) or a comma-separated list of ids.
Every accepted reset is logged on stderr as "reset SYSTEM TYPE".

--power-hook binds the simulated power to something real: whenever a system's
power settles at On or Off (after --power-delay), the simulator runs
"CMD SYSTEM STATE" (CMD is split on spaces, no shell; STATE is On or Off), one
hook at a time in the order of the changes, and logs its exit status and output
as "power-hook SYSTEM STATE: ...".

--admin-listen serves a fault control beside the simulator, on loopback and
without authentication, to change faults while it runs (chaos tests):
  PUT    /faults/SYSTEM   body "KIND[=VALUE],…" replaces the system's faults
  DELETE /faults/SYSTEM   clears them
  GET    /faults          every system's faults, as JSON`,
		Example: `  FENCED_BMC_PASSWORD=secret fenced lab bmc --listen 127.0.0.1:8000 --systems 4 --power-delay 2s
  redfishtool -r 127.0.0.1:8000 -u admin -p secret -S Never Systems list
  fenced lab bmc --tls --fault lab-002:never-off --fault lab-003:slow=5s
  fenced lab bmc --systems cn1,cn2,cn3 --power-hook "/srv/lab/compute-ctl power"
  fenced lab bmc --systems 100 --admin-listen 127.0.0.1:8001 &
  curl -X PUT -d 'fail5xx=5' http://127.0.0.1:8001/faults/lab-007`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pw := os.Getenv(passwordEnv)
			if pw == "" {
				return fmt.Errorf("set the password in $%s (it is never taken from the command line)", passwordEnv)
			}
			if len(systems) == 0 {
				ids, err := systemIDs(count)
				if err != nil {
					return err
				}
				systems = ids
			}
			sim := bmcsim.New(user, pw, delay, systems...)
			logw := &syncWriter{w: cmd.ErrOrStderr()}
			sim.OnReset = func(system, resetType string) { fmt.Fprintf(logw, "reset %s %s\n", system, resetType) }
			if hook != "" {
				argv := strings.Fields(hook)
				sim.OnPower = func(system, state string) {
					runPowerHook(cmd.Context(), logw, argv, hookTimeout, system, state)
				}
			}
			for _, f := range faults {
				id, spec, ok := strings.Cut(f, ":")
				if !ok {
					return fmt.Errorf("--fault %q: want SYSTEM:KIND[=VALUE]", f)
				}
				var fl bmcsim.Faults
				if err := bmcsim.ParseFault(spec, &fl); err != nil {
					return fmt.Errorf("--fault %q: %w", f, err)
				}
				sim.SetFaults(id, fl)
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return err
			}
			if tcp, ok := ln.Addr().(*net.TCPAddr); ok && !tcp.IP.IsLoopback() {
				ln.Close()
				return fmt.Errorf("--listen %s: the simulator must stay on loopback", listen)
			}
			scheme := "http"
			if useTLS {
				cert, err := bmcsim.SelfSigned()
				if err != nil {
					return err
				}
				ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
				scheme = "https"
			}
			srv := &http.Server{Handler: sim.Handler(), ReadHeaderTimeout: 5 * time.Second}
			var admin *http.Server
			if adminListen != "" {
				aln, err := net.Listen("tcp", adminListen)
				if err != nil {
					ln.Close()
					return err
				}
				if tcp, ok := aln.Addr().(*net.TCPAddr); ok && !tcp.IP.IsLoopback() {
					aln.Close()
					ln.Close()
					return fmt.Errorf("--admin-listen %s: the fault control must stay on loopback", adminListen)
				}
				admin = &http.Server{Handler: sim.AdminHandler(), ReadHeaderTimeout: 5 * time.Second}
				go func() { _ = admin.Serve(aln) }()
				fmt.Fprintf(cmd.ErrOrStderr(), "fenced lab bmc: fault control at http://%s/faults\n", aln.Addr())
			}
			go func() {
				<-cmd.Context().Done()
				srv.Close()
				if admin != nil {
					admin.Close()
				}
			}()
			fmt.Fprintf(cmd.ErrOrStderr(), "fenced lab bmc: %d systems at %s://%s/redfish/v1/ (user %s), power changes take %s\n",
				len(systems), scheme, ln.Addr(), user, delay)
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "127.0.0.1:8000", "address (loopback)")
	f.StringVar(&user, "username", "admin", "BMC user")
	f.StringVar(&passwordEnv, "password-env", "FENCED_BMC_PASSWORD", "environment variable holding the BMC password")
	f.StringSliceVar(&systems, "system", nil, "system ids (default: lab-001 … lab-N)")
	f.StringVar(&count, "systems", "4", "number of systems (lab-001 … lab-N) or a comma-separated list of ids, when --system is not given")
	f.StringVar(&hook, "power-hook", "", "run \"CMD SYSTEM On|Off\" whenever a system's power settles")
	f.DurationVar(&hookTimeout, "power-hook-timeout", time.Minute, "kill a power hook that runs longer than this")
	f.DurationVar(&delay, "power-delay", 2*time.Second, "time each power change takes")
	f.StringArrayVar(&faults, "fault", nil, "SYSTEM:KIND[=VALUE] (repeatable)")
	f.BoolVar(&useTLS, "tls", false, "serve HTTPS with a self-signed certificate")
	f.StringVar(&adminListen, "admin-listen", "", "serve the run-time fault control (PUT/DELETE /faults/SYSTEM) on this loopback address")
	return cmd
}

// systemIDs reads --systems: a count or a comma-separated list of ids.
func systemIDs(v string) ([]string, error) {
	if n, err := strconv.Atoi(v); err == nil {
		if n < 1 {
			return nil, fmt.Errorf("--systems %d: want at least one system", n)
		}
		ids := make([]string, 0, n)
		for i := 1; i <= n; i++ {
			ids = append(ids, fmt.Sprintf("lab-%03d", i))
		}
		return ids, nil
	}
	var ids []string
	seen := map[string]bool{}
	for _, id := range strings.Split(v, ",") {
		id = strings.TrimSpace(id)
		if id == "" || strings.ContainsAny(id, "/?#% ") {
			return nil, fmt.Errorf("--systems %q: want a count or a comma-separated list of ids", v)
		}
		if seen[id] {
			return nil, fmt.Errorf("--systems %q: %s given twice", v, id)
		}
		seen[id] = true
		ids = append(ids, id)
	}
	return ids, nil
}

// runPowerHook runs "argv... SYSTEM STATE" and logs what came of it.
func runPowerHook(ctx context.Context, log io.Writer, argv []string, timeout time.Duration, system, state string) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(ctx, argv[0], append(argv[1:], system, state)...).CombinedOutput()
	res := "ok"
	if err != nil {
		res = err.Error()
	}
	msg := strings.TrimSpace(string(out))
	if len(msg) > 2000 {
		msg = msg[len(msg)-2000:]
	}
	if msg != "" {
		msg = "; output: " + strings.ReplaceAll(msg, "\n", " | ")
	}
	fmt.Fprintf(log, "power-hook %s %s: %s in %s%s\n", system, state, res, time.Since(start).Round(time.Millisecond), msg)
}

// syncWriter serialises log lines from HTTP handlers and the hook goroutine.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}
