package signals

import (
	"testing"
	"time"
)

// TestSetConfigKeepsSamples: a reloaded configuration judges the samples
// already seen; an invalid one changes nothing.
func TestSetConfigKeepsSamples(t *testing.T) {
	e := newEval(t, testConfig())
	for i := range 7 {
		observe(t, e, "h", t0.Add(time.Duration(i)*10*time.Second), CPUSteal, 20)
	}
	now := t0.Add(time.Minute)
	before := e.Evaluate("h", now)
	cfg := testConfig()
	s := cfg.Signals[CPUSteal]
	s.Warn, s.Crit = 5, 15 // 20 is now over critical
	cfg.Signals[CPUSteal] = s
	bad := testConfig()
	bad.DWarn = 0.9
	if err := e.SetConfig(bad); err == nil {
		t.Fatal("an invalid config was taken")
	}
	if v := e.Evaluate("h", now); v.D != before.D {
		t.Fatalf("a refused config changed d: %v → %v", before.D, v.D)
	}
	if err := e.SetConfig(cfg); err != nil {
		t.Fatal(err)
	}
	after := e.Evaluate("h", now)
	if after.Blind || !(after.D > before.D) || len(after.Contributions) != 1 || !after.Contributions[0].OverCrit {
		t.Fatalf("after SetConfig: %+v (before d=%v)", after, before.D)
	}
	if e.Config().Signals[CPUSteal].Crit != 15 {
		t.Fatal("Config() does not show the new config")
	}
}

// TestEvaluateWithAGroupsScoring: the same windows weighed with a group's
// scoring give the group's verdict; the evaluator's own is untouched.
func TestEvaluateWithAGroupsScoring(t *testing.T) {
	e := newEval(t, testConfig())
	for i := range 7 {
		observe(t, e, "h", t0.Add(time.Duration(i)*10*time.Second), CPUSteal, 20)
	}
	now := t0.Add(time.Minute)
	cfg := testConfig()
	s := cfg.Signals[CPUSteal]
	s.Warn, s.Crit = 5, 15
	cfg.Signals[CPUSteal] = s
	strict, err := Compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	own, group := e.Evaluate("h", now), e.EvaluateWith("h", now, strict)
	if !(group.D > own.D) || group.Level != LevelCritical || !group.Contributions[0].OverCrit {
		t.Fatalf("group scoring: %+v; own d=%v", group, own.D)
	}
	if again := e.Evaluate("h", now); again.D != own.D || e.Config().Signals[CPUSteal].Crit == 15 {
		t.Fatal("EvaluateWith changed the evaluator's own configuration")
	}
	if e.EvaluateWith("h", now, nil).D != own.D {
		t.Fatal("nil scoring is the evaluator's own")
	}
	bad := testConfig()
	bad.DWarn = 0.9
	if _, err := Compile(bad); err == nil {
		t.Fatal("Compile took an invalid config")
	}
}
