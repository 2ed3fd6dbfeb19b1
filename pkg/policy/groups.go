package policy

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/fencedhq/fenced/internal/hostname"
	"github.com/fencedhq/fenced/pkg/fleet"
	"github.com/fencedhq/fenced/pkg/playbook"
	"github.com/fencedhq/fenced/pkg/yamlfile"
)

// A policy file may override any of its fields for a group of hosts (the
// run config's groups:, docs/groups.md):
//
//	groups:
//	  gpu:
//	    mode: auto
//	    thresholds: {d_crit: 0.8}
//	    storm_guard: {max_concurrent: 1}
//
// A group's policy is the file's with the group's entry laid over it:
// mappings merge key by key (signals.cpu_steal_pct.weight changes that one
// number), anything else — a number, a duration, a list — replaces. The
// result is validated as a whole policy; its errors name the group's field
// and line ("groups.gpu.thresholds.d_crit").

// noOverride are the keys a group cannot override.
var noOverride = map[string]string{
	"version": "the file's schema version is the file's",
	"groups":  "groups do not nest",
}

// buildGroups merges and validates every group's overrides.
func (p *Policy) buildGroups(doc *yamlfile.Doc) error {
	if len(p.Groups) == 0 {
		return nil
	}
	root := doc.Root()
	groupsNode := lookup(root, "groups")
	file := withoutKey(root, "groups") // the file's fields, each group's overrides laid over them
	names := make([]string, 0, len(p.Groups))
	for name := range p.Groups {
		names = append(names, name)
	}
	sort.Strings(names)
	p.groups = make(map[string]*Policy, len(names))
	p.groupLines = make(map[string]int, len(names))
	for _, name := range names {
		field := "groups." + name
		p.groupLines[name] = doc.Line(field)
		if name == playbook.DefaultGroup {
			return doc.Errorf(field, "%q is the implicit group of hosts in no group; its policy is the file's own (set the field at the top level)", name)
		}
		if err := hostname.Check(name); err != nil {
			return doc.Errorf(field, "a group name is letters, digits, '.', '-' and '_': %v", err)
		}
		over := lookup(groupsNode, name)
		if over == nil || over.Kind == yaml.ScalarNode && over.Tag == "!!null" {
			gp := *p // an empty entry: the file's policy
			gp.group, gp.Groups, gp.groups, gp.groupLines = name, nil, nil, nil
			p.groups[name] = &gp
			continue
		}
		if over.Kind != yaml.MappingNode {
			return doc.Errorf(field, "want a mapping of the policy fields the group overrides, e.g. {mode: auto}")
		}
		if err := checkKeys(doc, over, reflect.TypeOf(Policy{}), field, true); err != nil {
			return err
		}
		base := file
		// after_fence and recovery are one choice (the chain): a group
		// setting either replaces the file's
		if lookup(over, "recovery") != nil {
			base = withoutKey(base, "after_fence")
		}
		if lookup(over, "after_fence") != nil {
			base = withoutKey(base, "recovery")
		}
		merged := merge(base, over)
		var gp Policy
		mdoc, err := yamlfile.DecodeNode(doc.Name, merged, &gp)
		if err != nil {
			return inGroup(err, name)
		}
		if err := gp.validate(mdoc); err != nil {
			return inGroup(err, name)
		}
		gp.source, gp.digest, gp.group, gp.Groups = p.source, p.digest, name, nil
		p.groups[name] = &gp
	}
	return nil
}

// inGroup puts a group's prefix on an error's field.
func inGroup(err error, group string) error {
	var e *yamlfile.Error
	if !errors.As(err, &e) {
		return err
	}
	c := *e
	if c.Field != "" {
		c.Field = "groups." + group + "." + c.Field
	} else {
		c.Field = "groups." + group
	}
	return &c
}

