// Package policy loads and validates fenced's policy file: thresholds,
// weights, dwell and hysteresis, mode, approvals and storm guard. Loading is strict:
// unknown keys are errors, relations are checked, and every error names the
// file, the line and the field.
package policy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/fencedhq/fenced/pkg/playbook"
	"github.com/fencedhq/fenced/pkg/signals"
	"github.com/fencedhq/fenced/pkg/yamlfile"
	"github.com/fencedhq/fenced/policies"
)

// Duration is a time.Duration written as "90s", "5m", "6h".
type Duration time.Duration

// UnmarshalYAML parses a Go duration string; negative durations are
// errors everywhere in a policy.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %s is not a duration (use 30s, 5m, 6h)", n.Line, yamlfile.Quote(n.Value))
	}
	if v < 0 {
		return fmt.Errorf("line %d: duration %s is negative", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// Signal is one signals: entry.
type Signal struct {
	Warn    float64  `yaml:"warn"`
	Crit    float64  `yaml:"crit"`
	Weight  float64  `yaml:"weight"`
	Window  Duration `yaml:"window"`
	Agg     string   `yaml:"agg"`
	Trigger bool     `yaml:"trigger"`
}

// Policy is the file's content.
type Policy struct {
	Schema     int    `yaml:"version"`
	Mode       string `yaml:"mode"`
	AfterFence string `yaml:"after_fence"` // evacuate (default) or reboot_in_place
	Thresholds struct {
		DWarn      float64 `yaml:"d_warn"`
		DCrit      float64 `yaml:"d_crit"`
		Hysteresis float64 `yaml:"hysteresis"`
	} `yaml:"thresholds"`
	StaleAfter Duration `yaml:"stale_after"`
	Dwell      struct {
		Warn     Duration `yaml:"warn"`
		Critical Duration `yaml:"critical"`
	} `yaml:"dwell"`
	RecoverAfter Duration `yaml:"recover_after"`
	RestoreHold  Duration `yaml:"restore_hold"`
	Approval     struct {
		Timeout Duration `yaml:"timeout"`
		// OnTimeout is what happens when an approval request expires:
		// needs_human (default), proceed or abort (docs/groups.md).
		OnTimeout string `yaml:"on_timeout"`
	} `yaml:"approval"`
	AbortCooldown Duration `yaml:"abort_cooldown"`
	Timeouts      struct {
		Fenced Duration `yaml:"fenced"`
		Reboot Duration `yaml:"reboot"`
	} `yaml:"timeouts"`
	MinPowerCycleInterval Duration `yaml:"min_power_cycle_interval"`
	StormGuard            struct {
		MaxConcurrent      int     `yaml:"max_concurrent"`
		MaxFraction        float64 `yaml:"max_fraction"`
		SaturationFraction float64 `yaml:"saturation_fraction"`
	} `yaml:"storm_guard"`
	// HardFailure is the corroborated hard-failure rule (docs/signals.md);
	// zero fields take the defaults (3 probes, 2 report intervals).
	HardFailure struct {
		LibvirtProbes      int     `yaml:"libvirt_probes"`
		HeartbeatIntervals float64 `yaml:"heartbeat_intervals"`
	} `yaml:"hard_failure"`
	Signals map[string]Signal `yaml:"signals"`
	// Groups overrides fields for a group of hosts (groups.go): group
	// name → the fields it changes, as they are written at the top level.
	Groups map[string]yaml.Node `yaml:"groups"`
	// Recovery is the escalation chain of a fenced host, in order
	// (docs/groups.md, Escalation chain); absent, after_fence implies it.
	// The two together are an error.
	Recovery []RecoveryStep `yaml:"recovery"`
	// Instances is the instance filter.
	Instances struct {
		// SkipError: servers whose Nova status is ERROR are neither moved
		// nor counted in the restored check (default false).
		SkipError bool `yaml:"skip_error"`
	} `yaml:"instances"`

	source string // file name, for errors
	digest string
	// groups are the groups' policies (the file's with each group's
	// overrides), validated; group is the group this one is for ("": the
	// file's own); groupLines the line of each group's entry
	groups     map[string]*Policy
	group      string
	groupLines map[string]int
}

// RecoveryStep is one recovery: entry.
type RecoveryStep struct {
	Step    string    `yaml:"step"`    // live_migrate, power_cycle or evacuate
	Timeout *Duration `yaml:"timeout"` // absent: timeouts.fenced (live_migrate) or timeouts.reboot
	When    string    `yaml:"when"`    // always, gate_open, gate_closed; absent: gate_open for live_migrate, else always
}

// Error is a policy error with its place in the file.
type Error = yamlfile.Error

// Load reads and validates a policy file (at most yamlfile.MaxFileSize bytes).
func Load(path string) (*Policy, error) {
	data, err := yamlfile.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	return Parse(path, data)
}

// Default returns the shipped policies/default.yaml.
func Default() *Policy {
	p, err := Parse("policies/default.yaml", policies.Default)
	if err != nil {
		panic(err) // the shipped file is tested
	}
	return p
}

// Parse decodes and validates policy data; name is used in errors.
func Parse(name string, data []byte) (*Policy, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, &Error{File: name, Err: errors.New("empty policy")}
	}
	var p Policy
	doc, err := yamlfile.Decode(name, data, &p)
	if err != nil {
		return nil, err
	}
	p.source = name
	sum := sha256.Sum256(data)
	p.digest = hex.EncodeToString(sum[:])[:12]
	if err := p.validate(doc); err != nil {
		return nil, err
	}
	if err := p.buildGroups(doc); err != nil {
		return nil, err
	}
	return &p, nil
}

// Version identifies the policy content: "v1@<sha256 prefix>"; the audit
// log records it with every decision.
func (p *Policy) Version() string { return fmt.Sprintf("v%d@%s", p.Schema, p.digest) }

// Source is the file the policy came from.
func (p *Policy) Source() string { return p.source }

// WithMode returns a copy with the mode replaced (a --mode flag), validated.
func (p *Policy) WithMode(mode string) (*Policy, error) {
	c := *p
	if _, err := playbook.ParseMode(mode); err != nil {
		return nil, &Error{File: "--mode", Err: err}
	}
	c.Mode = mode
	if len(p.groups) > 0 {
		// the flag is for the whole fleet: no group keeps a mode of its own
		c.groups = make(map[string]*Policy, len(p.groups))
		for name, g := range p.groups {
			gc := *g
			gc.Mode = mode
			c.groups[name] = &gc
		}
	}
	return &c, nil
}

func (p *Policy) validate(doc *yamlfile.Doc) error {
	if p.Schema != 1 {
		return doc.Errorf("version", "unsupported version %d (this fenced reads 1)", p.Schema)
	}
	if _, err := playbook.ParseMode(p.Mode); err != nil {
		return doc.Errorf("mode", "%s: want auto, approve or observe", yamlfile.Quote(p.Mode))
	}
	if _, err := playbook.ParseOnTimeout(p.Approval.OnTimeout); err != nil {
		return doc.Errorf("approval.on_timeout", "%s: want needs_human, proceed or abort", yamlfile.Quote(p.Approval.OnTimeout))
	}
	if p.Recovery != nil {
		if p.AfterFence != "" {
			return doc.Errorf("recovery", "recovery and after_fence (line %d) together: after_fence picks one of two chains, recovery spells the chain out; keep one", doc.Line("after_fence"))
		}
		if len(p.Recovery) == 0 {
			return doc.Errorf("recovery", "an empty chain: list at least one step (live_migrate, power_cycle, evacuate), or leave recovery out")
		}
		for i, s := range p.Recovery {
			if s.Timeout != nil && *s.Timeout == 0 {
				return doc.Errorf(fmt.Sprintf("recovery[%d].timeout", i), "must be positive (leave it out for the default)")
			}
		}
	}
	names := make([]string, 0, len(p.Signals))
	for name := range p.Signals {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		s := p.Signals[name]
		if !signals.Name(name).Valid() {
			return doc.Errorf("signals."+name, "unknown signal (known: %v)", signals.All)
		}
		agg, err := signals.ParseAgg(s.Agg)
		if err != nil {
			return doc.Errorf("signals."+name+".agg", "%s: want last, min, max, mean, p95 or p99", yamlfile.Quote(s.Agg))
		}
		// the evaluator keeps samples to the second: a window under 1s
		// aggregates nothing, and "sustained for 0s" is not sustained
		if agg != signals.AggLast && time.Duration(s.Window) < time.Second {
			return doc.Errorf("signals."+name+".window", "agg %s needs a window of at least 1s, have %s", agg, time.Duration(s.Window))
		}
	}
	sc := p.SignalsConfig()
	if err := sc.Validate(); err != nil {
		if strings.HasPrefix(err.Error(), "thresholds") {
			return doc.Errorf("thresholds", "%v", err)
		}
		return doc.Wrap(err)
	}
	pc := p.PlaybookConfig()
	if err := pc.Validate(); err != nil {
		return doc.Wrap(err)
	}
	// every B.1 signal is named: one the policy means not to weigh says
	// weight: 0 (it is still evaluated and reported), so a signal left out
	// by mistake is not silently ignored
	var missing []string
	for _, n := range signals.All {
		if _, ok := p.Signals[string(n)]; !ok {
			missing = append(missing, string(n))
		}
	}
	if len(missing) > 0 {
		return doc.Errorf("signals", "missing %s: list every signal, with weight: 0 for one that is reported but not weighted", strings.Join(missing, ", "))
	}
	return nil
}

// SignalsConfig is the evaluator's configuration.
func (p *Policy) SignalsConfig() signals.Config {
	c := signals.Config{
		DWarn: p.Thresholds.DWarn, DCrit: p.Thresholds.DCrit, StaleAfter: time.Duration(p.StaleAfter),
		Signals: map[signals.Name]signals.SignalConfig{},
		HardFailure: signals.HardFailure{
			LibvirtProbes: p.HardFailure.LibvirtProbes, HeartbeatIntervals: p.HardFailure.HeartbeatIntervals,
		},
	}
	for name, s := range p.Signals {
		c.Signals[signals.Name(name)] = signals.SignalConfig{
			Warn: s.Warn, Crit: s.Crit, Weight: s.Weight, Window: time.Duration(s.Window),
			Agg: signals.Agg(s.Agg), Trigger: s.Trigger,
		}
	}
	return c
}

// PlaybookConfig is the playbook's configuration.
func (p *Policy) PlaybookConfig() playbook.Config {
	return playbook.Config{
		Mode: playbook.Mode(p.Mode), AfterFence: afterFence(p.AfterFence),
		DWarn: p.Thresholds.DWarn, DCrit: p.Thresholds.DCrit, Hysteresis: p.Thresholds.Hysteresis,
		DwellWarn: time.Duration(p.Dwell.Warn), DwellCrit: time.Duration(p.Dwell.Critical),
		RecoverAfter: time.Duration(p.RecoverAfter), RestoreHold: time.Duration(p.RestoreHold),
		ApprovalTimeout: time.Duration(p.Approval.Timeout), AbortCooldown: time.Duration(p.AbortCooldown),
		FenceTimeout: time.Duration(p.Timeouts.Fenced), RebootTimeout: time.Duration(p.Timeouts.Reboot),
		MinPowerCycleInterval: time.Duration(p.MinPowerCycleInterval), ApprovalOnTimeout: onTimeout(p.Approval.OnTimeout),
		Storm: playbook.StormGuard{
			MaxConcurrent: p.StormGuard.MaxConcurrent, MaxFraction: p.StormGuard.MaxFraction,
			SaturationFraction: p.StormGuard.SaturationFraction,
		},
		Recovery: p.recovery(), SkipError: p.Instances.SkipError,
	}
}

// recovery is the explicit chain (nil when the policy has none).
func (p *Policy) recovery() []playbook.RecoveryStep {
	if len(p.Recovery) == 0 {
		return nil
	}
	out := make([]playbook.RecoveryStep, len(p.Recovery))
	for i, s := range p.Recovery {
		out[i] = playbook.RecoveryStep{Action: playbook.RecoveryAction(s.Step), When: playbook.Condition(s.When)}
		if s.Timeout != nil {
			out[i].Timeout = time.Duration(*s.Timeout)
		}
	}
	return out
}

// onTimeout is approval.on_timeout ("" is needs_human).
func onTimeout(s string) playbook.OnTimeout {
	if s == "" {
		return playbook.OnTimeoutNeedsHuman
	}
	return playbook.OnTimeout(s)
}

func afterFence(s string) playbook.AfterFence {
	if s == "" {
		return playbook.AfterFenceEvacuate
	}
	return playbook.AfterFence(s)
}
