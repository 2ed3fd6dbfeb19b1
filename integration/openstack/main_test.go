package openstack

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

var (
	base    string // the stack's directory
	compCtl string // bin/compute-ctl
	imageID string
)

func here() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}

// prerequisites names the Debian package behind each file the stack needs.
var prerequisites = map[string]string{
	"/usr/bin/uwsgi": "uwsgi-core",
	"/usr/lib/uwsgi/plugins/python3_plugin.so": "uwsgi-plugin-python3",
	"/usr/lib/rabbitmq/bin/rabbitmq-server":    "rabbitmq-server",
	"/usr/lib/postgresql/15/bin/initdb":        "postgresql",
	"/usr/bin/keystone-wsgi-public":            "python3-keystone",
	"/usr/bin/placement-api":                   "python3-placement",
	"/usr/lib/python3/dist-packages/nova":      "python3-nova",
	"/usr/lib/python3/dist-packages/glance":    "python3-glance",
	"/usr/bin/curl":                            "curl",
}

func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var out []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	for f, pkg := range prerequisites {
		if _, err := os.Stat(f); err != nil {
			fmt.Fprintf(os.Stderr, "integration/openstack: %s is missing: install Debian package %s (integration/deps/openstack.txt)\n", f, pkg)
			return 1
		}
	}
	dir, err := os.MkdirTemp("", "fenced-nova-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// postgres runs as user postgres and must reach its data directory
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	base = filepath.Join(dir, "stack")
	ports, err := freePorts(9)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	env := append(os.Environ(), "BASE="+base)
	for i, k := range []string{"PORT_PG", "PORT_AMQP", "PORT_DIST", "PORT_EPMD", "PORT_KEYSTONE", "PORT_PLACEMENT", "PORT_GLANCE", "PORT_NEUTRON", "PORT_NOVA"} {
		env = append(env, k+"="+strconv.Itoa(ports[i]))
	}

	// Watchdog: stops the stack if this process dies without cleaning up.
	wd := exec.Command("bash", filepath.Join(here(), "stack-down.sh"), "--after", strconv.Itoa(os.Getpid()))
	wd.Env = env
	wd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if log, err := os.Create(filepath.Join(dir, "watchdog.log")); err == nil {
		wd.Stdout, wd.Stderr = log, log
	}
	if err := wd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "start watchdog:", err)
		return 1
	}
	defer func() {
		_ = wd.Process.Kill()
		_, _ = wd.Process.Wait()
	}()
	defer func() {
		down := exec.Command("bash", filepath.Join(here(), "stack-down.sh"))
		down.Env = env
		if out, err := down.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "stack-down: %v\n%s", err, out)
		}
		if os.Getenv("FENCED_KEEP_STACK") == "" {
			os.RemoveAll(dir)
		}
	}()

	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	up := exec.CommandContext(ctx, "bash", filepath.Join(here(), "stack-up.sh"))
	up.Env = env
	up.Dir = dir
	out, err := up.CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "integration/openstack: stack-up.sh failed: %v\n%s\n", err, out)
		for _, l := range []string{"rabbit-stdout.log", "nova-api-uwsgi.log", "keystone-uwsgi.log"} {
			if b, err := os.ReadFile(filepath.Join(base, "log", l)); err == nil && len(b) > 0 {
				if len(b) > 3000 {
					b = b[len(b)-3000:]
				}
				fmt.Fprintf(os.Stderr, "--- %s (tail)\n%s\n", l, b)
			}
		}
		return 1
	}
	fmt.Printf("integration/openstack: Nova up in %.1fs (%s)\n", time.Since(start).Seconds(), base)
	if err := loadOpenrc(filepath.Join(base, "openrc")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	compCtl = os.Getenv("FENCED_CTL")
	imageID = os.Getenv("FENCED_IMAGE_ID")
	code := m.Run()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "stack logs: %s/log (removed unless FENCED_KEEP_STACK=1)\n", base)
	}
	return code
}

// loadOpenrc sets the "export K=V ..." lines stack-up.sh wrote.
func loadOpenrc(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		for _, kv := range strings.Fields(strings.TrimPrefix(sc.Text(), "export ")) {
			if k, v, ok := strings.Cut(kv, "="); ok {
				os.Setenv(k, v)
			}
		}
	}
	return sc.Err()
}
