package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/fencedhq/fenced/pkg/api"
	"github.com/fencedhq/fenced/pkg/audit"
	"github.com/fencedhq/fenced/pkg/config"
)

func newAuditCmd() *cobra.Command {
	o := &clientOpts{}
	var host, since string
	cmd := &cobra.Command{
		Use:   "audit [--host H] [--since RFC3339|DURATION] [--json]",
		Short: "Read the hash-chained audit log (decisions, intents and outcomes, operator commands)",
		Long: `audit prints the audit log: every state change with the verdict and policy
version behind it, every action's intent and outcome with the fencing token,
and every operator command with the operator's name and reason. --json prints
JSON Lines, ready for a postmortem. 'fenced audit verify' checks the chain
and its signatures; 'fenced audit export' writes a copy that verifies offline.`,
		Example: "  fenced audit --host cmp-017 --since 2h\n  fenced audit --json > audit.jsonl\n  fenced audit verify",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			if host != "" {
				q.Set("host", host)
			}
			if since != "" {
				t, err := time.Parse(time.RFC3339, since)
				if err != nil {
					d, derr := time.ParseDuration(since)
					if derr != nil {
						return fmt.Errorf("--since: want RFC 3339 (2026-01-15T01:00:00Z) or a duration (2h)")
					}
					// before the daemon's now: a lab at --speed runs its own time
					t = o.daemonNow(cmd.Context()).Add(-d)
				}
				q.Set("since", t.UTC().Format(time.RFC3339))
			}
			var raw json.RawMessage
			if err := o.call(cmd.Context(), "GET", "/api/v1/audit?"+q.Encode(), nil, &raw); err != nil {
				return err
			}
			if o.asJSON {
				_, err := cmd.OutOrStdout().Write(raw)
				return err
			}
			recs, err := audit.ReadJSONL(bytes.NewReader(raw), "API reply")
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "SEQ\tTIME\tHOST\tACTION\tOUTCOME\tWHO/TOKEN\tDETAIL")
			for _, r := range recs {
				who := tx(r.Operator)
				if who == "" && r.FenceToken != 0 {
					who = fmt.Sprintf("token %d", r.FenceToken)
				}
				detail := r.Detail
				if detail == "" {
					detail = r.Verdict
				}
				// escaped first, then cut: a newline or ESC in a reason never
				// reaches the terminal, so it cannot forge a row
				detail = tx(detail)
				if len(detail) > 100 {
					detail = strings.ToValidUTF8(detail[:97], "") + "..."
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Seq, r.Timestamp.Local().Format("01-02 15:04:05"), tx(r.HostID), tx(r.Action), tx(r.Outcome), who, detail)
			}
			return tw.Flush()
		},
	}
	o.flags(cmd)
	cmd.Flags().StringVar(&host, "host", "", "only this host")
	cmd.Flags().StringVar(&since, "since", "", "only records since this time (RFC 3339) or this long ago (2h)")

	cmd.AddCommand(newAuditVerifyCmd(), newAuditExportCmd(), newAuditKeygenCmd())
	return cmd
}

func newAuditVerifyCmd() *cobra.Command {
	vo := &clientOpts{}
	var file, configPath string
	var pubKeys []string
	verify := &cobra.Command{
		Use:   "verify [--file EXPORT --public-key KEY... | --config FILE]",
		Short: "Check the audit chain: exit 0 if intact, 1 if any record was edited, forged, or removed",
		Long: `verify checks the audit chain: each record's hash and link, that the stored
bytes are exactly the record (no extra or duplicate keys), and, when the
deployment signs its audit (the config's audit: section), every record's
ed25519 signature against the configured public keys. A replica also checks
its witness: the newest record it wrote or verified must still be in the
chain, so a tail cut with the head rewritten to match is noticed.

Without --file it asks a replica's API (which uses that replica's keys and
witness). With --file it checks an export written by 'fenced audit export',
offline: the keys come from --public-key (repeatable) or the audit section of
--config, and the export's signed checkpoint proves that nothing was cut from
the file's end. docs/audit.md says what this does and does not protect.`,
		Example: "  fenced audit verify\n  fenced audit export --out audit-2026-12-02.jsonl\n  fenced audit verify --file audit-2026-12-02.jsonl --config /etc/fenced/fenced.yaml",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var rep api.VerifyReply
			if file != "" {
				keys, err := trustedKeys(configPath, pubKeys)
				if err != nil {
					return err
				}
				f, err := os.Open(file)
				if err != nil {
					return err
				}
				found, err := audit.VerifyExport(f, file, keys)
				f.Close()
				rep = api.VerifyReply{Report: found, OK: err == nil}
				if err != nil {
					rep.Error = err.Error()
				}
			} else {
				if configPath != "" || len(pubKeys) > 0 {
					return fmt.Errorf("--config and --public-key go with --file (a replica's API verifies with its own keys)")
				}
				if err := vo.call(cmd.Context(), "GET", "/api/v1/audit/verify", nil, &rep); err != nil {
					return err
				}
			}
			out := cmd.OutOrStdout()
			switch {
			case vo.asJSON:
				_ = json.NewEncoder(out).Encode(rep)
			case rep.OK:
				fmt.Fprintf(out, "audit chain intact: %d records", rep.Records)
				if rep.Signatures {
					fmt.Fprintf(out, ", %d signed (keys %s)", rep.Signed, strings.Join(rep.Keys, ", "))
					if rep.Unsigned > 0 {
						fmt.Fprintf(out, ", %d unsigned from before signing began", rep.Unsigned)
					}
				} else {
					fmt.Fprint(out, "; signatures not checked (no audit: section)")
				}
				if w := rep.Witness; w != nil {
					who := "this replica's witness"
					if file != "" {
						who = fmt.Sprintf("the export's checkpoint by %s", tx(w.Replica))
					}
					fmt.Fprintf(out, "; %s (record %d, %s) holds", who, w.Seq, w.At.Local().Format("2006-01-02 15:04:05"))
				}
				fmt.Fprintln(out)
			default:
				fmt.Fprintf(out, "AUDIT CHAIN BROKEN: %s (%d records read)\n", tx(rep.Error), rep.Records)
			}
			if !rep.OK {
				return exitCode(1)
			}
			return nil
		},
	}
	vo.flags(verify)
	verify.Flags().StringVar(&file, "file", "", "verify this export (fenced audit export) offline instead of asking a replica")
	verify.Flags().StringVar(&configPath, "config", "", "with --file: take the public keys from this config's audit: section")
	verify.Flags().StringArrayVar(&pubKeys, "public-key", nil, "with --file: a trusted public key, base64 (repeatable)")
	return verify
}

