package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/fencedhq/fenced/pkg/clock"
	"github.com/fencedhq/fenced/pkg/lab"
	"github.com/fencedhq/fenced/pkg/policy"
)

func newLabCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "lab", Short: "Simulated infrastructure for demos and tests"}
	var (
		listen                            string
		hosts                             int
		starveAfter, ramp, reboot, pdelay time.Duration
	)
	serve := &cobra.Command{
		Use:   "serve",
		Short: "Serve a simulated lab world (Nova, gate, power, signals) to several fenced replicas",
		Long: `serve runs the lab world of 'fenced run --dev' as a server, so that several
replicas ('fenced run --lab URL --etcd-endpoints …') act on one world: the HA
tests kill and pause replicas against it and count every action it was asked
to do (GET /lab/v1/actions).`,
		Example: "  fenced lab serve --listen 127.0.0.1:8499 --hosts 12 --starve-after 5s --ramp 20s",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			clk := clock.Real{}
			w := lab.NewWorld(clk.Now, reboot, policy.Default().SignalsConfig())
			gen := lab.NewGenerator(hosts, clk.Now(), starveAfter, w)
			gen.Ramp = ramp
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return err
			}
			if tcp, ok := ln.Addr().(*net.TCPAddr); ok && !tcp.IP.IsLoopback() {
				ln.Close()
				return fmt.Errorf("--listen %s: the lab must stay on loopback", listen)
			}
			srv := &http.Server{Handler: (&lab.Server{World: w, Gen: gen, PowerDelay: pdelay}).Handler(), ReadHeaderTimeout: 5 * time.Second}
			fmt.Fprintf(cmd.ErrOrStderr(), "fenced lab: %d hosts at http://%s/lab/v1/, %s starves in %s\n", hosts, ln.Addr(), gen.Victim, starveAfter)
			go func() {
				<-cmd.Context().Done()
				srv.Close()
			}()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		},
	}
	f := serve.Flags()
	f.StringVar(&listen, "listen", "127.0.0.1:8499", "address (loopback)")
	f.IntVar(&hosts, "hosts", 12, "lab fleet size")
	f.DurationVar(&starveAfter, "starve-after", time.Minute, "when the victim starts starving")
	f.DurationVar(&ramp, "ramp", 3*time.Minute, "how long its load takes to ramp up")
	f.DurationVar(&reboot, "reboot-time", 30*time.Second, "how long a power-cycled host takes to come back")
	f.DurationVar(&pdelay, "power-delay", 0, "how long the BMC takes to answer a power cycle (the reset happens at once)")
	cmd.AddCommand(serve, newLabBMCCmd())
	return cmd
}
