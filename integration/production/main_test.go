package production

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fencedhq/fenced/integration/internal/harness"
	"github.com/fencedhq/fenced/integration/internal/stack"
)

// The world every test of the package shares.
var (
	computes  = []string{"cn1", "cn2", "cn3"}
	st        *stack.Stack
	etcd      *harness.EtcdCluster
	bmc       *bmcProc
	fencedBin string
)

const (
	bmcUser       = "admin"
	bmcPassword   = "prod-bmc-secret"
	bmcPowerDelay = 3 * time.Second // wide enough to kill a leader between intent and outcome
	// Nova's heartbeat and down time in this stack (the defaults of stack.Options)
	reportInterval  = 5 * time.Second
	serviceDownTime = 20 * time.Second
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	start := time.Now()
	bin, err := harness.Build()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fencedBin = bin
	dir, err := os.MkdirTemp("", "fenced-prod-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)

	// etcd first: cheap, and it fails fast when etcd-server is missing
	etcd, err = harness.NewEtcdCluster(filepath.Join(dir, "etcd"), harness.EtcdOptions{Token: "fenced-prod", HeartbeatMS: 200, ElectionMS: 2000})
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration/production:", err)
		return 1
	}
	defer etcd.Stop()

	st, err = stack.Up(stack.Options{Name: "integration/production", Computes: computes, Libvirtd: true,
		ReportInterval: reportInterval, ServiceDownTime: serviceDownTime})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer st.Down()

	bmc, err = startBMC(bin, st.Ctl)
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration/production:", err)
		return 1
	}
	defer bmc.stop()
	fmt.Printf("integration/production: world up in %.1fs (Nova stack %.1fs; etcd %v; BMC %s)\n",
		time.Since(start).Seconds(), st.UpTime.Seconds(), etcd.Endpoints(), bmc.url)

	code := m.Run()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "stack logs: %s/log (removed unless FENCED_KEEP_STACK=1)\n--- fenced lab bmc output (tail)\n%s\n",
			st.Base, tail(bmc.proc.Output(), 4000))
	}
	return code
}

// bmcProc is `fenced lab bmc` with the three computes as systems and their
// power bound to compute-ctl.
type bmcProc struct {
	proc *harness.Proc
	url  string
}

func startBMC(bin, ctl string) (*bmcProc, error) {
	port, err := harness.PickPort()
	if err != nil {
		return nil, err
	}
	p, err := harness.Spawn([]string{"FENCED_BMC_PASSWORD=" + bmcPassword}, bin, "lab", "bmc",
		"--listen", fmt.Sprintf("127.0.0.1:%d", port), "--systems", strings.Join(computes, ","),
		"--power-delay", bmcPowerDelay.String(), "--power-hook", ctl+" power")
	if err != nil {
		return nil, err
	}
	b := &bmcProc{proc: p, url: fmt.Sprintf("http://127.0.0.1:%d", port)}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := b.power("cn1"); err == nil {
			return b, nil
		} else if time.Now().After(deadline) {
			b.stop()
			return nil, fmt.Errorf("fenced lab bmc not answering: %v\n%s", err, p.Output())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (b *bmcProc) stop() { b.proc.Stop() }

func (b *bmcProc) do(method, path, body string) (*http.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, b.url+path, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth(bmcUser, bmcPassword)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		resp.Body.Close()
		return nil, fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	return resp, nil
}

// power reads a system's PowerState (On, Off, PoweringOn, PoweringOff).
func (b *bmcProc) power(system string) (string, error) {
	resp, err := b.do("GET", "/redfish/v1/Systems/"+system, "")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var v struct{ PowerState string }
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return "", err
	}
	return v.PowerState, nil
}

// reset posts ComputerSystem.Reset (On, ForceOff, PowerCycle, …).
func (b *bmcProc) reset(system, resetType string) error {
	resp, err := b.do("POST", "/redfish/v1/Systems/"+system+"/Actions/ComputerSystem.Reset", `{"ResetType":"`+resetType+`"}`)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// mark is a position in the simulator's log; resets and hook runs are
// counted from one.
func (b *bmcProc) mark() int { return len(b.proc.Output()) }

// resets are the reset types the simulator accepted for system since mark,
// in order (from its "reset SYSTEM TYPE" log lines).
func (b *bmcProc) resets(system string, mark int) []string {
	var out []string
	for _, line := range strings.Split(b.proc.Output()[mark:], "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "reset" && f[1] == system {
			out = append(out, f[2])
		}
	}
	return out
}

// hookRuns are the simulator's "power-hook SYSTEM STATE: …" log lines since mark.
func (b *bmcProc) hookRuns(mark int) []string {
	var out []string
	for _, line := range strings.Split(b.proc.Output()[mark:], "\n") {
		if strings.HasPrefix(line, "power-hook ") {
			out = append(out, line)
		}
	}
	return out
}

// powerOffs counts the resets that take the power away.
func powerOffs(resets []string) int {
	n := 0
	for _, r := range resets {
		switch r {
		case "ForceOff", "GracefulShutdown", "PowerCycle", "ForceRestart", "GracefulRestart":
			n++
		}
	}
	return n
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
