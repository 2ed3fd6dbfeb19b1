package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Libvirtd is a running libvirtd.
type Libvirtd struct {
	PID int
	URI string
}

// StartLibvirtd runs libvirtd with every connection driver but qemu (which
// needs the libvirt-qemu user of libvirt-daemon-system), TCP on a free
// loopback port without auth; the test driver inside it serves test:///default.
func StartLibvirtd(t testing.TB) Libvirtd {
	t.Helper()
	bin, err := exec.LookPath("libvirtd")
	if err != nil {
		if _, err2 := os.Stat("/usr/sbin/libvirtd"); err2 != nil {
			t.Fatal("libvirtd not found: install Debian's libvirt-daemon (make deps does)")
		}
		bin = "/usr/sbin/libvirtd"
	}
	dir, err := os.MkdirTemp("", "fenced-lv-") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	drivers := filepath.Join(dir, "drivers")
	sock := filepath.Join(dir, "sock")
	for _, d := range []string{drivers, sock} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	matches, _ := filepath.Glob("/usr/lib/*/libvirt/connection-driver/*.so")
	for _, m := range matches {
		if !strings.Contains(filepath.Base(m), "qemu") {
			_ = os.Symlink(m, filepath.Join(drivers, filepath.Base(m)))
		}
	}
	port := FreePort(t)
	conf := filepath.Join(dir, "libvirtd.conf")
	err = os.WriteFile(conf, []byte(fmt.Sprintf(`unix_sock_dir = %q
unix_sock_ro_perms = "0777"
unix_sock_rw_perms = "0770"
auth_unix_rw = "none"
auth_unix_ro = "none"
listen_tls = 0
listen_tcp = 1
listen_addr = "127.0.0.1"
tcp_port = "%d"
auth_tcp = "none"
log_level = 3
log_outputs = "3:file:%s"
`, sock, port, filepath.Join(dir, "libvirtd.log"))), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(dir, "libvirtd.pid")
	cmd := exec.Command(bin, "--listen", "-f", conf, "-p", pidFile)
	cmd.Env = append(os.Environ(), "LIBVIRT_DRIVER_DIR="+drivers)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start libvirtd: %v", err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(cmd.Process.Pid, syscall.SIGCONT)
		_ = syscall.Kill(cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
	uri := fmt.Sprintf("test+tcp://127.0.0.1:%d/default", port)
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, err := exec.Command("virsh", "-c", uri, "list", "--all").CombinedOutput()
		if err == nil && strings.Contains(string(out), "test") {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "libvirtd.log"))
			t.Fatalf("libvirtd not answering at %s: %v %s\nlog:\n%s", uri, err, out, log)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return Libvirtd{PID: cmd.Process.Pid, URI: uri}
}

// CgroupV1 returns the cgroup v1 cpu controller's mount, if writable.
func CgroupV1() string {
	for _, d := range []string{"/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"} {
		if _, err := os.Stat(filepath.Join(d, "cpu.cfs_quota_us")); err == nil {
			return d
		}
	}
	return ""
}

// CPUQuota puts every thread of pid in a cgroup limited to quota µs per period µs.
func CPUQuota(t testing.TB, pid int, quota, period int) func() {
	t.Helper()
	root := CgroupV1()
	if root == "" {
		t.Fatal("no cgroup v1 cpu controller here (cgroup v2 has no cpu controller on this machine either): cannot starve libvirtd")
	}
	cg := filepath.Join(root, fmt.Sprintf("fenced-test-%d-%d", os.Getpid(), pid))
	if err := os.MkdirAll(cg, 0o755); err != nil {
		t.Fatalf("create cgroup: %v", err)
	}
	write := func(f, v string) {
		if err := os.WriteFile(filepath.Join(cg, f), []byte(v), 0o644); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	write("cpu.cfs_period_us", strconv.Itoa(period))
	write("cpu.cfs_quota_us", strconv.Itoa(quota))
	write("cgroup.procs", strconv.Itoa(pid))
	return func() {
		_ = os.WriteFile(filepath.Join(root, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644)
		for i := 0; i < 20; i++ {
			if os.Remove(cg) == nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}
