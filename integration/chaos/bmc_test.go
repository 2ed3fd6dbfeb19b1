package chaos

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fencedhq/fenced/integration/internal/harness"
)

// bmcProc is `fenced lab bmc` with a system per host, its power changes
// read from its log as they are written (each line stamped with the time
// it arrived), and its run-time fault control.
type bmcProc struct {
	cmd   *exec.Cmd
	url   string
	admin string
	// onPower is told when a system's power settles after a reset the
	// simulator accepted (Off or On), powerDelay after the reset.
	onPower func(host, state string)

	mu     sync.Mutex
	lines  []logLine
	out    strings.Builder
	exited chan struct{}
}

type logLine struct {
	at   time.Time
	text string
}

// reset is one accepted reset ("reset SYSTEM TYPE").
type reset struct {
	at         time.Time
	host, kind string
}

func startBMC(bin string, systems []string) (*bmcProc, error) {
	port, err := harness.PickPort()
	if err != nil {
		return nil, err
	}
	aport, err := harness.PickPort()
	if err != nil {
		return nil, err
	}
	b := &bmcProc{url: fmt.Sprintf("http://127.0.0.1:%d", port), admin: fmt.Sprintf("http://127.0.0.1:%d", aport), exited: make(chan struct{})}
	b.cmd = exec.Command(bin, "lab", "bmc", "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--admin-listen", fmt.Sprintf("127.0.0.1:%d", aport),
		"--systems", strings.Join(systems, ","), "--power-delay", powerDelay.String())
	b.cmd.Env = append(os.Environ(), "FENCED_BMC_PASSWORD="+bmcPass)
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	r, w := io.Pipe()
	b.cmd.Stdout, b.cmd.Stderr = w, w
	if err := b.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = b.cmd.Wait(); w.Close(); close(b.exited) }()
	go b.read(r)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := b.faults(); err == nil {
			if _, err := b.power("cn1"); err == nil {
				return b, nil
			}
		}
		if time.Now().After(deadline) {
			b.stop()
			return nil, fmt.Errorf("fenced lab bmc not answering:\n%s", b.output())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (b *bmcProc) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		l := logLine{at: time.Now(), text: sc.Text()}
		b.mu.Lock()
		b.lines = append(b.lines, l)
		b.out.WriteString(l.text + "\n")
		cb := b.onPower
		b.mu.Unlock()
		if f := strings.Fields(l.text); cb != nil && len(f) == 3 && f[0] == "reset" {
			state := ""
			switch f[2] {
			case "ForceOff", "GracefulShutdown":
				state = "Off"
			case "On", "ForceOn":
				state = "On"
			}
			if state != "" {
				host := f[1]
				time.AfterFunc(powerDelay, func() { cb(host, state) })
			}
		}
	}
}

func (b *bmcProc) output() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.out.String()
}

// resets are the accepted resets since t (every host when host is "").
func (b *bmcProc) resets(host string, since time.Time) []reset {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []reset
	for _, l := range b.lines {
		f := strings.Fields(l.text)
		if len(f) == 3 && f[0] == "reset" && (host == "" || f[1] == host) && !l.at.Before(since) {
			out = append(out, reset{at: l.at, host: f[1], kind: f[2]})
		}
	}
	return out
}

// isOff says whether a reset type takes the power away.
func isOff(kind string) bool {
	switch kind {
	case "ForceOff", "GracefulShutdown", "PowerCycle", "ForceRestart", "GracefulRestart":
		return true
	}
	return false
}

func (b *bmcProc) stop() {
	_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGINT)
	select {
	case <-b.exited:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
		<-b.exited
	}
}

func (b *bmcProc) do(method, url, body string, basic bool) (*http.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	if basic {
		req.SetBasicAuth(bmcUser, bmcPass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	b2, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("%s %s: %s %s", method, url, resp.Status, strings.TrimSpace(string(b2)))
	}
	resp.Body = io.NopCloser(strings.NewReader(string(b2)))
	return resp, nil
}

// power reads a system's PowerState.
func (b *bmcProc) power(system string) (string, error) {
	resp, err := b.do("GET", b.url+"/redfish/v1/Systems/"+system, "", true)
	if err != nil {
		return "", err
	}
	var v struct{ PowerState string }
	err = json.NewDecoder(resp.Body).Decode(&v)
	return v.PowerState, err
}

// setFault replaces a system's faults at run time ("" clears them).
func (b *bmcProc) setFault(system, faults string) error {
	if faults == "" {
		_, err := b.do("DELETE", b.admin+"/faults/"+system, "", false)
		return err
	}
	_, err := b.do("PUT", b.admin+"/faults/"+system, faults, false)
	return err
}

func (b *bmcProc) faults() (map[string]string, error) {
	resp, err := b.do("GET", b.admin+"/faults", "", false)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	return out, json.NewDecoder(resp.Body).Decode(&out)
}
