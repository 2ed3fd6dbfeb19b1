package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/fencedhq/fenced/pkg/config"
	"github.com/fencedhq/fenced/pkg/fencing/health"
	"github.com/fencedhq/fenced/pkg/fencing/redfish"
)

func newBMCCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "bmc", Short: "Work with the hosts' BMCs (the fence path)"}
	cmd.AddCommand(newBMCCheckCmd())
	return cmd
}

// bmcCheckRow is one line of `fenced bmc check --json`.
type bmcCheckRow struct {
	Host       string    `json:"host"`
	Endpoint   string    `json:"endpoint"`
	SystemID   string    `json:"system_id,omitempty"`
	OK         bool      `json:"ok"`
	PowerState string    `json:"power_state"`
	LatencyMS  int64     `json:"latency_ms"`
	Error      string    `json:"error,omitempty"`
	At         time.Time `json:"at"`
}

func newBMCCheckCmd() *cobra.Command {
	var (
		cfgFile  string
		asJSON   bool
		timeout  time.Duration
		parallel int
	)
	cmd := &cobra.Command{
		Use:   "check [HOST...] --config FILE",
		Short: "Check the fence path now: log in to each host's BMC and read its power state",
		Long: `check does what fenced run does every bmc.check_interval, once and now: for
each host it logs in to the BMC the config names (bmc.hosts, else bmc.template)
and reads the power state, --parallel hosts at a time, each within --timeout.
It changes nothing: no reset is sent. A host whose BMC fails the check is
unfenceable: were it to fail now, fenced could not power it off.

Without HOST arguments it checks every host the bmc section names: each entry
under bmc.hosts and, with a bmc.template, each host of the config's hosts: list.
Credentials are read as fenced run reads them (password_env, password_file),
so run it with the daemon's environment.

The table shows HOST, ENDPOINT (the BMC, and the system when the config names
one), POWER, LATENCY and RESULT: "ok" or why the host is unfenceable ("BMC
refused the credentials", "BMC unreachable: …"). --json prints the same as a
JSON object.

Exit status 0 when every BMC answered; 1 when any host is unfenceable (with a
summary line such as "2 of 3 BMCs unfenceable") or the config or a host is
wrong.`,
		Example: `  fenced bmc check --config /etc/fenced/fenced.yaml
  fenced bmc check cmp-017 cmp-018 --config /etc/fenced/fenced.yaml --timeout 30s
  fenced bmc check --config /etc/fenced/fenced.yaml --json | jq '.results[] | select(.ok | not)'`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if cfgFile == "" {
				return fmt.Errorf("--config is required: the file of fenced run, with its bmc: section")
			}
			if timeout <= 0 {
				return fmt.Errorf("--timeout must be positive, have %s", timeout)
			}
			cfg, err := config.Load(cfgFile)
			if err != nil {
				return err
			}
			targets, err := bmcTargets(cfg, args)
			if err != nil {
				return err
			}
			log := logger
			if !cmd.Flags().Changed("log-level") {
				log = zerolog.Nop() // the table says it all; --log-level shows the checks as they run
			}
			f, err := redfish.New(redfish.Config{Targets: targets, Attempt: timeout, Log: log})
			if err != nil {
				return err
			}
			chk, err := health.New(health.Config{BMC: f, Timeout: timeout, Parallel: parallel, Log: log})
			if err != nil {
				return err
			}
			hosts := make([]string, 0, len(targets))
			for h := range targets {
				hosts = append(hosts, h)
			}
			sort.Strings(hosts)
			results := chk.CheckNow(cmd.Context(), hosts...)

			rows, bad := make([]bmcCheckRow, len(results)), 0
			for i, r := range results {
				t := targets[r.Host]
				rows[i] = bmcCheckRow{Host: r.Host, Endpoint: t.Endpoint, SystemID: t.SystemID, OK: r.OK,
					PowerState: string(r.PowerState), LatencyMS: r.Latency.Milliseconds(), Error: r.Error, At: r.At}
				if !r.OK {
					bad++
				}
			}
			summary := fmt.Sprintf("%d of %d BMCs unfenceable", bad, len(rows))
			if bad == 0 {
				summary = fmt.Sprintf("all %d BMCs answered", len(rows))
			}
			out := cmd.OutOrStdout()
			if asJSON {
				b, _ := json.MarshalIndent(map[string]any{"results": rows, "checked": len(rows), "unfenceable": bad}, "", "  ")
				fmt.Fprintln(out, string(b))
				if bad > 0 {
					fmt.Fprintln(cmd.ErrOrStderr(), summary)
				}
			} else {
				tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "HOST\tENDPOINT\tPOWER\tLATENCY\tRESULT")
				for _, r := range rows {
					ep, power, result := r.Endpoint, r.PowerState, "ok"
					if r.SystemID != "" {
						ep += " (" + r.SystemID + ")"
					}
					if !r.OK {
						power, result = "-", "UNFENCEABLE: "+r.Error
					}
					lat := (time.Duration(r.LatencyMS) * time.Millisecond).String()
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", tx(r.Host), tx(ep), tx(power), lat, tx(result))
				}
				tw.Flush()
				fmt.Fprintln(out, summary)
			}
			if bad > 0 {
				return exitCode(1)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&cfgFile, "config", "", "the config file of fenced run (its bmc: section and hosts: list)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the results as JSON")
	cmd.Flags().DurationVar(&timeout, "timeout", health.DefaultTimeout, "bound on each host's check, login included")
	cmd.Flags().IntVar(&parallel, "parallel", health.DefaultParallel, "hosts checked at once")
	return cmd
}

// bmcTargets resolves the BMC of each named host, or of every host the bmc
// section names. Only the hosts checked need their credentials.
func bmcTargets(cfg *config.Config, hosts []string) (map[string]redfish.Target, error) {
	b := cfg.BMC
	if b == nil {
		return nil, fmt.Errorf("%s has no bmc: section: no fence path to check", cfg.File())
	}
	if len(hosts) == 0 {
		for h := range b.Hosts {
			hosts = append(hosts, h)
		}
		if b.Template != nil {
			hosts = append(hosts, cfg.Hosts...)
		}
		if len(hosts) == 0 {
			return nil, fmt.Errorf("%s: bmc has a template but the config lists no hosts: name the hosts to check", cfg.File())
		}
	}
	want := map[string]bool{}
	var unknown []string
	for _, h := range hosts {
		if _, ok := b.Hosts[h]; !ok && b.Template == nil {
			unknown = append(unknown, h)
		}
		want[h] = true
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("no BMC for %s in %s: no bmc.hosts entry and no bmc.template", strings.Join(unknown, ", "), cfg.File())
	}
	// resolve only the entries asked for: another host's missing password
	// must not stop this check
	sub := *b
	sub.Hosts = maps.Clone(b.Hosts)
	for h := range sub.Hosts {
		if !want[h] {
			delete(sub.Hosts, h)
		}
	}
	c := *cfg
	c.BMC = &sub
	list := make([]string, 0, len(want))
	for h := range want {
		list = append(list, h)
	}
	targets, err := c.BMCTargets(list, os.Getenv)
	if err != nil {
		return nil, err
	}
	for h := range targets {
		if !want[h] {
			delete(targets, h)
		}
	}
	return targets, nil
}
