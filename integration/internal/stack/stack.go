// Package stack brings up a real OpenStack control plane from Debian's
// packages for the integration tests (stack-up.sh: PostgreSQL, RabbitMQ,
// keystone, placement, glance, nova-api, conductor, scheduler, one
// fake-driver nova-compute per host, optionally a libvirtd per compute, a
// neutron stand-in) on free loopback ports, and stops it by PID
// (stack-down.sh). A watchdog (stack-down.sh --after <pid>) stops it if the
// test binary dies without cleaning up.
//
// Each test package that needs Nova brings up its own stack once, from
// TestMain:
//
//	func TestMain(m *testing.M) {
//		os.Exit(stack.Main(m, stack.Options{Name: "integration/openstack"}, func(s *stack.Stack) { st = s }))
//	}
package stack

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

// Options of a stack. Zero values take the defaults.
type Options struct {
	Name            string        // what messages start with, e.g. "integration/openstack"
	Computes        []string      // nova-compute hosts; default cn1, cn2
	ReportInterval  time.Duration // Nova's report_interval; default 5 s
	ServiceDownTime time.Duration // Nova's service_down_time; default 20 s
	Libvirtd        bool          // a libvirtd (test driver, unix socket) per compute, started and stopped with it
	Timeout         time.Duration // bring-up; default 8 min
}

