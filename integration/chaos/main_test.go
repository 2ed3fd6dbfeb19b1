package chaos

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/fencedhq/fenced/integration/internal/harness"
	"github.com/fencedhq/fenced/integration/internal/stack"
)

// The world every test of the package shares: one real Nova (one real
// fake-driver compute, cn1, and nHosts computes whose service records the
// test keeps alive), a three-member etcd, Prometheus scraping the test's
// exporter, the BMC simulator with a system per host.
var (
	fencedBin string
	etcd      *harness.EtcdCluster
	st        *stack.Stack
	computes  *novaHosts
	exp       *exporter
	promURL   string
	promProc  *harness.Proc
	bmc       *bmcProc
	hosts     []string // the chaos hosts, chaos-001 … chaos-100
	full      bool     // FENCED_CHAOS_TRIALS set: the full run (make chaos)
	trials    = 2      // kill -9 trials; FENCED_CHAOS_TRIALS in the full run
	workDir   string
)

const (
	nHosts     = 100
	tick       = 2 * time.Second
	ttl        = 5 * time.Second
	settle     = 5 * time.Second
	powerDelay = 2 * time.Second
	bmcUser    = "admin"
	bmcPass    = "chaos-bmc-secret"
	// Nova's heartbeat and down time in this stack
	reportInterval  = 5 * time.Second
	serviceDownTime = 20 * time.Second
)

func TestMain(m *testing.M) {
	if v := os.Getenv("FENCED_CHAOS_TRIALS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > nHosts {
			fmt.Fprintf(os.Stderr, "FENCED_CHAOS_TRIALS=%q: want a count from 1 to %d\n", v, nHosts)
			os.Exit(2)
		}
		trials, full = n, true
	}
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
	workDir, err = os.MkdirTemp("", "fenced-chaos-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(workDir)
	for i := 1; i <= nHosts; i++ {
		hosts = append(hosts, fmt.Sprintf("chaos-%03d", i))
	}

	etcd, err = harness.NewEtcdCluster(filepath.Join(workDir, "etcd"), harness.EtcdOptions{Token: "fenced-chaos"})
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration/chaos:", err)
		return 1
	}
	defer etcd.Stop()

	st, err = stack.Up(stack.Options{Name: "integration/chaos", Computes: []string{"cn1"},
		ReportInterval: reportInterval, ServiceDownTime: serviceDownTime})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer st.Down()

	computes, err = addComputes(st, hosts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration/chaos:", err)
		return 1
	}
	defer computes.stop()

	exp, err = startExporter(hosts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration/chaos:", err)
		return 1
	}
	defer exp.stop()
	promURL, promProc, err = startPrometheus(filepath.Join(workDir, "prometheus"), exp.addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration/chaos:", err)
		return 1
	}
	defer promProc.Stop()

	bmc, err = startBMC(bin, append([]string{"cn1"}, hosts...))
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration/chaos:", err)
		return 1
	}
	defer bmc.stop()
	// a host is powered off and on through the BMC: its compute stops
	// heartbeating and its exporter goes silent while it is off
	bmc.onPower = func(host, state string) {
		if state == "Off" {
			computes.setAlive(host, false)
			exp.set(host, stateOff)
		} else {
			// a power cycle is what the starving host needed
			computes.setAlive(host, true)
			exp.set(host, stateHealthy)
		}
	}
	fmt.Printf("integration/chaos: world up in %.1fs (Nova %.1fs, %d computes; etcd %v; Prometheus %s; BMC %s); %d kill -9 trials\n",
		time.Since(start).Seconds(), st.UpTime.Seconds(), nHosts, etcd.Endpoints(), promURL, bmc.url, trials)

	code := m.Run()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "stack logs: %s/log (removed unless FENCED_KEEP_STACK=1)\n--- fenced lab bmc output (tail)\n%s\n",
			st.Base, tail(bmc.output(), 3000))
	}
	return code
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
