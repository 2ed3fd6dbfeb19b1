package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/fencedhq/fenced/internal/capool"
	"github.com/fencedhq/fenced/internal/escape"
	"github.com/fencedhq/fenced/pkg/api"
	"github.com/fencedhq/fenced/pkg/report"
	"github.com/fencedhq/fenced/pkg/signals"
)

type clientOpts struct {
	server string
	token  string
	ca     string
	asJSON bool
}

func (o *clientOpts) flags(cmd *cobra.Command) {
	def := os.Getenv("FENCED_SERVER")
	if def == "" {
		def = "http://127.0.0.1:8480"
	}
	cmd.Flags().StringVar(&o.server, "server", def, "fenced API address (env FENCED_SERVER)")
	cmd.Flags().StringVar(&o.token, "token", os.Getenv("FENCED_TOKEN"), "bearer token (env FENCED_TOKEN)")
	cmd.Flags().BoolVar(&o.asJSON, "json", false, "print the API's JSON")
	cmd.Flags().StringVar(&o.ca, "ca", os.Getenv("FENCED_CA"), "CA bundle for an HTTPS API (env FENCED_CA)")
}

func (o *clientOpts) client() (*http.Client, error) {
	if o.ca == "" {
		return http.DefaultClient, nil
	}
	pool, err := capool.Read(o.ca)
	if err != nil {
		return nil, fmt.Errorf("--ca: %w", err)
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}, nil
}

// call does one API request with a timeout and decodes the reply into out.
func (o *clientOpts) call(ctx context.Context, method, path string, body, out any) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(o.server, "/")+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if o.token != "" {
		req.Header.Set("Authorization", "Bearer "+o.token)
	}
	hc, err := o.client()
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("fenced API at %s: %w", o.server, err)
	}
	defer resp.Body.Close()
	// JSON replies are small; a raw reply (the audit, an export) may be the
	// whole chain. A reply over the limit is an error, never cut short.
	limit := int64(16 << 20)
	if _, ok := out.(*json.RawMessage); ok {
		limit = 1 << 30
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return fmt.Errorf("fenced API: reading the reply: %w", err)
	}
	if int64(len(data)) > limit {
		return fmt.Errorf("fenced API: %s %s: the reply is over %d MB", method, tx(path), limit>>20)
	}
	if resp.StatusCode/100 != 2 {
		var e api.Error
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return fmt.Errorf("fenced API: %s %s: %s (HTTP %d)", method, tx(path), tx(e.Error), resp.StatusCode)
		}
		return fmt.Errorf("fenced API: %s %s: HTTP %d", method, tx(path), resp.StatusCode)
	}
	if raw, ok := out.(*json.RawMessage); ok {
		*raw = data
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("fenced API: %s %s: unexpected reply: %w", method, tx(path), err)
	}
	return nil
}

// tx makes text from the API safe for a terminal: reasons, names, hosts
// and errors are untrusted, and a newline or an escape sequence in them
// must not forge a row or repaint the screen (escape.Terminal). --json
// output is the API's JSON, unchanged.
func tx(s string) string { return escape.Terminal(s) }

// daemonNow is the daemon's clock as the API last saw it (an empty page of
// the hosts carries it); this machine's clock when the API does not say.
func (o *clientOpts) daemonNow(ctx context.Context) time.Time {
	var rep api.HostsReply
	if err := o.call(ctx, "GET", "/api/v1/hosts?limit=0", nil, &rep); err != nil || rep.At.IsZero() {
		return time.Now()
	}
	return rep.At
}

// ago is how long before now t was. now is the daemon's clock (the API's
// "t"), never this machine's: a lab at --speed 10 runs its own time, and a
// CLI on a machine whose clock is off must not print "-3m5s ago". An API
// that does not say its time (an older one) gives no elapsed time.
func ago(now, t time.Time) string {
	if t.IsZero() || t.Year() < 2000 || now.IsZero() {
		return "-"
	}
	if t.After(now) {
		return "0s ago" // a clock step; never a negative duration
	}
	return now.Sub(t).Round(time.Second).String() + " ago"
}

