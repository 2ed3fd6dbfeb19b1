package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/fencedhq/fenced/internal/buildinfo"
)

func newVersionCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit and Go version of this binary",
		Long: `version prints which build of fenced this is: the version (git describe of
the tree it was built from), the commit and the Go version. /metrics exposes
the same as fenced_build_info.`,
		Example: `  fenced version
  fenced version --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			in := buildinfo.Get()
			if asJSON {
				b, err := json.Marshal(in)
				if err != nil {
					return fmt.Errorf("version: %w", err)
				}
				_, err = fmt.Fprintln(cmd.OutOrStdout(), string(b))
				return err
			}
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "fenced %s\ncommit %s\ngo     %s\n", in.Version, in.Commit, in.GoVersion)
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	return cmd
}
