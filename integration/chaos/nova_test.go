package chaos

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fencedhq/fenced/integration/internal/stack"
)

// novaHosts are nova-compute services of the real Nova that no nova-compute
// process backs: one fake-driver compute per host would need a hundred
// Python processes on a 2-core machine. Their rows are written into Nova's
// cell database, and the test heartbeats for them (updated_at and
// report_count, as nova-compute's DB servicegroup driver does) while their
// host is powered on and not frozen. Everything fenced does to them goes
// through Nova's API: the service list, force down, disable, enable, the
// servers on the host.
//
// Their service version is 0 (older than the trait sync of Train): Nova's
// API then does not call the (absent) compute over RPC when a service is
// disabled or enabled.
type novaHosts struct {
	db    string // psql connection string of the cell database
	mu    sync.Mutex
	alive map[string]bool // heartbeating
	stopc chan struct{}
	done  chan struct{}
}

// cellDB reads the cell database's address from the stack's nova-db.conf
// (connection = postgresql+psycopg2://USER:PW@HOST:PORT/nova).
func cellDB(s *stack.Stack) (string, error) {
	path := filepath.Join(s.Base, "etc", "nova", "nova-db.conf")
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	re := regexp.MustCompile(`^connection = postgresql\+psycopg2://([^:]+):([^@]+)@([^:]+):(\d+)/(\w+)$`)
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "[") {
			section = line
			continue
		}
		if m := re.FindStringSubmatch(line); m != nil && section == "[database]" {
			return fmt.Sprintf("postgresql://%s:%s@%s:%s/%s", m[1], m[2], m[3], m[4], m[5]), nil
		}
	}
	return "", fmt.Errorf("%s: no [database] connection", path)
}

func addComputes(s *stack.Stack, names []string) (*novaHosts, error) {
	db, err := cellDB(s)
	if err != nil {
		return nil, err
	}
	n := &novaHosts{db: db, alive: map[string]bool{}, stopc: make(chan struct{}), done: make(chan struct{})}
	var rows []string
	for _, h := range names {
		rows = append(rows, fmt.Sprintf(`(now() at time zone 'utc', now() at time zone 'utc', 0, '%s', 'nova-compute', 'compute', 1, false, false, 0, gen_random_uuid()::text, now() at time zone 'utc')`, h))
		n.alive[h] = true
	}
	if err := n.sql(`INSERT INTO services (created_at, updated_at, deleted, host, "binary", topic, report_count, disabled, forced_down, version, uuid, last_seen_up) VALUES ` +
		strings.Join(rows, ",\n") + ";"); err != nil {
		return nil, fmt.Errorf("add %d compute services to Nova: %w", len(names), err)
	}
	go n.heartbeat()
	return n, nil
}

func (n *novaHosts) sql(q string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "psql", n.db, "-q", "-v", "ON_ERROR_STOP=1", "-c", q)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("psql: %w: %s", err, tail(string(out), 500))
	}
	return nil
}

// heartbeat reports every second for the hosts that are alive: more often
// than Nova's report interval, so their lag stays at zero.
func (n *novaHosts) heartbeat() {
	defer close(n.done)
	for {
		n.mu.Lock()
		var up []string
		for h, ok := range n.alive {
			if ok {
				up = append(up, "'"+h+"'")
			}
		}
		n.mu.Unlock()
		sort.Strings(up)
		if len(up) > 0 {
			if err := n.sql(`UPDATE services SET updated_at = now() at time zone 'utc', last_seen_up = now() at time zone 'utc', report_count = report_count + 1 WHERE "binary" = 'nova-compute' AND deleted = 0 AND host IN (` +
				strings.Join(up, ",") + `);`); err != nil {
				fmt.Fprintln(os.Stderr, "integration/chaos: heartbeat:", err)
			}
		}
		select {
		case <-n.stopc:
			return
		case <-time.After(time.Second):
		}
	}
}

// setAlive starts or stops a host's heartbeats (frozen, powered off).
func (n *novaHosts) setAlive(host string, alive bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.alive[host] = alive
}

// hide soft-deletes hosts' service records (Nova no longer knows them: no
// heartbeat for fenced to read); show brings them back.
func (n *novaHosts) hide(hs []string) error {
	return n.sql(`UPDATE services SET deleted = id WHERE "binary" = 'nova-compute' AND deleted = 0 AND host IN (` + quoted(hs) + `);`)
}

func (n *novaHosts) show(hs []string) error {
	return n.sql(`UPDATE services SET deleted = 0, updated_at = now() at time zone 'utc' WHERE "binary" = 'nova-compute' AND deleted <> 0 AND host IN (` + quoted(hs) + `);`)
}

func quoted(hs []string) string {
	var q []string
	for _, h := range hs {
		q = append(q, "'"+h+"'")
	}
	return strings.Join(q, ",")
}

func (n *novaHosts) stop() {
	close(n.stopc)
	<-n.done
}

// novaAPI stops (SIGSTOP) or resumes (SIGCONT) nova-api's uwsgi processes:
// the API accepts connections and never answers.
func novaAPI(sig syscall.Signal) error {
	b, err := os.ReadFile(filepath.Join(st.Base, "run", "nova-api.pid"))
	if err != nil {
		return err
	}
	var pid int
	if _, err := fmt.Sscan(string(b), &pid); err != nil || pid <= 1 {
		return fmt.Errorf("nova-api pid %q: %v", b, err)
	}
	// uwsgi's master and its workers share the master's process group (setsid)
	return syscall.Kill(-pid, sig)
}

// fencedInNova says whether Nova still holds host forced down or disabled.
func (n *novaHosts) fencedInNova(host string) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "psql", n.db, "-q", "-t", "-A", "-c",
		`SELECT forced_down OR disabled FROM services WHERE "binary" = 'nova-compute' AND deleted = 0 AND host = '`+host+`';`).CombinedOutput()
	if err != nil {
		return false, fmt.Errorf("psql: %w: %s", err, tail(string(out), 300))
	}
	return strings.TrimSpace(string(out)) == "t", nil
}
