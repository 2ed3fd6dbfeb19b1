package signals

import (
	"fmt"
	"math"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 15, 1, 0, 0, 0, time.UTC)

func testConfig() Config {
	return Config{
		DWarn: 0.4, DCrit: 0.7, StaleAfter: 90 * time.Second,
		Signals: map[Name]SignalConfig{
			CPUSteal:        {Warn: 10, Crit: 25, Weight: 0.25, Window: time.Minute, Agg: AggMin},
			LibvirtLatency:  {Warn: 200, Crit: 500, Weight: 0.2, Window: time.Minute, Agg: AggP95},
			HeartbeatLag:    {Warn: 15, Crit: 30, Weight: 0.2, Agg: AggLast, Trigger: true},
			RunqueuePerCore: {Warn: 2, Crit: 4, Weight: 0.15, Window: time.Minute, Agg: AggMean},
			KubeletDelay:    {Warn: 500, Crit: 1000, Weight: 0.1, Window: 5 * time.Minute, Agg: AggP95},
			IOLatency:       {Warn: 100, Crit: 300, Weight: 0.1, Window: 5 * time.Minute, Agg: AggP99},
		},
	}
}

func TestNormalize(t *testing.T) {
	cases := []struct {
		x, want float64
	}{
		{-1, 0}, {0, 0}, {5, 0.2}, {10, 0.4}, {17.5, 0.55}, {25, 0.7}, {32.5, 0.85}, {40, 1}, {1000, 1},
		{math.NaN(), 0},
	}
	for _, c := range cases {
		if got := Normalize(c.x, 10, 25, 0.4, 0.7); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("Normalize(%v) = %v, want %v", c.x, got, c.want)
		}
	}
}

func newEval(t *testing.T, cfg Config) *Evaluator {
	t.Helper()
	e, err := NewEvaluator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func observe(t *testing.T, e *Evaluator, host string, at time.Time, n Name, v float64) {
	t.Helper()
	if err := e.Observe(Sample{Host: host, Signal: n, Value: v, At: at}); err != nil {
		t.Fatal(err)
	}
}

func TestDivergenceAtThresholds(t *testing.T) {
	cfg := testConfig()
	for _, tc := range []struct {
		name  string
		pick  func(SignalConfig) float64
		wantD float64
		level Level
	}{
		{"all at warn", func(s SignalConfig) float64 { return s.Warn }, 0.4, LevelWarn},
		{"all at crit", func(s SignalConfig) float64 { return s.Crit }, 0.7, LevelCritical},
		{"all zero", func(SignalConfig) float64 { return 0 }, 0, LevelNormal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEval(t, cfg)
			for n, s := range cfg.Signals {
				observe(t, e, "h", t0, n, tc.pick(s))
			}
			v := e.Evaluate("h", t0)
			if math.Abs(v.D-tc.wantD) > 1e-9 || v.Level != tc.level {
				t.Fatalf("d=%v level=%v, want %v %v", v.D, v.Level, tc.wantD, tc.level)
			}
			var sum float64
			for _, c := range v.Contributions {
				sum += c.Contribution
			}
			if math.Abs(sum-v.D) > 1e-9 {
				t.Fatalf("contributions sum to %v, d is %v", sum, v.D)
			}
		})
	}
}

func TestRenormalisedOverPresentSignals(t *testing.T) {
	e := newEval(t, testConfig())
	// only steal (0.25) and runqueue (0.15) present: weights become 0.625/0.375
	observe(t, e, "h", t0, CPUSteal, 25)       // m=0.7
	observe(t, e, "h", t0, RunqueuePerCore, 0) // m=0
	v := e.Evaluate("h", t0)
	if want := 0.625 * 0.7; math.Abs(v.D-want) > 1e-9 {
		t.Fatalf("d = %v, want %v", v.D, want)
	}
	for _, c := range v.Contributions {
		if c.Signal == CPUSteal && math.Abs(c.Weight-0.625) > 1e-9 {
			t.Fatalf("steal weight %v, want 0.625", c.Weight)
		}
	}
}

