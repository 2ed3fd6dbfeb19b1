package signals

import (
	"strings"
	"testing"
	"time"
)

// TestHardFailureAndAgentDown is the table of the corroborated hard-failure
// rule and the agent-failure verdict: which combinations of libvirt, Nova
// heartbeat, Nova service state, BMC and execution signals give which
// verdict.
func TestHardFailureAndAgentDown(t *testing.T) {
	const ri = 10 * time.Second
	dead := Liveness{Probed: true, Answered: true, Failures: 3}
	alive := Liveness{Probed: true, Answered: true}
	for _, tc := range []struct {
		name    string
		ctl     Control
		lag     float64 // heartbeat_lag_s sample
		libvirt float64 // libvirt_latency_p95_ms sample
		steal   float64 // cpu_steal_pct sample
		cfg     func(*Config)

		hard, agent bool
		level       Level
		triggers    int
	}{
		{name: "healthy", ctl: Control{ServiceUp: true, HeartbeatKnown: true, HeartbeatAge: 3 * time.Second, ReportInterval: ri, Libvirt: alive},
			level: LevelNormal},
		{name: "libvirt dead and heartbeat stale: hard failure", ctl: Control{ServiceUp: true, HeartbeatKnown: true, HeartbeatAge: 21 * time.Second, ReportInterval: ri, Libvirt: dead},
			lag: 11, hard: true, level: LevelCritical},
		{name: "BMC On does not contradict", ctl: Control{ServiceUp: true, HeartbeatKnown: true, HeartbeatAge: 25 * time.Second, ReportInterval: ri, Libvirt: dead, BMCPower: "On"},
			lag: 15, hard: true, level: LevelCritical},
		{name: "BMC Off corroborates", ctl: Control{ServiceUp: true, HeartbeatKnown: true, HeartbeatAge: 25 * time.Second, ReportInterval: ri, Libvirt: dead, BMCPower: "Off"},
			lag: 15, hard: true, level: LevelCritical},
		{name: "BMC powering on contradicts", ctl: Control{ServiceUp: true, HeartbeatKnown: true, HeartbeatAge: 25 * time.Second, ReportInterval: ri, Libvirt: dead, BMCPower: "PoweringOn"},
			lag: 15, level: LevelNormal},
		{name: "BMC powering off contradicts", ctl: Control{ServiceUp: true, HeartbeatKnown: true, HeartbeatAge: 25 * time.Second, ReportInterval: ri, Libvirt: dead, BMCPower: "PoweringOff"},
			lag: 15, level: LevelNormal},
		{name: "libvirt alone never", ctl: Control{ServiceUp: true, HeartbeatKnown: true, HeartbeatAge: 5 * time.Second, ReportInterval: ri, Libvirt: Liveness{Probed: true, Answered: true, Failures: 50}},
			level: LevelNormal},
		{name: "libvirt failing fewer probes than the rule", ctl: Control{ServiceUp: true, HeartbeatKnown: true, HeartbeatAge: 25 * time.Second, ReportInterval: ri, Libvirt: Liveness{Probed: true, Answered: true, Failures: 2}},
			lag: 15, level: LevelNormal},
		{name: "heartbeat exactly two intervals old is not older", ctl: Control{ServiceUp: true, HeartbeatKnown: true, HeartbeatAge: 20 * time.Second, ReportInterval: ri, Libvirt: dead},
			lag: 10, level: LevelNormal},
		{name: "heartbeat unknown never", ctl: Control{ServiceUp: true, ReportInterval: ri, Libvirt: dead},
			level: LevelNormal},
		{name: "no probe: no hard failure, no agent verdict", ctl: Control{ServiceUp: true, HeartbeatKnown: true, HeartbeatAge: 45 * time.Second, ReportInterval: ri},
			lag: 35, level: LevelCritical, triggers: 1},
		{name: "rule of one probe and 1.5 intervals", ctl: Control{ServiceUp: true, HeartbeatKnown: true, HeartbeatAge: 16 * time.Second, ReportInterval: ri, Libvirt: Liveness{Probed: true, Failures: 1}},
			lag: 6, cfg: func(c *Config) { c.HardFailure = HardFailure{LibvirtProbes: 1, HeartbeatIntervals: 1.5} }, hard: true, level: LevelCritical},

		{name: "agent dead, libvirt answers: agent down, heartbeat trigger dropped", ctl: Control{ServiceUp: true, HeartbeatKnown: true, HeartbeatAge: 45 * time.Second, ReportInterval: ri, Libvirt: alive},
			lag: 35, agent: true, level: LevelWarn},
		{name: "Nova says down, libvirt answers: agent down", ctl: Control{ServiceUp: false, HeartbeatKnown: true, HeartbeatAge: 65 * time.Second, ReportInterval: ri, Libvirt: alive},
			lag: 55, agent: true, level: LevelWarn},
		{name: "Nova says down with a fresh-looking heartbeat: agent down", ctl: Control{ServiceUp: false, HeartbeatKnown: true, HeartbeatAge: 5 * time.Second, ReportInterval: ri, Libvirt: alive},
			agent: true, level: LevelWarn},
		{name: "forced down by fenced with a fresh heartbeat is not an agent failure", ctl: Control{ServiceUp: false, ForcedDown: true, HeartbeatKnown: true, HeartbeatAge: 5 * time.Second, ReportInterval: ri, Libvirt: alive},
			level: LevelNormal},
		{name: "agent dead but steal high: not healthy, the ordinary rules", ctl: Control{ServiceUp: true, HeartbeatKnown: true, HeartbeatAge: 45 * time.Second, ReportInterval: ri, Libvirt: alive},
			lag: 35, steal: 30, level: LevelCritical, triggers: 1},
		{name: "agent dead but libvirt slow: not healthy", ctl: Control{ServiceUp: true, HeartbeatKnown: true, HeartbeatAge: 45 * time.Second, ReportInterval: ri, Libvirt: alive},
			lag: 35, libvirt: 300, level: LevelCritical, triggers: 1},
		{name: "libvirt never answered: no agent verdict", ctl: Control{ServiceUp: true, HeartbeatKnown: true, HeartbeatAge: 45 * time.Second, ReportInterval: ri, Libvirt: Liveness{Probed: true}},
			lag: 35, level: LevelCritical, triggers: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			e := newEval(t, cfg)
			observe(t, e, "h", t0, HeartbeatLag, tc.lag)
			observe(t, e, "h", t0, LibvirtLatency, tc.libvirt)
			observe(t, e, "h", t0, CPUSteal, tc.steal)
			e.ObserveControl("h", tc.ctl)
			v := e.Evaluate("h", t0)
			if (v.HardFailure != "") != tc.hard {
				t.Errorf("hard failure = %q, want %v", v.HardFailure, tc.hard)
			}
			if (v.AgentDown != "") != tc.agent {
				t.Errorf("agent down = %q, want %v", v.AgentDown, tc.agent)
			}
			if v.Level != tc.level {
				t.Errorf("level = %s, want %s (d=%.2f, %s)", v.Level, tc.level, v.D, v.Explain())
			}
			if len(v.Triggers) != tc.triggers {
				t.Errorf("triggers = %v, want %d", v.Triggers, tc.triggers)
			}
			if tc.agent {
				if !strings.HasPrefix(v.Explain(), AgentDownReason) {
					t.Errorf("explain = %q, want it to start with %q", v.Explain(), AgentDownReason)
				}
				for _, c := range v.Contributions {
					if c.Signal == HeartbeatLag && (!c.Discounted || c.Contribution != 0) {
						t.Errorf("heartbeat lag still counts in d: %+v", c)
					}
				}
				if v.D >= cfg.DWarn {
					t.Errorf("d = %.2f: an agent failure must not raise d", v.D)
				}
			}
			if tc.hard && !strings.Contains(v.Explain(), "hard failure") {
				t.Errorf("explain = %q, want the hard failure named", v.Explain())
			}
		})
	}
}

func TestIncoherenceNamesActiveServers(t *testing.T) {
	e := newEval(t, testConfig())
	observe(t, e, "h", t0, HeartbeatLag, 35)
	observe(t, e, "h", t0, CPUSteal, 0)
	e.ObserveControl("h", Control{ServiceUp: true, ServersActive: 7, ActiveServers: []string{"a", "b", "c", "d", "e", "f", "g"}})
	v := e.Evaluate("h", t0)
	want := "control plane says service up with 7 servers ACTIVE (a, b, c, d, e, and 2 more), but heartbeat_lag_s over its critical threshold"
	if !v.Incoherent || v.Incoherence != want {
		t.Errorf("incoherence = %q, want %q", v.Incoherence, want)
	}
}

func TestHardFailureConfigValidated(t *testing.T) {
	for _, hf := range []HardFailure{{LibvirtProbes: -1}, {HeartbeatIntervals: 0.5}, {HeartbeatIntervals: -2}} {
		cfg := testConfig()
		cfg.HardFailure = hf
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "hard_failure") {
			t.Errorf("%+v: err = %v, want a hard_failure error", hf, err)
		}
	}
}