// trustedKeys are the public keys of --public-key and --config's audit section.
func trustedKeys(configPath string, pubKeys []string) (audit.Keyring, error) {
	if configPath != "" {
		cfg, err := config.Load(configPath)
		if err != nil {
			return nil, err
		}
		if cfg.Audit == nil {
			return nil, fmt.Errorf("%s: no audit: section, so no public keys to verify with", configPath)
		}
		pubKeys = append(pubKeys, cfg.Audit.PublicKeys...)
	}
	if len(pubKeys) == 0 {
		return nil, fmt.Errorf("--file needs the deployment's public keys: --public-key KEY or --config FILE")
	}
	keys, err := audit.ParsePublicKeys(pubKeys)
	if err != nil {
		return nil, fmt.Errorf("--public-key%w", err)
	}
	return keys, nil
}

func newAuditExportCmd() *cobra.Command {
	o := &clientOpts{}
	var out string
	cmd := &cobra.Command{
		Use:   "export [--out FILE]",
		Short: "Write the whole audit chain as JSON Lines that verify offline",
		Long: `export writes every audit record exactly as stored, one per line, and a last
line with a checkpoint (the last record's number and hash, the time) signed
by the replica that answered, after it verified the live chain. Keep exports
outside etcd: 'fenced audit verify --file' checks one later with the
deployment's public keys, without etcd or a replica. Without --out it writes
to standard output.`,
		Example: "  fenced audit export --out audit-$(date +%F).jsonl\n  fenced audit verify --file audit-2026-12-02.jsonl --public-key MCowBQ…",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var raw json.RawMessage
			if err := o.call(cmd.Context(), "GET", "/api/v1/audit/export", nil, &raw); err != nil {
				return err
			}
			body := []byte(raw)
			if out == "" {
				_, err := cmd.OutOrStdout().Write(body)
				return err
			}
			if err := os.WriteFile(out, body, 0o600); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s (%d lines)\n", out, bytes.Count(body, []byte("\n")))
			return nil
		},
	}
	o.flags(cmd)
	cmd.Flags().StringVar(&out, "out", "", "write to this file (mode 0600) instead of standard output")
	return cmd
}

func newAuditKeygenCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "keygen --out FILE",
		Short: "Make a replica's audit signing key (ed25519) and print its public key",
		Long: `keygen writes a new ed25519 private key (PEM PKCS#8, mode 0600; the same
format 'openssl genpkey -algorithm ed25519' writes) and prints its public key.
Give each replica its own key in audit.signing_key_file and list every
replica's public key in audit.public_keys of every replica's config. It never
overwrites a file. Keep the key off etcd and out of backups that etcd's
writers can read: whoever holds it can sign records.`,
		Example: "  fenced audit keygen --out /etc/fenced/audit.key",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return fmt.Errorf("--out FILE is required")
			}
			key, err := audit.GenerateKey(out)
			if err != nil {
				return err
			}
			pub := audit.EncodePublicKey(key.Public().(ed25519.PublicKey))
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "wrote %s (key id %s)\npublic key: %s\n\nin the config of every replica:\naudit:\n  signing_key_file: %s   # this replica's own key\n  public_keys: [%s]   # every replica's\n",
				out, audit.KeyID(key.Public().(ed25519.PublicKey)), pub, out, pub)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "where to write the private key")
	return cmd
}