func TestStaleAndBlind(t *testing.T) {
	e := newEval(t, testConfig())
	observe(t, e, "h", t0, CPUSteal, 40)
	observe(t, e, "h", t0.Add(60*time.Second), RunqueuePerCore, 0.5)
	// at +100 s steal (last at 0) is stale, runqueue (at 60) is fresh
	v := e.Evaluate("h", t0.Add(100*time.Second))
	if v.Blind {
		t.Fatal("host with a fresh signal reported blind")
	}
	for _, c := range v.Contributions {
		if c.Signal == CPUSteal && (!c.Stale || c.Contribution != 0) {
			t.Fatalf("stale steal still contributes: %+v", c)
		}
	}
	if v.Level != LevelNormal {
		t.Fatalf("stale critical steal must not count, level %v d %v", v.Level, v.D)
	}
	v = e.Evaluate("h", t0.Add(200*time.Second))
	if !v.Blind || v.Level != LevelNormal || v.D != 0 {
		t.Fatalf("all stale: want blind with no level, got %+v", v)
	}
	if !e.Evaluate("unknown", t0).Blind {
		t.Fatal("never-seen host must be blind")
	}
}

func TestSustainedWindow(t *testing.T) {
	e := newEval(t, testConfig())
	// steal 30 % for 50 s after a 5 % sample: the 1 min min is still 5 %
	observe(t, e, "h", t0, CPUSteal, 5)
	for s := 10; s <= 50; s += 10 {
		observe(t, e, "h", t0.Add(time.Duration(s)*time.Second), CPUSteal, 30)
	}
	v := e.Evaluate("h", t0.Add(50*time.Second))
	if got := v.Contributions[0].Value; got != 5 {
		t.Fatalf("sustained value after 50 s = %v, want 5", got)
	}
	observe(t, e, "h", t0.Add(70*time.Second), CPUSteal, 30)
	v = e.Evaluate("h", t0.Add(70*time.Second))
	if got := v.Contributions[0].Value; got != 30 {
		t.Fatalf("sustained value after 60 s over = %v, want 30", got)
	}
}

func TestWindowAggregations(t *testing.T) {
	var w window
	for i := 0; i < 100; i++ {
		w.add(t0.Add(time.Duration(i)*time.Second), float64(i+1))
	}
	now := secs(t0.Add(99 * time.Second))
	span := int64(99)
	for _, c := range []struct {
		agg  Agg
		want float64
	}{
		{AggLast, 100}, {AggMin, 1}, {AggMax, 100}, {AggP95, 95}, {AggP99, 99},
	} {
		if got, _ := w.aggregate(c.agg, now, span, nil); got != c.want {
			t.Errorf("%s = %v, want %v", c.agg, got, c.want)
		}
	}
	// time-weighted mean: 0 for 30 s then 10 for 30 s over a 60 s window
	var m window
	m.add(t0, 0)
	m.add(t0.Add(30*time.Second), 10)
	if got, _ := m.aggregate(AggMean, secs(t0.Add(60*time.Second)), 60, nil); got != 5 {
		t.Errorf("mean = %v, want 5", got)
	}
}

func TestHeartbeatTriggerAndIncoherence(t *testing.T) {
	e := newEval(t, testConfig())
	observe(t, e, "h", t0, HeartbeatLag, 31)
	observe(t, e, "h", t0, CPUSteal, 1)
	e.ObserveControl("h", Control{ServiceUp: true, ServersActive: 12})
	v := e.Evaluate("h", t0)
	if v.Level != LevelCritical || len(v.Triggers) != 1 || v.Triggers[0] != HeartbeatLag {
		t.Fatalf("heartbeat lag over 30 s must make the host critical: %+v", v)
	}
	if v.D >= 0.7 {
		t.Fatalf("test wants d below d_crit, got %v", v.D)
	}
	if !v.Incoherent {
		t.Fatal("service up with heartbeat lag over threshold must be flagged incoherent")
	}
	e.ObserveControl("h", Control{ServiceUp: false, ServersActive: 0})
	if e.Evaluate("h", t0).Incoherent {
		t.Fatal("control plane agreeing (down, nothing ACTIVE) is not incoherent")
	}
	// a healthy host with the service up is coherent
	observe(t, e, "ok", t0, CPUSteal, 1)
	e.ObserveControl("ok", Control{ServiceUp: true, ServersActive: 3})
	if v := e.Evaluate("ok", t0); v.Incoherent || v.Level != LevelNormal {
		t.Fatalf("healthy host: %+v", v)
	}
}