func newHostsCmd() *cobra.Command {
	o := &clientOpts{}
	var group string
	cmd := &cobra.Command{
		Use:   "hosts [--group G]",
		Short: "Table of every host: group, state, since, d, top signals, incoherence, pending approval (deadline, then what), unfenceable",
		Long: `hosts asks the fenced API for every host (with --group, the hosts of one
group, and that group's counts, guard and pause). Exit status 0 on success, 1
when the API cannot be reached or answers an error (an unknown group too).`,
		Example: "  fenced hosts\n  fenced hosts --group rack1\n  fenced hosts --json | jq '.hosts[] | select(.state != \"normal\")'",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path := "/api/v1/hosts"
			if cmd.Flags().Changed("group") {
				path += "?group=" + url.QueryEscape(group)
			}
			if o.asJSON {
				var raw json.RawMessage
				if err := o.call(cmd.Context(), "GET", path, nil, &raw); err != nil {
					return err
				}
				_, err := cmd.OutOrStdout().Write(raw)
				return err
			}
			var rep api.HostsReply
			if err := o.call(cmd.Context(), "GET", path, nil, &rep); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "HOST\tGROUP\tSTATE\tSINCE\tD\tTOP SIGNALS\tINCOHERENT\tAPPROVAL DEADLINE")
			for _, h := range rep.Hosts {
				inc, dl := "", ""
				if h.Incoherent {
					inc = "yes"
				}
				if !h.ApprovalDeadline.IsZero() {
					dl = h.ApprovalDeadline.Local().Format("15:04:05")
					if h.ApprovalOnTimeout != "" {
						dl += " then " + tx(h.ApprovalOnTimeout) // approval.on_timeout
					}
				}
				state := h.State
				if h.Blind {
					state += " (blind)"
				}
				if h.Unfenceable != "" {
					state += " (UNFENCEABLE)"
				}
				switch {
				case h.HardFailure != "":
					state += " (hard failure)"
				case h.AgentDown != "":
					state += " (agent down)"
				}
				grp := h.Group
				if grp == "" {
					grp = "-"
				}
				if h.Reserved != "" {
					grp += " (RESERVED " + h.Reserved + ")"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.2f\t%s\t%s\t%s\n", tx(h.Host), tx(grp), tx(state), ago(rep.At, h.Since), h.D, tx(strings.Join(h.Top, " ")), inc, dl)
			}
			tw.Flush()
			paused := ""
			if rep.Paused {
				paused = "; FENCING PAUSED fleet-wide"
			}
			if len(rep.PausedGroups) > 0 {
				names := make([]string, 0, len(rep.PausedGroups))
				for g := range rep.PausedGroups {
					names = append(names, tx(g))
				}
				sort.Strings(names)
				paused += "; FENCING PAUSED in group " + strings.Join(names, ", ")
			}
			fmt.Fprintf(cmd.OutOrStdout(), "\n%d hosts, mode %s, %d at warn or worse, %d fenced%s\n", len(rep.Hosts), tx(rep.Mode), rep.Counts.AtWarnOrWorse, rep.Counts.Fencing, paused)
			for _, h := range rep.Hosts {
				if h.Unfenceable != "" {
					fmt.Fprintf(cmd.OutOrStdout(), "UNFENCEABLE %s: %s (fenced bmc check %s)\n", tx(h.Host), tx(h.Unfenceable), tx(h.Host))
				}
			}
			printGroups(cmd.OutOrStdout(), rep, cmd.Flags().Changed("group"))
			return nil
		},
	}
	o.flags(cmd)
	cmd.Flags().StringVar(&group, "group", "", "only the hosts of this group (\"default\": hosts in no configured group)")
	return cmd
}

