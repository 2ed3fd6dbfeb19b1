package redfish

// fence_redfish, the Redfish agent of Debian's fence-agents (the one
// Pacemaker clusters use), against `fenced lab bmc`: its status, off, on and
// reboot actions, each read back from the simulator, and one verified power
// cycle timed beside fenced's gofish fencer on the same simulator.

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/fencedhq/fenced/integration/internal/harness"
	"github.com/fencedhq/fenced/pkg/fencing/redfish"
)

const agentName = "fence_redfish"

// bmc is one `fenced lab bmc --tls` process: fence_redfish speaks HTTPS only.
type bmc struct {
	proc *harness.Proc
	port int
	http *http.Client
}

func startBMC(t *testing.T, args ...string) *bmc {
	t.Helper()
	if _, err := exec.LookPath(agentName); err != nil {
		t.Fatal("fence_redfish not found: install Debian's fence-agents (make deps does)")
	}
	port := harness.FreePort(t)
	args = append([]string{"lab", "bmc", "--tls", "--listen", fmt.Sprintf("127.0.0.1:%d", port)}, args...)
	b := &bmc{port: port, http: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}} //nolint:gosec // the simulator's self-signed certificate
	b.proc = harness.StartEnv(t, []string{"FENCED_BMC_PASSWORD=pw"}, harness.Fenced(t), args...)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := b.readPower("lab-001"); err == nil {
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("fenced lab bmc never answered on port %d", port)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// readPower reads a system's PowerState from the simulator.
func (b *bmc) readPower(system string) (string, error) {
	req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("https://127.0.0.1:%d/redfish/v1/Systems/%s", b.port, system), nil)
	if err != nil {
		return "", err
	}
	req.SetBasicAuth("admin", "pw")
	resp, err := b.http.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var v struct{ PowerState string }
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || resp.StatusCode != 200 || v.PowerState == "" {
		return "", fmt.Errorf("GET %s: HTTP %d, PowerState %q, %v", req.URL, resp.StatusCode, v.PowerState, err)
	}
	return v.PowerState, nil
}