func TestObserveRejectsBadInput(t *testing.T) {
	e := newEval(t, testConfig())
	if err := e.Observe(Sample{Host: "h", Signal: "cpu_stole", Value: 1, At: t0}); err == nil {
		t.Fatal("unknown signal accepted")
	}
	if err := e.Observe(Sample{Host: "h", Signal: CPUSteal, Value: math.Inf(1), At: t0}); err == nil {
		t.Fatal("infinite value accepted")
	}
}

func TestConfigValidate(t *testing.T) {
	for name, mutate := range map[string]func(*Config){
		"warn>=crit d": func(c *Config) { c.DWarn = 0.8 },
		"signal warn":  func(c *Config) { s := c.Signals[CPUSteal]; s.Crit = 5; c.Signals[CPUSteal] = s },
		"neg weight":   func(c *Config) { s := c.Signals[CPUSteal]; s.Weight = -1; c.Signals[CPUSteal] = s },
		"bad agg":      func(c *Config) { s := c.Signals[CPUSteal]; s.Agg = "median"; c.Signals[CPUSteal] = s },
		"stale":        func(c *Config) { c.StaleAfter = 0 },
	} {
		cfg := testConfig()
		mutate(&cfg)
		if _, err := NewEvaluator(cfg); err == nil {
			t.Errorf("%s: invalid config accepted", name)
		}
	}
}

// BenchmarkEvaluateFleet measures one tick of 10,000 hosts × 9 signals:
// nine samples observed and one verdict computed per host. ns/op is per
// tick; the per-host figure is reported as ns/host.
func BenchmarkEvaluateFleet(b *testing.B) {
	cfg := testConfig()
	for _, n := range []Name{LibvirtTimeout, PodEvictions, MgmtCPUShare} {
		cfg.Signals[n] = SignalConfig{Warn: 1, Crit: 2, Weight: 0.05, Window: 5 * time.Minute, Agg: AggMean}
	}
	e, err := NewEvaluator(cfg)
	if err != nil {
		b.Fatal(err)
	}
	const hosts = 10000
	names := make([]string, hosts)
	for i := range names {
		names[i] = fmt.Sprintf("cmp-%05d", i)
	}
	tick := 0
	step := func() {
		now := t0.Add(time.Duration(tick) * 10 * time.Second)
		for hi, h := range names {
			for si, n := range All {
				_ = e.Observe(Sample{Host: h, Signal: n, Value: float64((hi+si+tick)%7) + 0.5, At: now})
			}
			_ = e.Evaluate(h, now)
		}
		tick++
	}
	for range 40 { // fill the 5 min windows first
		step()
	}
	b.ResetTimer()
	for range b.N {
		step()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/hosts, "ns/host")
}

func TestPercentileSmallAndLargeWindows(t *testing.T) {
	// the short scan (k ≤ 4) and the sort must agree with nearest rank
	for _, n := range []int{1, 2, 5, 20, 30, 79, 80, 81, 200} {
		var w window
		for i := 0; i < n; i++ {
			w.add(t0.Add(time.Duration(i)*time.Second), float64((i*37)%n))
		}
		now := secs(t0.Add(time.Duration(n-1) * time.Second))
		for _, c := range []struct {
			agg Agg
			q   float64
		}{{AggP95, 0.95}, {AggP99, 0.99}} {
			got, _ := w.aggregate(c.agg, now, int64(n), nil)
			want := float64(max(int(math.Ceil(c.q*float64(n)))-1, 0)) // values are a permutation of 0..n-1 when gcd(37,n)=1
			if n%37 != 0 && got != want {
				t.Errorf("n=%d %s = %v, want %v", n, c.agg, got, want)
			}
		}
	}
}
