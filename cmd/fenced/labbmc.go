package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fencedhq/fenced/pkg/fencing/redfish/bmcsim"
)

func newLabBMCCmd() *cobra.Command {
	var (
		listen, user, passwordEnv string
		systems                   []string
		count                     int
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
(409 on ForceOff when already off), fail5xx=N, never-off, auth-fail.`,
		Example: `  FENCED_BMC_PASSWORD=secret fenced lab bmc --listen 127.0.0.1:8000 --systems 4 --power-delay 2s
  redfishtool -r 127.0.0.1:8000 -u admin -p secret -S Never Systems list
  fenced lab bmc --tls --fault lab-002:never-off --fault lab-003:slow=5s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pw := os.Getenv(passwordEnv)
			if pw == "" {
				return fmt.Errorf("set the password in $%s (it is never taken from the command line)", passwordEnv)
			}
			if len(systems) == 0 {
				for i := 1; i <= count; i++ {
					systems = append(systems, fmt.Sprintf("lab-%03d", i))
				}
			}
			sim := bmcsim.New(user, pw, delay, systems...)
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
			go func() {
				<-cmd.Context().Done()
				srv.Close()
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
	f.IntVar(&count, "systems", 4, "number of systems when --system is not given")
	f.DurationVar(&delay, "power-delay", 2*time.Second, "time each power change takes")
	f.StringArrayVar(&faults, "fault", nil, "SYSTEM:KIND[=VALUE] (repeatable)")
	f.BoolVar(&useTLS, "tls", false, "serve HTTPS with a self-signed certificate")
	return cmd
}