// printGroups writes one line per group (when groups are configured, or
// one was asked for): its counts, guard, pause and what holds fencing in
// it; and a stale group membership.
func printGroups(w io.Writer, rep api.HostsReply, asked bool) {
	if !asked && len(rep.Groups) <= 1 && len(rep.PausedGroups) == 0 {
		return // no configured group: the default group is the fleet
	}
	for _, g := range rep.Groups {
		src := ""
		if g.Source != "" {
			src = " (" + tx(g.Source) + ")"
		}
		line := fmt.Sprintf("group %s%s: %d hosts, %d healthy, %d at warn or worse, %d fenced", tx(g.Name), src, g.Total, g.Healthy, g.AtWarnOrWorse, g.Fencing)
		if g.PolicyOverrides {
			line += "; policy with group overrides, mode " + tx(string(g.Mode))
		}
		if g.MinHealthy != "" {
			line += "; min_healthy " + tx(g.MinHealthy)
		}
		if g.MaxConcurrent > 0 {
			line += fmt.Sprintf("; max_concurrent %d", g.MaxConcurrent)
		}
		if p, ok := rep.PausedGroups[g.Name]; ok {
			line += fmt.Sprintf("; PAUSED by %s: %s", tx(p.Operator), tx(p.Reason))
		}
		if g.Hold != "" {
			line += "; HOLDS automatic fencing: " + tx(g.Hold)
		}
		fmt.Fprintln(w, line)
	}
	if m := rep.GroupMembership; m != nil && m.Error != "" {
		fmt.Fprintf(w, "GROUP MEMBERSHIP NOT REFRESHED: %s; the membership read %s is in force\n", tx(m.Error), ago(rep.At, m.RefreshedAt))
	}
}

func newHostCmd() *cobra.Command {
	o := &clientOpts{}
	cmd := &cobra.Command{
		Use:   "host HOST",
		Short: "One host: its verdict (every signal's value and contribution) and its recent state changes",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var raw json.RawMessage
			if err := o.call(cmd.Context(), "GET", "/api/v1/hosts/"+url.PathEscape(args[0]), nil, &raw); err != nil {
				return err
			}
			if o.asJSON {
				_, err := cmd.OutOrStdout().Write(raw)
				return err
			}
			var rep struct {
				Host struct {
					Name, State, Reason string
					Since               time.Time
				}
				Verdict struct {
					D             float64
					Blind         bool
					Incoherence   string
					HardFailure   string `json:"hard_failure"`
					AgentDown     string `json:"agent_down"`
					Contributions []struct {
						Signal                         string
						Value, M, Weight, Contribution float64
						Stale, Discounted              bool
					}
				}
				Changes []struct {
					T        time.Time
					From, To string
					D        float64
					Reason   string
				}
				Group    string
				Reserved string
				At       time.Time `json:"t"` // the daemon's clock
			}
			if err := json.Unmarshal(raw, &rep); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "%s: %s since %s, d=%.2f\n", tx(rep.Host.Name), tx(rep.Host.State), ago(rep.At, rep.Host.Since), rep.Verdict.D)
			if rep.Group != "" {
				fmt.Fprintf(out, "group: %s\n", tx(rep.Group))
			}
			if rep.Reserved != "" {
				fmt.Fprintf(out, "RESERVED host of its group: %s\n", tx(rep.Reserved))
			}
			if rep.Host.Reason != "" {
				fmt.Fprintf(out, "reason: %s\n", tx(rep.Host.Reason))
			}
			if rep.Verdict.Incoherence != "" {
				fmt.Fprintf(out, "execution incoherence: %s\n", tx(rep.Verdict.Incoherence))
			}
			if rep.Verdict.HardFailure != "" {
				fmt.Fprintf(out, "hard failure: %s\n", tx(rep.Verdict.HardFailure))
			}
			if rep.Verdict.AgentDown != "" {
				fmt.Fprintf(out, "%s: %s (docs/runbooks/agent-down.md)\n", signals.AgentDownReason, tx(rep.Verdict.AgentDown))
			}
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "\nSIGNAL\tVALUE\tM\tWEIGHT\tCONTRIBUTION")
			for _, c := range rep.Verdict.Contributions {
				st := ""
				switch {
				case c.Stale:
					st = " (stale)"
				case c.Discounted:
					st = " (discounted: measures the agent)"
				}
				fmt.Fprintf(tw, "%s%s\t%.4g\t%.2f\t%.2f\t%.3f\n", tx(c.Signal), st, c.Value, c.M, c.Weight, c.Contribution)
			}
			tw.Flush()
			fmt.Fprintln(out, "\ntimeline:")
			for _, c := range rep.Changes {
				fmt.Fprintf(out, "  %s  %s → %s  d=%.2f  %s\n", c.T.Local().Format("15:04:05"), tx(c.From), tx(c.To), c.D, tx(c.Reason))
			}
			return nil
		},
	}
	o.flags(cmd)
	return cmd
}