// Stack is a running stack.
type Stack struct {
	Opts    Options
	Dir     string        // temporary directory holding the stack (removed by Down unless FENCED_KEEP_STACK is set)
	Base    string        // the stack's directory: bin, etc, log, run
	Ctl     string        // bin/compute-ctl
	ImageID string        // the glance image "tiny"
	Flavor  string        // the flavor id of m1.tiny
	OpenRC  []string      // OS_*=… of the admin user (also set in this process by Up)
	UpTime  time.Duration // how long the bring-up took
	env     []string      // the scripts' environment (BASE, ports, options)
	wd      *exec.Cmd
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

func here() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
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

func (o *Options) defaults() {
	if o.Name == "" {
		o.Name = "stack"
	}
	if len(o.Computes) == 0 {
		o.Computes = []string{"cn1", "cn2"}
	}
	if o.ReportInterval == 0 {
		o.ReportInterval = 5 * time.Second
	}
	if o.ServiceDownTime == 0 {
		o.ServiceDownTime = 20 * time.Second
	}
	if o.Timeout == 0 {
		o.Timeout = 8 * time.Minute
	}
}

// Up brings a stack up. On error everything it started is stopped again.
// It sets the OS_* variables of the admin user in this process, so
// gophercloud, the openstack CLI and child processes find the cloud.
func Up(o Options) (*Stack, error) {
	o.defaults()
	for f, pkg := range prerequisites {
		if _, err := os.Stat(f); err != nil {
			return nil, fmt.Errorf("%s: %s is missing: install Debian package %s (integration/deps/openstack.txt)", o.Name, f, pkg)
		}
	}
	if o.Libvirtd {
		if _, err := os.Stat("/usr/sbin/libvirtd"); err != nil {
			return nil, fmt.Errorf("%s: /usr/sbin/libvirtd is missing: install Debian package libvirt-daemon (integration/deps/libvirt.txt)", o.Name)
		}
	}
	secs := func(d time.Duration) string { return strconv.Itoa(int(d.Round(time.Second) / time.Second)) }
	if o.ReportInterval < time.Second || o.ServiceDownTime <= o.ReportInterval {
		return nil, fmt.Errorf("%s: report_interval %s, service_down_time %s: want whole seconds, down time above the interval", o.Name, o.ReportInterval, o.ServiceDownTime)
	}
	dir, err := os.MkdirTemp("", "fenced-nova-")
	if err != nil {
		return nil, err
	}
	// postgres runs as user postgres and must reach its data directory
	if err := os.Chmod(dir, 0o755); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s := &Stack{Opts: o, Dir: dir, Base: filepath.Join(dir, "stack"), Flavor: "1"}
	ports, err := freePorts(9)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s.env = append(os.Environ(), "BASE="+s.Base, "COMPUTES="+strings.Join(o.Computes, " "),
		"REPORT_INTERVAL="+secs(o.ReportInterval), "SERVICE_DOWN_TIME="+secs(o.ServiceDownTime))
	if o.Libvirtd {
		s.env = append(s.env, "LIBVIRTD=1")
	}
	for i, k := range []string{"PORT_PG", "PORT_AMQP", "PORT_DIST", "PORT_EPMD", "PORT_KEYSTONE", "PORT_PLACEMENT", "PORT_GLANCE", "PORT_NEUTRON", "PORT_NOVA"} {
		s.env = append(s.env, k+"="+strconv.Itoa(ports[i]))
	}

	// Watchdog: stops the stack if this process dies without cleaning up.
	s.wd = exec.Command("bash", filepath.Join(here(), "stack-down.sh"), "--after", strconv.Itoa(os.Getpid()))
	s.wd.Env = s.env
	s.wd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if log, err := os.Create(filepath.Join(dir, "watchdog.log")); err == nil {
		s.wd.Stdout, s.wd.Stderr = log, log
	}
	if err := s.wd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start watchdog: %w", err)
	}

	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), o.Timeout)
	defer cancel()
	up := exec.CommandContext(ctx, "bash", filepath.Join(here(), "stack-up.sh"))
	up.Env = s.env
	up.Dir = dir
	out, err := up.CombinedOutput()
	if err != nil {
		var b strings.Builder
		fmt.Fprintf(&b, "%s: stack-up.sh failed after %.1fs: %v\n%s\n", o.Name, time.Since(start).Seconds(), err, out)
		logs := []string{"rabbit-stdout.log", "nova-api-uwsgi.log", "keystone-uwsgi.log"}
		for _, h := range o.Computes {
			logs = append(logs, "nova-compute-"+h+".log", "libvirtd-"+h+".stdout")
		}
		for _, l := range logs {
			if b2, err := os.ReadFile(filepath.Join(s.Base, "log", l)); err == nil && len(b2) > 0 {
				if len(b2) > 3000 {
					b2 = b2[len(b2)-3000:]
				}
				fmt.Fprintf(&b, "--- %s (tail)\n%s\n", l, b2)
			}
		}
		s.Down()
		return nil, fmt.Errorf("%s", b.String())
	}
	s.UpTime = time.Since(start)
	fmt.Printf("%s: Nova up in %.1fs with computes %s%s (%s)\n", o.Name, s.UpTime.Seconds(), strings.Join(o.Computes, " "),
		map[bool]string{true: ", a libvirtd each", false: ""}[o.Libvirtd], s.Base)
	vars, err := readOpenrc(filepath.Join(s.Base, "openrc"))
	if err != nil {
		s.Down()
		return nil, err
	}
	for _, kv := range vars {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "FENCED_CTL":
			s.Ctl = v
		case "FENCED_IMAGE_ID":
			s.ImageID = v
		default:
			s.OpenRC = append(s.OpenRC, kv)
		}
		os.Setenv(k, v)
	}
	if s.Ctl == "" || s.ImageID == "" {
		s.Down()
		return nil, fmt.Errorf("%s: openrc without FENCED_CTL or FENCED_IMAGE_ID", o.Name)
	}
	return s, nil
}

// Down stops the stack and the watchdog and removes its directory, unless
// FENCED_KEEP_STACK is set.
func (s *Stack) Down() {
	down := exec.Command("bash", filepath.Join(here(), "stack-down.sh"))
	down.Env = s.env
	if out, err := down.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "stack-down: %v\n%s", err, out)
	}
	if s.wd != nil && s.wd.Process != nil {
		_ = s.wd.Process.Kill()
		_, _ = s.wd.Process.Wait()
	}
	if os.Getenv("FENCED_KEEP_STACK") == "" {
		os.RemoveAll(s.Dir)
	}
}

// Main brings a stack up, hands it to use, runs the tests and brings the
// stack down; the exit code is for os.Exit.
func Main(m *testing.M, o Options, use func(*Stack)) int {
	s, err := Up(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer s.Down()
	if use != nil {
		use(s)
	}
	code := m.Run()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "stack logs: %s/log (removed unless FENCED_KEEP_STACK=1)\n", s.Base)
	}
	return code
}

// readOpenrc reads the "export K=V ..." lines stack-up.sh wrote.
func readOpenrc(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		for _, kv := range strings.Fields(strings.TrimPrefix(sc.Text(), "export ")) {
			if strings.Contains(kv, "=") {
				out = append(out, kv)
			}
		}
	}
	return out, sc.Err()
}

