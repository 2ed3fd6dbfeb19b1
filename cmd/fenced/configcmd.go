package main

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/fencedhq/fenced/pkg/api"
	"github.com/fencedhq/fenced/pkg/config"
	"github.com/fencedhq/fenced/pkg/groups"
)

func newConfigCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Work with `fenced run --config` files"}
	check := &cobra.Command{
		Use:   "check FILE...",
		Short: "Validate run configs strictly: unknown keys, required sections, credentials, the policy it names",
		Long: `check loads each file the way 'fenced run --config' does: unknown keys are
errors, etcd is required (endpoints, or embedded with a data dir), templates
need {host}, URLs must be http(s). It then reads what the file points to on
this machine: the policy file, the tokens file, the BMC and etcd passwords
(from their environment variables or files; never printed), the audit
signing key and witness, so run it where
fenced runs, with its environment. Nothing is contacted: 'fenced bmc check'
logs in to the BMCs. An error names the file, line and field. Exit status 1
if any file is invalid.`,
		Example: "  fenced config check deploy/fenced.yaml\n  FENCED_BMC_PASSWORD=… fenced config check /etc/fenced/fenced.yaml",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			bad := 0
			for _, path := range args {
				summary, err := checkConfig(path)
				if err != nil {
					fmt.Fprintln(cmd.ErrOrStderr(), err)
					bad++
					continue
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: valid; %s\n", path, summary)
			}
			if bad > 0 {
				return exitCode(1)
			}
			return nil
		},
	}
	cmd.AddCommand(check)
	return cmd
}

// checkConfig validates one config and what it points to.
func checkConfig(path string) (string, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return "", err
	}
	p, err := loadPolicy(cfg.Policy, "")
	if err != nil {
		return "", err
	}
	if err := p.CheckGroups(cfg.GroupNames()); err != nil {
		return "", err
	}
	if cfg.API.TokensFile != "" {
		if _, err := api.ReadTokens(cfg.API.TokensFile); err != nil {
			return "", err
		}
	}
	if _, err := cfg.EtcdPassword(os.Getenv); err != nil {
		return "", err
	}
	targets, err := cfg.BMCTargets(cfg.Hosts, os.Getenv)
	if err != nil {
		return "", err
	}
	if _, _, _, err := cfg.AuditSigning(""); err != nil {
		return "", err
	}
	var sections []string
	for name, on := range map[string]bool{"nova": cfg.Nova != nil, "bmc": cfg.BMC != nil, "libvirt": cfg.Libvirt != nil,
		"prometheus": cfg.Prometheus != nil, "webhooks": len(cfg.Webhooks) > 0, "audit": cfg.Audit != nil, "groups": len(cfg.Groups) > 0} {
		if on {
			sections = append(sections, name)
		}
	}
	sort.Strings(sections)
	etcd := "etcd " + strings.Join(cfg.Etcd.Endpoints, ",")
	if cfg.Etcd.Embedded != nil {
		etcd = "embedded etcd in " + cfg.Etcd.Embedded.DataDir
	}
	defs := cfg.GroupDefs()
	if c := groups.ExplicitConflicts(defs, cfg.Hosts); len(c) > 0 {
		return "", cfg.Errorf("groups", "%s matches the hosts of groups %s: a host is in at most one group", c[0].Host, strings.Join(c[0].Groups, " and "))
	}
	var gs []string
	for _, d := range defs {
		g := d.Name + " (" + d.Source()
		if m := d.Guard.MinHealthy; m.Set() {
			g += ", min_healthy " + m.String()
		}
		if d.Guard.MaxConcurrent > 0 {
			g += fmt.Sprintf(", max_concurrent %d", d.Guard.MaxConcurrent)
		}
		if len(d.Reserved) > 0 {
			g += ", reserved_hosts " + strings.Join(d.Reserved, " ")
		}
		gs = append(gs, g+")")
	}
	summary := fmt.Sprintf("policy %s (mode %s), %s, sections %s, %d BMCs resolved",
		p.Version(), p.PlaybookConfig().Mode, etcd, strings.Join(sections, " "), len(targets))
	if len(gs) > 0 {
		summary += "; groups " + strings.Join(gs, ", ")
	}
	return summary, nil
}
