package detection

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fencedhq/fenced/integration/internal/harness"
	"github.com/fencedhq/fenced/integration/internal/stack"
)

// The world every test of the package shares.
var (
	computes  = []string{"cn1", "cn2", "cn3"}
	st        *stack.Stack
	bmc       *bmcProc
	fencedBin string
	trials    = 1     // FENCED_DETECTION_TRIALS
	long      = false // FENCED_DETECTION_TRIALS is set: make detection (Masakari runs too)

	masakariOnce sync.Once
	masakari     *stack.Masakari
	masakariErr  error
)

const (
	bmcUser     = "admin"
	bmcPassword = "detection-bmc-secret"
	tick        = 2 * time.Second
)

// Nova's report_interval and service_down_time in this stack: Nova's
// defaults (10 s, 60 s) in make detection, whose figures docs/detection.md
// shows; half of each in the short variant (5 s, 30 s: the same 1:6 ratio),
// which halves the waits for Nova's `down`. fenced's replica
// is told the same report_interval (its hard-failure rule counts in it).
var (
	reportInterval  = 5 * time.Second
	serviceDownTime = 30 * time.Second
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if v := os.Getenv("FENCED_DETECTION_TRIALS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "integration/detection: FENCED_DETECTION_TRIALS=%q: want a positive number\n", v)
			return 2
		}
		trials, long = n, true
		reportInterval, serviceDownTime = 10*time.Second, 60*time.Second // Nova's defaults
	}
	start := time.Now()
	if b := os.Getenv("FENCED_DETECTION_BIN"); b != "" {
		fencedBin = b
	} else {
		b, err := harness.Build()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fencedBin = b
	}
	var err error
	st, err = stack.Up(stack.Options{Name: "integration/detection", Computes: computes, Libvirtd: true,
		ReportInterval: reportInterval, ServiceDownTime: serviceDownTime})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer st.Down()
	bmc, err = startBMC(fencedBin, st.Ctl)
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration/detection:", err)
		return 1
	}
	defer bmc.stop()
	fmt.Printf("integration/detection: world up in %.1fs (Nova stack %.1fs, report_interval %s, service_down_time %s; BMC %s); %d trial(s) per scenario\n",
		time.Since(start).Seconds(), st.UpTime.Seconds(), reportInterval, serviceDownTime, bmc.url, trials)
	code := m.Run()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "stack logs: %s/log (removed unless FENCED_KEEP_STACK=1)\n--- fenced lab bmc output (tail)\n%s\n",
			st.Base, tail(bmc.proc.Output(), 3000))
	}
	fmt.Printf("integration/detection: %.1fs in all\n", time.Since(start).Seconds())
	return code
}

// startMasakari brings Masakari up once, on first use.
func startMasakari(t *testing.T) *stack.Masakari {
	t.Helper()
	masakariOnce.Do(func() { masakari, masakariErr = st.StartMasakari() })
	if masakariErr != nil {
		t.Fatal(masakariErr)
	}
	return masakari
}

// bmcProc is `fenced lab bmc` with the computes as systems and their power
// bound to compute-ctl (Off kills nova-compute and libvirtd, On starts them).
type bmcProc struct {
	proc *harness.Proc
	url  string
}

func startBMC(bin, ctl string) (*bmcProc, error) {
	port, err := harness.PickPort()
	if err != nil {
		return nil, err
	}
	// --power-delay is the simulator's default (2 s)
	p, err := harness.Spawn([]string{"FENCED_BMC_PASSWORD=" + bmcPassword}, bin, "lab", "bmc",
		"--listen", fmt.Sprintf("127.0.0.1:%d", port), "--systems", strings.Join(computes, ","),
		"--power-hook", ctl+" power")
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

func (b *bmcProc) reset(system, resetType string) error {
	resp, err := b.do("POST", "/redfish/v1/Systems/"+system+"/Actions/ComputerSystem.Reset", `{"ResetType":"`+resetType+`"}`)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// mark is a position in the simulator's log.
func (b *bmcProc) mark() int { return len(b.proc.Output()) }

// resets are the reset types the simulator accepted for system since mark.
func (b *bmcProc) resets(system string, mark int) []string {
	var out []string
	for _, line := range strings.Split(b.proc.Output()[mark:], "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "reset" && f[1] == system {
			out = append(out, f[2])
		}
	}
	return out
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