func newOperateCmd(action string) *cobra.Command {
	o := &clientOpts{}
	w := &writeOpts{}
	short := map[string]string{
		"approve": "Approve the irreversible step (evacuation or power cycle) for a host waiting for it",
		"abort":   "Abort fencing of a host: back to watching, with a cool-down",
		"unfence": "Return a host that needs a human (or is restored/fenced) to service",
	}[action]
	cmd := &cobra.Command{
		Use:     action + " HOST --reason TEXT",
		Short:   short,
		Long:    short + ".\nThe operator's name (--operator, default $USER) and the reason go into the audit log.\nExit status 1 if the API refuses (for example, the host is not in a state that allows it).",
		Example: fmt.Sprintf("  fenced %s cmp-017 --reason \"libvirt frozen, VMs unreachable (INC-4711)\"", action),
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := w.check(); err != nil {
				return err
			}
			var rep struct {
				Changes []struct{ From, To, Reason string }
			}
			if err := o.call(cmd.Context(), "POST", "/api/v1/hosts/"+url.PathEscape(args[0])+"/"+action, w.request(), &rep); err != nil {
				return err
			}
			if o.asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(rep)
			}
			if len(rep.Changes) == 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s: recorded, no state change\n", action, tx(args[0]))
			}
			for _, c := range rep.Changes {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: %s → %s  %s\n", tx(args[0]), tx(c.From), tx(c.To), tx(c.Reason))
			}
			return nil
		},
	}
	o.flags(cmd)
	w.flags(cmd)
	return cmd
}

func newPauseCmd(pause bool) *cobra.Command {
	o := &clientOpts{}
	w := &writeOpts{}
	var group string
	name, short := "resume", "Resume automatic fencing fleet-wide, or in one group (--group)"
	if pause {
		name, short = "pause", "Pause fencing fleet-wide, or in one group (--group): hosts are still classified and on-call notified, nothing is acted on"
	}
	cmd := &cobra.Command{
		Use:   name + " [--group G] --reason TEXT",
		Short: short,
		Long: short + `.
The pause is stored in etcd and survives restarts; the operator's name and the
reason go into the audit log. A group's pause holds only that group's hosts;
the fleet-wide pause holds every host whatever its group's pause says.`,
		Example: fmt.Sprintf("  fenced %s --reason \"storage maintenance, CHG-1234\"\n  fenced %s --group rack1 --reason \"rack1 power work, CHG-1250\"", name, name),
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := w.check(); err != nil {
				return err
			}
			path, where := "/api/v1/"+name, "fleet-wide"
			if cmd.Flags().Changed("group") {
				if strings.TrimSpace(group) == "" {
					return fmt.Errorf("--group: a group name is required")
				}
				path, where = "/api/v1/groups/"+url.PathEscape(group)+"/"+name, "in group "+tx(group)
			}
			var rep map[string]any
			if err := o.call(cmd.Context(), "POST", path, w.request(), &rep); err != nil {
				return err
			}
			if o.asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(rep)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "fencing %sd %s\n", name, where)
			return nil
		},
	}
	o.flags(cmd)
	w.flags(cmd)
	cmd.Flags().StringVar(&group, "group", "", "only this group (fenced hosts lists the groups)")
	return cmd
}

