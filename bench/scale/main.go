// Command scale measures fenced at fleet scale: N simulated hosts × 9
// signals at a 10 s tick through the real evaluator, playbooks and etcd
// writes (an embedded etcd), as one HA replica that leads. It reports CPU
// per tick (process CPU, the embedded etcd included), memory, and etcd
// writes per second, first with a healthy fleet, then while 1 % of the
// hosts starve.
//
//	go run ./bench/scale -hosts 10000 -ticks 30
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/fencedhq/fenced/pkg/clock"
	"github.com/fencedhq/fenced/pkg/daemon"
	"github.com/fencedhq/fenced/pkg/lab"
	"github.com/fencedhq/fenced/pkg/lease"
	"github.com/fencedhq/fenced/pkg/playbook"
	"github.com/fencedhq/fenced/pkg/policy"
)

var memProfile string

func cpu() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func rssMiB() float64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			var kb float64
			fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(l, "VmRSS:")), "%f", &kb)
			return kb / 1024
		}
	}
	return 0
}

type phase struct {
	name              string
	ticks             int
	cpu               time.Duration
	writes            int64
	maxRSS, heapAfter float64
}

func main() {
	hosts := flag.Int("hosts", 10000, "simulated hosts")
	ticks := flag.Int("ticks", 30, "ticks per phase")
	tick := flag.Duration("tick", 10*time.Second, "tick interval (simulated)")
	flag.StringVar(&memProfile, "memprofile", "", "write a heap profile at the end")
	flag.Parse()
	if err := run(*hosts, *ticks, *tick); err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(1)
	}
}

func run(hosts, ticks int, tick time.Duration) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir, err := os.MkdirTemp("", "fenced-scale-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	etcd, err := lease.StartEmbedded(ctx, dir, "")
	if err != nil {
		return err
	}
	defer etcd.Close()
	cli, err := lease.Connect(lease.ClientConfig{Endpoints: etcd.Endpoints})
	if err != nil {
		return err
	}
	defer cli.Close()

	p, _ := policy.Default().WithMode("auto")
	clk := clock.NewFake(time.Date(2026, 1, 15, 0, 0, 0, 0, time.UTC))
	world := lab.NewWorld(clk.Now, 6*time.Minute, p.SignalsConfig())
	gen := lab.NewGenerator(hosts, clk.Now(), 1000*time.Hour, world) // the built-in victim never starves
	d, err := daemon.NewReplica(ctx, daemon.ReplicaConfig{Policy: p, Clock: clk, Log: zerolog.Nop(), Tick: tick,
		Etcd: cli, ID: "scale", TTL: 10 * time.Second, Backends: world.Backends(gen)})
	if err != nil {
		return err
	}
	world.SetViews(d)
	go d.Run(ctx)
	deadline := time.Now().Add(30 * time.Second)
	for !d.Snapshot().Leader {
		if time.Now().After(deadline) {
			return fmt.Errorf("not leader after 30 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	step := func() {
		before := d.Snapshot().Ticks
		clk.Advance(tick)
		for d.Snapshot().Ticks == before {
			time.Sleep(100 * time.Microsecond)
		}
	}
	measure := func(name string, n int) phase {
		ph := phase{name: name, ticks: n}
		w0, c0 := d.Snapshot().EtcdWrites, cpu()
		for i := 0; i < n; i++ {
			step()
			ph.maxRSS = max(ph.maxRSS, rssMiB())
		}
		ph.cpu, ph.writes = cpu()-c0, d.Snapshot().EtcdWrites-w0
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		ph.heapAfter = float64(ms.HeapInuse) / (1 << 20)
		return ph
	}
	for d.Snapshot().Ticks == 0 { // the first tick runs at once and publishes the initial writes
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	initial := d.Snapshot().EtcdWrites
	warm := measure("warm-up (signal windows fill)", 32)
	healthy := measure("healthy fleet", ticks)
	var victims []string
	for i := 50; i < hosts; i += 100 {
		victims = append(victims, gen.Hosts[i])
	}
	gen.Start, gen.StarveAfter = clk.Now(), 0
	gen.Starve(victims...)
	incident := measure(fmt.Sprintf("incident: %d hosts (1 %%) starving", len(victims)), ticks)
	states := map[playbook.State]int{}
	for _, v := range d.Snapshot().Hosts {
		states[v.Host.State]++
	}

	fmt.Printf("fenced scale run: %d hosts × 9 signals, tick %s, embedded etcd, GOMAXPROCS %d, %s wall\n\n", hosts, tick, runtime.GOMAXPROCS(0), time.Since(start).Round(time.Second))
	fmt.Printf("| phase | ticks | CPU per tick | %% of one core at a %s tick | etcd writes/s | per 1,000 hosts | peak RSS | heap after GC |\n|---|---|---|---|---|---|---|---|\n", tick)
	for _, ph := range []phase{warm, healthy, incident} {
		per := ph.cpu / time.Duration(ph.ticks)
		wps := float64(ph.writes) / (float64(ph.ticks) * tick.Seconds())
		fmt.Printf("| %s | %d | %s | %.2f %% | %.2f | %.3f | %.0f MiB | %.0f MiB |\n", ph.name, ph.ticks, per.Round(100*time.Microsecond),
			100*per.Seconds()/tick.Seconds(), wps, wps*1000/float64(hosts), ph.maxRSS, ph.heapAfter)
	}
	fmt.Printf("\nhost records written when the replica was elected (not in the rates above): %d\n", initial)
	fmt.Printf("states at the end: %v; power cycles %d\n", states, world.Count().PowerCycles)
	if memProfile != "" {
		f, err := os.Create(memProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		runtime.GC()
		return pprof.WriteHeapProfile(f)
	}
	return nil
}