// checkKeys refuses a key that names no field of t (the strict decoder's
// rule, which a node does not get), at its line.
func checkKeys(doc *yamlfile.Doc, n *yaml.Node, t reflect.Type, path string, top bool) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind != yaml.MappingNode {
		return nil // a scalar or list where a mapping belongs: the decoder says so
	}
	switch t.Kind() {
	case reflect.Map:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if err := checkKeys(doc, n.Content[i+1], t.Elem(), path+"."+n.Content[i].Value, false); err != nil {
				return err
			}
		}
		return nil
	case reflect.Struct:
	default:
		return nil
	}
	fields := map[string]reflect.Type{}
	var known []string
	for i := range t.NumField() {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || tag == "" || tag == "-" {
			continue
		}
		if _, no := noOverride[tag]; top && no {
			continue
		}
		fields[tag] = f.Type
		known = append(known, tag)
	}
	sort.Strings(known)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		field := path + "." + k.Value
		if why, no := noOverride[k.Value]; top && no {
			return &yamlfile.Error{File: doc.Name, Line: k.Line, Field: field, Err: fmt.Errorf("a group cannot override %s: %s", k.Value, why)}
		}
		ft, ok := fields[k.Value]
		if !ok {
			return &yamlfile.Error{File: doc.Name, Line: k.Line, Field: field, Err: fmt.Errorf("unknown field (known: %s)", strings.Join(known, ", "))}
		}
		if err := checkKeys(doc, n.Content[i+1], ft, field, false); err != nil {
			return err
		}
	}
	return nil
}

// lookup is the value of key in mapping n, or nil.
func lookup(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// withoutKey is a shallow copy of mapping n without key.
func withoutKey(n *yaml.Node, key string) *yaml.Node {
	c := *n
	c.Content = nil
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value != key {
			c.Content = append(c.Content, n.Content[i], n.Content[i+1])
		}
	}
	return &c
}

// merge lays over onto base: mappings merge key by key, anything else in
// over replaces. Neither is changed; the result shares their leaves.
func merge(base, over *yaml.Node) *yaml.Node {
	if base == nil || base.Kind != yaml.MappingNode || over.Kind != yaml.MappingNode {
		return over
	}
	c := *base
	c.Content = append([]*yaml.Node(nil), base.Content...)
	for i := 0; i+1 < len(over.Content); i += 2 {
		k, v := over.Content[i], over.Content[i+1]
		found := false
		for j := 0; j+1 < len(c.Content); j += 2 {
			if c.Content[j].Value == k.Value {
				// the group's key: errors point at the group's line
				c.Content[j], c.Content[j+1] = k, merge(c.Content[j+1], v)
				found = true
				break
			}
		}
		if !found {
			c.Content = append(c.Content, k, v)
		}
	}
	return &c
}

// Group is the policy of a group: the file's with the group's overrides,
// or the file's own for a group without any (and for the default group).
func (p *Policy) Group(name string) *Policy {
	if g, ok := p.groups[name]; ok {
		return g
	}
	return p
}

// GroupName is the group whose overrides made this policy ("" for the
// file's own).
func (p *Policy) GroupName() string { return p.group }

// GroupNames are the groups the file overrides, sorted.
func (p *Policy) GroupNames() []string {
	out := make([]string, 0, len(p.groups))
	for n := range p.groups {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Overrides lists, for people, the fields a group's policy changes:
// "mode: auto", "thresholds.d_crit: 0.8".
func (p *Policy) Overrides(group string) []string {
	n := p.Groups[group]
	if n.Kind != yaml.MappingNode {
		return nil
	}
	var out []string
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				walk(n.Content[i+1], strings.TrimPrefix(path+"."+n.Content[i].Value, "."))
			}
			return
		}
		v, err := yaml.Marshal(n)
		s := strings.TrimSpace(string(v))
		if err != nil {
			s = "…"
		}
		out = append(out, path+": "+strings.Join(strings.Fields(s), " "))
	}
	walk(&n, "")
	return out
}

// CheckGroups refuses overrides for groups the run config does not define:
// a key nothing uses is an error, not ignored. known are the config's
// group names.
func (p *Policy) CheckGroups(known []string) error {
	set := map[string]bool{}
	for _, k := range known {
		set[k] = true
	}
	for _, name := range p.GroupNames() {
		if !set[name] {
			have := "no groups are defined"
			if len(known) > 0 {
				have = "defined: " + strings.Join(known, ", ")
			}
			return &yamlfile.Error{File: p.source, Line: p.groupLines[name], Field: "groups." + name,
				Err: fmt.Errorf("no group %s in the run config's groups: (%s); an override for it would never apply", name, have)}
		}
	}
	return nil
}

// FleetGroups are the groups' policies as the fleet takes them
// (fleet.SetPolicies): only groups that override something.
func (p *Policy) FleetGroups() map[string]fleet.GroupPolicy {
	out := map[string]fleet.GroupPolicy{}
	for name, g := range p.groups {
		out[name] = fleet.GroupPolicy{Signals: g.SignalsConfig(), Playbook: g.PlaybookConfig()}
	}
	return out
}
