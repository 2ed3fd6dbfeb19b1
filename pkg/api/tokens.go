package api

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"github.com/fencedhq/fenced/internal/escape"
)

// ReadTokens reads a tokens file: one "ROLE NAME TOKEN" a line (ROLE scrape,
// viewer, operator or alerts; NAME is what the audit records for the token's
// writes; TOKEN at least 16 characters), # comments and blank lines allowed.
// A scrape token reads /metrics only: give it to Prometheus. An alerts
// token posts alerts only: give it to Alertmanager.
func ReadTokens(path string) (map[string]Identity, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tokens: %w", err)
	}
	defer f.Close()
	out := map[string]Identity{}
	names := map[string]int{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 3 || (rank[Role(fields[0])] == 0 && Role(fields[0]) != Alerts) {
			return nil, fmt.Errorf("%s:%d: want \"ROLE NAME TOKEN\" with ROLE scrape, viewer, operator or alerts", path, n)
		}
		role, name, tok := fields[0], fields[1], fields[2]
		if len(name) > MaxOperator || escape.Terminal(name) != name {
			return nil, fmt.Errorf("%s:%d: a NAME of at most %d printable characters, no backslash", path, n, MaxOperator)
		}
		if len(tok) < 16 {
			return nil, fmt.Errorf("%s:%d: token of %s shorter than 16 characters", path, n, name)
		}
		if _, dup := out[tok]; dup {
			return nil, fmt.Errorf("%s:%d: token of %s repeats an earlier line's token", path, n, name)
		}
		if prev, dup := names[name]; dup {
			return nil, fmt.Errorf("%s:%d: name %s already used on line %d: each token needs its own name", path, n, name, prev)
		}
		names[name] = n
		out[tok] = Identity{Name: name, Role: Role(role)}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no tokens", path)
	}
	return out, nil
}