func (b *bmc) power(t *testing.T, system string) string {
	t.Helper()
	p, err := b.readPower(system)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// waitPower polls the simulator every 20 ms until the system reads want.
func (b *bmc) waitPower(t *testing.T, system, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for b.power(t, system) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s: power %s after %s, want %s", system, b.power(t, system), timeout, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// resets lists the reset types the simulator accepted for a system, from its
// "reset SYSTEM TYPE" log lines.
func (b *bmc) resets(system string) []string {
	var r []string
	for _, line := range strings.Split(b.proc.Output(), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "reset" && f[1] == system {
			r = append(r, f[2])
		}
	}
	return r
}

type agentRun struct {
	out  string
	rc   int
	took time.Duration
}

// agent runs fence_redfish the way Pacemaker's fencer does, with its options
// as key=value lines on stdin (the password never on a command line). An
// empty system leaves systems_uri out: the agent then picks a system itself.
func (b *bmc) agent(t *testing.T, system, action string, extra ...string) agentRun {
	t.Helper()
	opts := []string{"ip=127.0.0.1", "ipport=" + strconv.Itoa(b.port), "username=admin", "password=pw", "ssl_insecure=1", "action=" + action}
	if system != "" {
		opts = append(opts, "systems_uri=/redfish/v1/Systems/"+system)
	}
	cmd := exec.CommandContext(t.Context(), agentName)
	cmd.Stdin = strings.NewReader(strings.Join(append(opts, extra...), "\n") + "\n")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	r := agentRun{out: string(out), took: time.Since(start)}
	if ee, ok := err.(*exec.ExitError); ok {
		r.rc = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("fence_redfish: %v", err)
	}
	return r
}

func (r agentRun) want(t *testing.T, what string, rc int, says string) {
	t.Helper()
	if r.rc != rc || !strings.Contains(r.out, says) {
		t.Fatalf("fence_redfish %s: rc %d, want %d with %q\n%s", what, r.rc, rc, says, r.out)
	}
}

// TestFenceRedfishAgainstTheSimulator checks fence_redfish's actions against
// `fenced lab bmc`, each read back from the simulator: status, off (the
// agent waits for Off), on, reboot (ForceOff, Off read back, On), and what
// the agent does with a reset accepted but never carried out, a wrong
// password and no systems_uri.
func TestFenceRedfishAgainstTheSimulator(t *testing.T) {
	const delay = 500 * time.Millisecond
	b := startBMC(t, "--systems", "3", "--power-delay", delay.String(), "--fault", "lab-002:never-off")

	b.agent(t, "lab-001", "status").want(t, "status", 0, "Status: ON")

	r := b.agent(t, "lab-001", "off")
	r.want(t, "off", 0, "Success: Powered OFF")
	if p := b.power(t, "lab-001"); p != "Off" {
		t.Fatalf("after fence_redfish off the simulator reads %s, want Off", p)
	}
	if r.took < delay {
		t.Fatalf("off returned in %s, before the power could change (%s): it did not wait for Off", r.took, delay)
	}
	b.agent(t, "lab-001", "status").want(t, "status of an Off host", 2, "Status: OFF")
	b.agent(t, "lab-001", "off").want(t, "off when already off", 0, "Success: Already OFF")
	if r := b.resets("lab-001"); !slices.Equal(r, []string{"ForceOff"}) {
		t.Fatalf("resets %v, want one ForceOff (none when already off)", r)
	}

	// on: fence_redfish takes every PowerState but "Off" for on, so it
	// returns while the simulator still reads PoweringOn
	b.agent(t, "lab-001", "on").want(t, "on", 0, "Success: Powered ON")
	if p := b.power(t, "lab-001"); p != "PoweringOn" && p != "On" {
		t.Fatalf("after fence_redfish on the simulator reads %s", p)
	}
	b.waitPower(t, "lab-001", "On", 5*time.Second)
	b.agent(t, "lab-001", "status").want(t, "status", 0, "Status: ON")

	// reboot: ForceOff, wait until Off reads back, then On (not ForceRestart)
	r = b.agent(t, "lab-001", "reboot", "verbose=1")
	r.want(t, "reboot", 0, "Success: Rebooted")
	if !strings.Contains(r.out, "PowerState is: Off") || r.took < delay {
		t.Fatalf("reboot in %s never read Off back before powering on\n%s", r.took, r.out)
	}
	b.waitPower(t, "lab-001", "On", 5*time.Second)
	if r := b.resets("lab-001"); !slices.Equal(r, []string{"ForceOff", "On", "ForceOff", "On"}) {
		t.Fatalf("resets %v, want ForceOff On for off/on and again for reboot", r)
	}

	// a reset accepted but never carried out: off fails after power_timeout
	b.agent(t, "lab-002", "off", "power_timeout=2").want(t, "off on a BMC that never powers off", 1, "Timed out waiting to power OFF")
	if p := b.power(t, "lab-002"); p != "On" {
		t.Fatalf("never-off system reads %s", p)
	}

	// a wrong password: rc 1 and no reset
	r = b.agent(t, "lab-003", "off", "password=wrong")
	if r.rc != 1 || b.power(t, "lab-003") != "On" || len(b.resets("lab-003")) != 0 {
		t.Fatalf("wrong password: rc %d, power %s, resets %v\n%s", r.rc, b.power(t, "lab-003"), b.resets("lab-003"), r.out)
	}

	// without systems_uri the agent fences the last member of the Systems collection
	b.agent(t, "", "off").want(t, "off without systems_uri", 0, "Success: Powered OFF")
	if b.power(t, "lab-003") != "Off" || b.power(t, "lab-001") != "On" {
		t.Fatalf("without systems_uri: lab-003 %s (want Off), lab-001 %s (want On)", b.power(t, "lab-003"), b.power(t, "lab-001"))
	}
}

// TestPowerCycleFenceRedfishBesideFenced times one verified power cycle of
// the same system of one `fenced lab bmc` at its defaults (each power change
// takes 2 s) by fence_redfish's reboot action and by fenced's PowerCycle
// (off → verified Off → on → verified On), alternating which goes first. fenced
// runs at its defaults (polling every 2 s, a session login per trial) and
// again polling every 1 s, as fence_redfish does. The default run does one
// trial of each and checks them; FENCED_FENCE_REDFISH_TRIALS=5 with -v gives
// the table in docs/detection.md ("fence_redfish beside fenced's fencer").
func TestPowerCycleFenceRedfishBesideFenced(t *testing.T) {
	trials := 1
	if v := os.Getenv("FENCED_FENCE_REDFISH_TRIALS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("FENCED_FENCE_REDFISH_TRIALS=%q: want a positive count", v)
		}
		trials = n
	}
	const system, delay = "lab-001", 2 * time.Second // the simulator's default --power-delay
	b := startBMC(t, "--systems", "3")
	if !strings.Contains(b.proc.Output(), "power changes take 2s") {
		t.Fatalf("the simulator's default power delay is not 2 s:\n%s", b.proc.Output())
	}

	// fenceRedfish returns the time to its "Rebooted" and to the simulator's On
	fenceRedfish := func() (done, on time.Duration) {
		before := len(b.resets(system))
		start := time.Now()
		r := b.agent(t, system, "reboot", "verbose=1")
		done = time.Since(start)
		r.want(t, "reboot", 0, "Success: Rebooted")
		if !strings.Contains(r.out, "PowerState is: Off") || done < delay {
			t.Fatalf("reboot in %s never read Off back\n%s", done, r.out)
		}
		b.waitPower(t, system, "On", 10*time.Second)
		on = time.Since(start)
		if r := b.resets(system)[before:]; !slices.Equal(r, []string{"ForceOff", "On"}) {
			t.Fatalf("fence_redfish reboot sent %v, want ForceOff On", r)
		}
		return done, on
	}
	fenced := func(poll time.Duration) time.Duration {
		f, err := redfish.New(redfish.Config{Poll: poll, Log: zerolog.Nop(), Targets: map[string]redfish.Target{system: {
			Host: system, Endpoint: fmt.Sprintf("https://127.0.0.1:%d", b.port), SystemID: system,
			Username: "admin", Password: "pw", Insecure: true}}})
		if err != nil {
			t.Fatal(err)
		}
		before := len(b.resets(system))
		start := time.Now()
		err = f.PowerCycle(t.Context(), system)
		took := time.Since(start)
		if err != nil {
			t.Fatalf("PowerCycle: %v", err)
		}
		if p := b.power(t, system); p != "On" || took < 2*delay {
			t.Fatalf("PowerCycle returned after %s with the simulator at %s", took, p)
		}
		if r := b.resets(system)[before:]; !slices.Equal(r, []string{"ForceOff", "On"}) {
			t.Fatalf("PowerCycle sent %v, want ForceOff On", r)
		}
		return took
	}

	var frDone, frOn, fdDefault, fdOneSecond []time.Duration
	for i := 0; i < trials; i++ {
		runFR := func() {
			d, on := fenceRedfish()
			frDone, frOn = append(frDone, d), append(frOn, on)
		}
		runFenced := func() {
			fdDefault = append(fdDefault, fenced(0))
			fdOneSecond = append(fdOneSecond, fenced(time.Second))
		}
		if i%2 == 0 {
			runFR()
			runFenced()
		} else {
			runFenced()
			runFR()
		}
	}

	sec := func(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }
	var tb strings.Builder
	tb.WriteString("| trial | fence_redfish reboot → \"Rebooted\" | fence_redfish reboot → simulator reads On | fenced PowerCycle, poll 2 s (default) | fenced PowerCycle, poll 1 s |\n|---|---|---|---|---|\n")
	for i := range trials {
		fmt.Fprintf(&tb, "| %d | %s | %s | %s | %s |\n", i+1, sec(frDone[i]), sec(frOn[i]), sec(fdDefault[i]), sec(fdOneSecond[i]))
	}
	fmt.Fprintf(&tb, "| **median** | **%s** | **%s** | **%s** | **%s** |\n", sec(median(frDone)), sec(median(frOn)), sec(median(fdDefault)), sec(median(fdOneSecond)))
	fmt.Fprintf(&tb, "\nratio fenced/fence_redfish (medians): default %.2f, poll 1 s %.2f against \"Rebooted\"; default %.2f, poll 1 s %.2f against the simulator reading On\n",
		ratio(fdDefault, frDone), ratio(fdOneSecond, frDone), ratio(fdDefault, frOn), ratio(fdOneSecond, frOn))
	t.Logf("%d trials, power delay 2 s (the simulator's default), one system of %d:\n%s", trials, 3, tb.String())
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func ratio(a, b []time.Duration) float64 { return median(a).Seconds() / median(b).Seconds() }
