package main

import (
	"bytes"
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/fencedhq/fenced/pkg/api"
	"github.com/fencedhq/fenced/pkg/audit"
	"github.com/fencedhq/fenced/pkg/clock"
	"github.com/fencedhq/fenced/pkg/daemon"
	"github.com/fencedhq/fenced/pkg/fleet"
	"github.com/fencedhq/fenced/pkg/playbook"
	"github.com/fencedhq/fenced/pkg/signals"
)

// auditingBackend is a daemon for the CLI's tests: it shows snap and
// audits an operator's command as the daemon does (the reason as the
// record's detail).
type auditingBackend struct {
	log  *audit.Log
	snap daemon.Snapshot
}

func (b *auditingBackend) Snapshot() daemon.Snapshot { return b.snap }
func (b *auditingBackend) Operate(ctx context.Context, host string, ev playbook.Event, op, reason string) ([]playbook.Change, error) {
	_, err := b.log.Append(ctx, audit.Record{Component: "api", HostID: host, Action: string(ev), Operator: op, Outcome: "requested", Detail: reason})
	return []playbook.Change{{Host: host, From: playbook.AwaitingApproval, To: playbook.Fenced, Reason: op + ": " + reason}}, err
}
func (b *auditingBackend) SetPaused(context.Context, bool, string, string) error { return nil }

const evil = "\x1b[2J\x1b[Hwiped\rback\u202eesrever\ttab"

// TestControlCharactersCannotForgeRows: a reason with a newline that
// carries a fake "approve ok carol" record is one row of fenced audit,
// escaped; no newline, carriage return, ESC, tab or bidi override from the
// API reaches the terminal in any text output; --json is the API's JSON.
func TestControlCharactersCannotForgeRows(t *testing.T) {
	log := audit.New(audit.NewMemStore(), clock.Real{})
	now := time.Now()
	b := &auditingBackend{log: log, snap: daemon.Snapshot{At: now, Mode: "approve", Hosts: []fleet.View{{
		Host:    playbook.Host{Name: "cmp-017", State: playbook.AwaitingApproval, Since: now, Reason: "d=0.8 " + evil},
		Verdict: signals.Verdict{D: 0.8, Incoherence: "nova says up " + evil, Contributions: []signals.Contribution{{Signal: signals.CPUSteal, Value: 30, Contribution: 0.2}}},
	}}, Changes: []playbook.Change{{At: now, Host: "cmp-017", From: playbook.Critical, To: playbook.AwaitingApproval, Reason: "waits " + evil}},
		Unfenceable: map[string]string{"cmp-017": "BMC says " + evil}}}
	srv := httptest.NewServer(api.New(b, api.Reads{Audit: log}, nil))
	defer srv.Close()
	flags := []string{"--server", srv.URL}

	forged := "x\n" + now.Format("01-02 15:04:05") + "  cmp-017  approve  ok  carol  looks legit" + "\r" + evil
	if _, _, err := run(t, append([]string{"approve", "cmp-017", "--operator", "mallory", "--reason", forged}, flags...)...); err != nil {
		t.Fatal(err)
	}
	out, _, err := run(t, append([]string{"audit"}, flags...)...)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("fenced audit printed %d lines for one record (header + 1):\n%s", len(lines), out)
	}
	if !strings.Contains(lines[1], "mallory") || !strings.Contains(lines[1], `x\n`) || strings.Contains(lines[1], "carol") && !strings.Contains(lines[1], `x\n`) {
		t.Errorf("the record's row: %q", lines[1])
	}
	for _, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), now.Format("01-02")) {
			t.Errorf("a forged row: %q", l)
		}
	}
	// the record itself keeps the reason as given (JSON is unchanged)
	js, _, err := run(t, append([]string{"audit", "--json"}, flags...)...)
	if err != nil || !strings.Contains(js, `x\n`) || !strings.Contains(js, `\u001b[2J`) {
		t.Fatalf("audit --json: %v\n%s", err, js)
	}

	for _, args := range [][]string{{"audit"}, {"hosts"}, {"host", "cmp-017"}, {"approve", "cmp-017", "--reason", "r\x1b[31m"}} {
		out, _, err := run(t, append(args, flags...)...)
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		body := strings.ReplaceAll(out, "\n", "") // the commands' own line ends
		if strings.ContainsAny(body, "\r\x1b\u202e") {
			t.Errorf("fenced %v prints a raw control character:\n%q", args, out)
		}
		if !strings.Contains(out, `\x1b[2J`) && args[0] != "approve" {
			t.Errorf("fenced %v does not show the escaped text:\n%s", args, out)
		}
	}
	out, _, _ = run(t, append([]string{"host", "cmp-017"}, flags...)...)
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "\t") {
			t.Errorf("a raw tab in fenced host: %q", l)
		}
	}
}

// TestPlaintextListenerWarns: an API off loopback without TLS starts, says
// so in the log, and /metrics says it (fenced_api_plaintext).
func TestPlaintextListenerWarns(t *testing.T) {
	tokens := map[string]api.Identity{"operator-token-0123": {Name: "carol", Role: api.Operator}}
	ln, scheme, plain, err := listenAPI("0.0.0.0:0", tokens)
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	if !plain || scheme != "http" {
		t.Fatalf("0.0.0.0 without TLS: plaintext %v scheme %s", plain, scheme)
	}
	ln, _, plain, err = listenAPI("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	if plain {
		t.Fatal("loopback counted as plaintext")
	}
	if _, _, _, err := listenAPI("0.0.0.0:0", nil); err == nil {
		t.Fatal("an API without tokens listened off loopback")
	}
	var buf bytes.Buffer
	warnPlaintext(zerolog.New(&buf), "0.0.0.0:8480")
	if !strings.Contains(buf.String(), `"level":"warn"`) || !strings.Contains(buf.String(), "without TLS") || !strings.Contains(buf.String(), `"listen":"0.0.0.0:8480"`) {
		t.Fatalf("warning: %s", buf.String())
	}
}