func newReportCmd() *cobra.Command {
	o := &clientOpts{}
	var htmlFile, pngFile string
	cmd := &cobra.Command{
		Use:   "report HOST [--html FILE] [--png FILE]",
		Short: "Postmortem of a host: timeline, actions, signals, r1, r2, r_eff and a recommendation (paper section 6.3)",
		Long: `report asks the fenced API for a host's postmortem. --html writes the
incident view frozen now as one self-contained page (inline SVG charts of d(t),
each signal and the contributions to d, the audit timeline with request ids,
the gate's verdict, r1, r2, r_eff and the recommendation; it opens offline);
--png writes the d(t) chart. The history is what the API kept (docs/console.md).`,
		Example: "  fenced report cmp-017\n  fenced report cmp-017 --json > cmp-017-postmortem.json\n  fenced report cmp-017 --html cmp-017.html --png cmp-017-d.png",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var raw json.RawMessage
			if err := o.call(cmd.Context(), "GET", "/api/v1/hosts/"+url.PathEscape(args[0])+"/report", nil, &raw); err != nil {
				return err
			}
			if o.asJSON && htmlFile == "" && pngFile == "" {
				_, err := cmd.OutOrStdout().Write(raw)
				return err
			}
			var rep report.Report
			if err := json.Unmarshal(raw, &rep); err != nil {
				return fmt.Errorf("fenced API: unexpected report: %w", err)
			}
			if htmlFile != "" || pngFile != "" {
				for _, f := range []struct {
					flag, path string
					write      func(io.Writer) error
				}{{"--html", htmlFile, func(w io.Writer) error { return rep.HTML(w, false) }}, {"--png", pngFile, rep.PNG}} {
					if f.path == "" {
						continue
					}
					if err := writeFile(f.path, f.write); err != nil {
						return fmt.Errorf("%s: %w", f.flag, err)
					}
					fmt.Fprintf(cmd.OutOrStdout(), "wrote %s\n", f.path)
				}
				return nil
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "postmortem of %s (now %s)\n", tx(rep.Host), tx(string(rep.State)))
			if !rep.Onset.IsZero() {
				fmt.Fprintf(out, "onset: %s\n", rep.Onset.Local().Format(time.RFC3339))
			}
			fmt.Fprintln(out, "\ntimeline:")
			for _, r := range rep.Timeline {
				who := ""
				if r.Operator != "" {
					who = " by " + tx(r.Operator)
				}
				detail := r.Verdict
				if detail == "" {
					detail = r.Detail
				}
				fmt.Fprintf(out, "  %s  %s%s  %s\n", r.Timestamp.Local().Format("15:04:05"), tx(r.Action), who, tx(detail))
			}
			fmt.Fprintln(out, "\nactions (intent → outcome):")
			for _, r := range rep.Actions {
				fmt.Fprintf(out, "  %s  %-14s %-7s token %d %s %s\n", r.Timestamp.Local().Format("15:04:05"), tx(r.Action), tx(r.Outcome), r.FenceToken, tx(r.RequestID), tx(r.Detail))
			}
			if len(rep.Chain) > 0 {
				fmt.Fprintln(out, "\nrecovery chain (as it ran; step, start → end, outcome, why [plan]):")
				for _, s := range rep.Chain {
					end := "…"
					if !s.End.IsZero() {
						end = s.End.Local().Format("15:04:05")
					}
					fmt.Fprintf(out, "  %-13s %s → %-8s %-10s %s [%s]\n", tx(s.Step), s.Start.Local().Format("15:04:05"), end, tx(s.Outcome), tx(s.Detail), tx(s.Plan))
				}
			}
			if rep.R1 > 0 {
				fmt.Fprintf(out, "\noversubscription: r1 = V/C = %.2f, r2 = P/v = %.2f, r_eff ≈ %.2f\n", rep.R1, rep.R2, rep.REff)
			}
			fmt.Fprintf(out, "recommendation: %s\n", tx(rep.Recommendation))
			return nil
		},
	}
	o.flags(cmd)
	cmd.Flags().StringVar(&htmlFile, "html", "", "write the incident view as a self-contained HTML page to FILE")
	cmd.Flags().StringVar(&pngFile, "png", "", "write the d(t) chart as a PNG image to FILE")
	return cmd
}

// writeFile writes a file through write, whole or not at all.
func writeFile(path string, write func(io.Writer) error) error {
	var b bytes.Buffer
	if err := write(&b); err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// writeOpts are the flags every write carries into the audit log.
type writeOpts struct{ reason, operator string }

func (w *writeOpts) flags(cmd *cobra.Command) {
	user := os.Getenv("USER")
	if user == "" {
		user = "unknown"
	}
	cmd.Flags().StringVar(&w.reason, "reason", "", "why (required; written to the audit log)")
	cmd.Flags().StringVar(&w.operator, "operator", user, "who is acting")
}

func (w *writeOpts) check() error {
	if strings.TrimSpace(w.reason) == "" {
		return fmt.Errorf("--reason is required: it goes into the audit log")
	}
	return nil
}

func (w *writeOpts) request() api.OperateRequest {
	return api.OperateRequest{Operator: w.operator, Reason: w.reason}
}