// Compute runs compute-ctl ACTION HOST [ARGS…]: start, stop, kill, freeze,
// thaw, status, power HOST On|Off.
func (s *Stack) Compute(action, host string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, s.Ctl, append([]string{action, host}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("compute-ctl %s %s: %v: %s", action, host, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Freeze stops nova-compute and libvirtd of host with SIGSTOP.
func (s *Stack) Freeze(host string) error { _, err := s.Compute("freeze", host); return err }

// Thaw resumes them with SIGCONT.
func (s *Stack) Thaw(host string) error { _, err := s.Compute("thaw", host); return err }

// Kill sends SIGKILL to both and waits until they are gone.
func (s *Stack) Kill(host string) error { _, err := s.Compute("kill", host); return err }

// Start starts what of host is not running: libvirtd (until it answers),
// then nova-compute.
func (s *Stack) Start(host string) error { _, err := s.Compute("start", host); return err }

// Proc is one process of a compute.
type Proc struct {
	PID   int
	State string // running, stopped (SIGSTOP), dead
}

// Status reads the processes of a compute: "nova-compute" and, with
// Libvirtd, "libvirtd".
func (s *Stack) Status(host string) (map[string]Proc, error) {
	out, err := s.Compute("status", host)
	if err != nil {
		return nil, err
	}
	st := map[string]Proc{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		switch len(f) {
		case 3:
			pid, _ := strconv.Atoi(f[1])
			st[f[0]] = Proc{PID: pid, State: f[2]}
		case 2: // never started: no PID
			st[f[0]] = Proc{State: f[1]}
		}
	}
	return st, nil
}

// LibvirtURI is the URI of host's libvirtd (Libvirtd stacks only), for
// virsh and libvirt.org/go/libvirt.
func (s *Stack) LibvirtURI(host string) string {
	return "test+unix:///default?socket=" + filepath.Join(s.Base, "lv", host, "sock", "libvirt-sock")
}

// Log is the path of one of the stack's log files (nova-compute-cn1.log, …).
func (s *Stack) Log(name string) string { return filepath.Join(s.Base, "log", name) }

// Masakari is Masakari (masakari-api, masakari-engine) running beside a stack.
type Masakari struct {
	URL     string        // the API, http://127.0.0.1:PORT (its routes: /v1/{project_id}/…)
	Segment string        // the uuid of segment seg1 (recovery_method auto) holding every compute
	UpTime  time.Duration // how long StartMasakari took
}

// MasakariPackages are the Debian packages StartMasakari needs
// (integration/deps/detection.txt).
const MasakariPackages = "masakari-api masakari-engine"

// StartMasakari brings Masakari up beside the stack (masakari-up.sh): its
// database in the stack's PostgreSQL, RabbitMQ and keystone, every wait and
// interval at Masakari's defaults, one segment with every compute. Down
// stops it with the rest.
func (s *Stack) StartMasakari() (*Masakari, error) {
	if _, err := os.Stat("/usr/bin/masakari-manage"); err != nil {
		return nil, fmt.Errorf("%s: masakari is not installed: install Debian packages %s (integration/deps/detection.txt)", s.Opts.Name, MasakariPackages)
	}
	ports, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(here(), "masakari-up.sh"))
	cmd.Env = append(append([]string(nil), s.env...), "PORT_MASAKARI="+strconv.Itoa(ports[0]))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("%s: masakari-up.sh failed after %.1fs: %v\n%s", s.Opts.Name, time.Since(start).Seconds(), err, out)
	}
	m := &Masakari{URL: fmt.Sprintf("http://127.0.0.1:%d", ports[0]), UpTime: time.Since(start)}
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "MASAKARI_SEGMENT="); ok {
			m.Segment = strings.TrimSpace(v)
		}
	}
	if m.Segment == "" {
		return nil, fmt.Errorf("%s: masakari-up.sh printed no segment:\n%s", s.Opts.Name, out)
	}
	fmt.Printf("%s: Masakari up in %.1fs (%s, segment %s)\n", s.Opts.Name, m.UpTime.Seconds(), m.URL, m.Segment)
	return m, nil
}
