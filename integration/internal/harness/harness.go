// Package harness starts the real programs integration tests drive: the
// fenced binary built from this tree, on free loopback ports, stopped by PID
// when the test ends.
package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Root is the repository root.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", ".."))
}

// Fenced builds bin/fenced once per test binary and returns its path.
func Fenced(t testing.TB) string {
	t.Helper()
	bin, err := Build()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// Build is Fenced without a test (for TestMain).
func Build() (string, error) {
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "fenced-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "fenced")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/fenced")
		cmd.Dir = Root()
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	return binPath, buildErr
}

// FreePort returns a free TCP port on 127.0.0.1.
func FreePort(t testing.TB) int {
	t.Helper()
	p, err := PickPort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// PickPort returns a free TCP port on 127.0.0.1 (FreePort without a test).
func PickPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Proc is a started process with its output captured.
type Proc struct {
	Cmd *exec.Cmd
	Out *bytes.Buffer
	mu  sync.Mutex
}

type lockedWriter struct {
	p *Proc
}

func (w lockedWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.Out.Write(b)
}

// Output returns what the process printed so far.
func (p *Proc) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.Out.String()
}

// Start runs a program and stops it (SIGINT, then SIGKILL) when the test ends.
func Start(t testing.TB, name string, args ...string) *Proc {
	t.Helper()
	return StartEnv(t, nil, name, args...)
}

// StartEnv is Start with K=V entries added to the environment.
func StartEnv(t testing.TB, env []string, name string, args ...string) *Proc {
	t.Helper()
	p, err := Spawn(env, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(name), p.Output())
		}
	})
	return p
}

// Spawn runs a program in a process group of its own, with K=V entries added
// to the environment, without a test to stop it: for TestMain, which calls
// Stop.
func Spawn(env []string, name string, args ...string) (*Proc, error) {
	p := &Proc{Out: &bytes.Buffer{}}
	p.Cmd = exec.Command(name, args...)
	if len(env) > 0 {
		p.Cmd.Env = append(os.Environ(), env...)
	}
	p.Cmd.Stdout, p.Cmd.Stderr = lockedWriter{p}, lockedWriter{p}
	p.Cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.Cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %v", name, err)
	}
	return p, nil
}

// Stop sends SIGINT to the process group, then SIGKILL after 10 s, and waits.
// A process already killed and waited for is left alone.
func (p *Proc) Stop() {
	if p.Cmd.ProcessState != nil {
		return
	}
	_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGCONT) // a stopped process cannot act on SIGINT
	_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGINT)
	done := make(chan struct{})
	go func() { _ = p.Cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// Kill sends SIGKILL to the process group and waits.
func (p *Proc) Kill() {
	if p.Cmd.ProcessState != nil {
		return
	}
	_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
	_ = p.Cmd.Wait()
}

// WaitHTTP polls url until it answers 200 or the timeout passes.
func WaitHTTP(t testing.TB, url string, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s did not answer within %s: %v", url, timeout, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Host is a row of GET /api/v1/hosts.
type Host struct {
	Host       string `json:"host"`
	State      string `json:"state"`
	Incoherent bool   `json:"incoherent"`
}

// HostState reads a host's state from a fenced API.
func HostState(t testing.TB, base, host string) (Host, error) {
	t.Helper()
	resp, err := http.Get(base + "/api/v1/hosts")
	if err != nil {
		return Host{}, err
	}
	defer resp.Body.Close()
	var rep struct{ Hosts []Host }
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		return Host{}, err
	}
	for _, h := range rep.Hosts {
		if h.Host == host {
			return h, nil
		}
	}
	return Host{}, fmt.Errorf("host %s not in the API", host)
}

// WaitState polls until host is in one of the states.
func WaitState(t testing.TB, base, host string, timeout time.Duration, states ...string) Host {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last Host
	for time.Now().Before(deadline) {
		h, err := HostState(t, base, host)
		if err == nil {
			last = h
			for _, s := range states {
				if h.State == s {
					return h
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s did not reach %v within %s (last %+v)", host, states, timeout, last)
	return last
}

// DevArgs are the flags of a fast `fenced run --dev` for tests: the lab clock
// runs 30× faster, so a minute of playbook takes two seconds.
func DevArgs(port int) []string {
	return []string{"run", "--dev", "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--speed", "30",
		"--starve-after", "30s", "--hosts", "12", "--log-json"}
}
