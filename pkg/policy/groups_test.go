package policy

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fencedhq/fenced/pkg/playbook"
	"github.com/fencedhq/fenced/pkg/signals"
	"github.com/fencedhq/fenced/pkg/yamlfile"
	"github.com/fencedhq/fenced/policies"
)

// withGroups is the default policy with a groups: section appended.
func withGroups(section string) (string, int) {
	base := string(policies.Default)
	if !strings.HasSuffix(base, "\n") {
		base += "\n"
	}
	return base + "groups:\n" + section, strings.Count(base, "\n") + 1 // the line of "groups:"
}

func TestGroupOverridesMergeOverTheFile(t *testing.T) {
	src, _ := withGroups(`  gpu:
    mode: auto
    thresholds: {d_crit: 0.8}
    dwell: {critical: 2m}
    signals:
      cpu_steal_pct: {weight: 0.5}
    storm_guard: {max_concurrent: 1}
    approval: {on_timeout: proceed}
  batch:
`)
	p, err := Parse("pol.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if got := p.GroupNames(); strings.Join(got, ",") != "batch,gpu" {
		t.Fatalf("groups %v", got)
	}
	base, gpu := p.PlaybookConfig(), p.Group("gpu").PlaybookConfig()
	if gpu.Mode != playbook.ModeAuto || base.Mode != playbook.ModeApprove {
		t.Errorf("mode: gpu %s, file %s", gpu.Mode, base.Mode)
	}
	if gpu.DCrit != 0.8 || gpu.DWarn != base.DWarn || base.DCrit != 0.7 {
		t.Errorf("thresholds: gpu %v/%v, file %v/%v", gpu.DWarn, gpu.DCrit, base.DWarn, base.DCrit)
	}
	if gpu.DwellCrit != 2*time.Minute || gpu.DwellWarn != base.DwellWarn {
		t.Errorf("dwell: gpu %s/%s", gpu.DwellWarn, gpu.DwellCrit)
	}
	if gpu.Storm.MaxConcurrent != 1 || gpu.Storm.MaxFraction != base.Storm.MaxFraction {
		t.Errorf("storm guard: %+v", gpu.Storm)
	}
	if gpu.ApprovalOnTimeout != playbook.OnTimeoutProceed || base.ApprovalOnTimeout != playbook.OnTimeoutNeedsHuman {
		t.Errorf("on_timeout: gpu %s, file %s", gpu.ApprovalOnTimeout, base.ApprovalOnTimeout)
	}
	gs, bs := p.Group("gpu").SignalsConfig(), p.SignalsConfig()
	steal := gs.Signals[signals.CPUSteal]
	if steal.Weight != 0.5 || steal.Warn != bs.Signals[signals.CPUSteal].Warn || steal.Window != bs.Signals[signals.CPUSteal].Window {
		t.Errorf("signal merged field by field: %+v", steal)
	}
	if gs.DCrit != 0.8 {
		t.Errorf("the evaluator's d_crit is the group's too: %v", gs.DCrit)
	}
	if !reflect.DeepEqual(p.Group("batch").PlaybookConfig(), base) || p.Group("nope") != p || p.Group(playbook.DefaultGroup) != p {
		t.Error("an empty entry, an unknown group and the default group have the file's policy")
	}
	if p.Group("gpu").Version() != p.Version() {
		t.Error("a group's policy has the file's version")
	}
	ov := strings.Join(p.Overrides("gpu"), "; ")
	for _, want := range []string{"mode: auto", "thresholds.d_crit: 0.8", "signals.cpu_steal_pct.weight: 0.5", "storm_guard.max_concurrent: 1"} {
		if !strings.Contains(ov, want) {
			t.Errorf("overrides %q lack %q", ov, want)
		}
	}
	m, err := p.WithMode("observe")
	if err != nil {
		t.Fatal(err)
	}
	if m.Group("gpu").PlaybookConfig().Mode != playbook.ModeObserve || m.Group("gpu").PlaybookConfig().DCrit != 0.8 {
		t.Error("--mode applies to every group, the rest of the overrides stay")
	}
}

func TestGroupOverrideErrorsNameTheGroupsFieldAndLine(t *testing.T) {
	for _, tc := range []struct {
		name, section string
		line          int // relative to "groups:"
		field, want   string
	}{
		{"unknown field", "  gpu:\n    thresholds:\n      d_critt: 0.8\n", 2, "groups.gpu.thresholds.d_critt", "unknown field (known: d_crit, d_warn, hysteresis)"},
		{"unknown top field", "  gpu:\n    moed: auto\n", 1, "groups.gpu.moed", "unknown field"},
		{"merged relation", "  gpu:\n    thresholds: {d_warn: 0.75}\n", 1, "groups.gpu.thresholds", "d_warn"},
		{"bad mode", "  gpu:\n    mode: sometimes\n", 1, "groups.gpu.mode", "want auto, approve or observe"},
		{"bad on_timeout", "  gpu:\n    approval:\n      on_timeout: later\n", 2, "groups.gpu.approval.on_timeout", "want needs_human, proceed or abort"},
		{"type", "  gpu:\n    storm_guard: {max_concurrent: many}\n", 1, "", "cannot unmarshal"},
		{"version", "  gpu:\n    version: 2\n", 1, "groups.gpu.version", "cannot override version"},
		{"nested", "  gpu:\n    groups: {}\n", 1, "groups.gpu.groups", "do not nest"},
		{"default", "  default:\n    mode: auto\n", 0, "groups.default", "implicit group"},
		{"not a mapping", "  gpu: auto\n", 0, "groups.gpu", "want a mapping"},
		{"unknown signal", "  gpu:\n    signals:\n      cpu_stea_pct: {weight: 1}\n", 2, "groups.gpu.signals.cpu_stea_pct", "unknown signal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, groupsLine := withGroups(tc.section)
			_, err := Parse("pol.yaml", []byte(src))
			var e *yamlfile.Error
			if !errors.As(err, &e) {
				t.Fatalf("want a file error, got %v", err)
			}
			if e.File != "pol.yaml" || e.Line != groupsLine+1+tc.line {
				t.Errorf("at %s:%d, want line %d: %v", e.File, e.Line, groupsLine+1+tc.line, err)
			}
			if tc.field != "" && e.Field != tc.field {
				t.Errorf("field %q, want %q: %v", e.Field, tc.field, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q lacks %q", err, tc.want)
			}
		})
	}
}

func TestOverridesForGroupsTheConfigDoesNotDefineAreRefused(t *testing.T) {
	src, groupsLine := withGroups("  gpu:\n    mode: auto\n  web:\n    mode: observe\n")
	p, err := Parse("pol.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.CheckGroups([]string{"gpu", "web", "other"}); err != nil {
		t.Fatal(err)
	}
	err = p.CheckGroups([]string{"gpu"})
	var e *yamlfile.Error
	if !errors.As(err, &e) || e.Field != "groups.web" || e.Line != groupsLine+3 || !strings.Contains(err.Error(), "defined: gpu") {
		t.Fatalf("want groups.web at line %d naming the defined groups, got %v", groupsLine+3, err)
	}
	if err := p.CheckGroups(nil); err == nil || !strings.Contains(err.Error(), "no groups are defined") {
		t.Fatalf("no groups: %v", err)
	}
	if err := Default().CheckGroups(nil); err != nil {
		t.Fatalf("a policy without overrides fits any config: %v", err)
	}
}
