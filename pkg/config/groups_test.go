package config

import (
	"strings"
	"testing"

	"github.com/fencedhq/fenced/pkg/playbook"
)

const groupsBase = "etcd: {embedded: {data_dir: /tmp/x}}\nnova: {cloud: prod}\n"

func TestGroups(t *testing.T) {
	c, err := Parse("f.yaml", []byte(groupsBase+`groups:
  - name: gpu
    aggregate: agg-gpu
    min_healthy: "60%"
    max_concurrent: 1
  - name: az2
    availability_zone: az2
    min_healthy: 3
  - name: rack1
    hosts: [cmp-0*, cn1]
`))
	if err != nil {
		t.Fatal(err)
	}
	d := c.GroupDefs()
	if len(d) != 3 || d[0].Aggregate != "agg-gpu" || d[0].Guard.MinHealthy != (playbook.MinHealthy{Percent: 60}) || d[0].Guard.MaxConcurrent != 1 ||
		d[1].AvailabilityZone != "az2" || d[1].Guard.MinHealthy.Count != 3 || d[2].Hosts[1] != "cn1" || d[2].Guard != (playbook.GroupGuard{}) {
		t.Fatalf("%+v", d)
	}
}

func TestGroupErrorsNameFileLineField(t *testing.T) {
	noNova := "etcd: {embedded: {data_dir: /tmp/x}}\n"
	for _, c := range []struct{ yaml, want string }{
		{groupsBase + "groups:\n  - aggregate: a\n", "f.yaml:4: groups[0].name: required"},
		{groupsBase + "groups:\n  - name: default\n    hosts: [a]\n", `f.yaml:4: groups[0].name: "default" is the implicit group`},
		{groupsBase + "groups:\n  - name: \"a b\"\n    hosts: [a]\n", "f.yaml:4: groups[0].name: a group name is"},
		{groupsBase + "groups:\n  - name: g\n    hosts: [a]\n  - name: g\n    hosts: [b]\n", "f.yaml:6: groups[1].name: g is also the name of groups[0]"},
		{groupsBase + "groups:\n  - name: g\n", "f.yaml:4: groups[0]: group g: give exactly one of aggregate, availability_zone and hosts (have 0)"},
		{groupsBase + "groups:\n  - name: g\n    aggregate: a\n    hosts: [b]\n", "groups[0]: group g: give exactly one of aggregate, availability_zone and hosts (have 2)"},
		{noNova + "groups:\n  - name: g\n    aggregate: a\n", "f.yaml:4: groups[0].aggregate: group g: membership from Nova needs the nova: section"},
		{noNova + "groups:\n  - name: g\n    availability_zone: z\n", "f.yaml:4: groups[0].availability_zone: group g: membership from Nova"},
		{groupsBase + "groups:\n  - name: g\n    hosts: [a, \"cmp-[\"]\n", `f.yaml:5: groups[0].hosts[1]: "cmp-[" is not a valid glob`},
		{groupsBase + "groups:\n  - name: g\n    hosts: [a]\n    min_healthy: 120%\n", `f.yaml:6: groups[0].min_healthy: min_healthy "120%": want a percentage`},
		{groupsBase + "groups:\n  - name: g\n    hosts: [a]\n    min_healthy: lots\n", `f.yaml:6: groups[0].min_healthy: min_healthy "lots": want a count`},
		{groupsBase + "groups:\n  - name: g\n    hosts: [a]\n    max_concurrent: -1\n", "f.yaml:6: groups[0].max_concurrent: must not be negative"},
		{groupsBase + "groups:\n  - name: g\n    hosts: [a]\n    mode: auto\n", "f.yaml:6: field mode not found"},
		{groupsBase + "groups:\n  - name: a\n    hosts: [cmp-0*, cn1]\n  - name: b\n    hosts: [cn2, cn1]\n", `f.yaml:7: groups[1].hosts: "cn1" overlaps groups[0] (a): a host is in at most one group`},
		{groupsBase + "groups:\n  - name: a\n    hosts: [cmp-0*]\n  - name: b\n    hosts: [cmp-07]\n", `groups[1].hosts: "cmp-07" overlaps groups[0] (a)`},
		{noNova + "nova:\n  group_refresh: 10ms\n", "f.yaml:3: nova.group_refresh: must be at least 1s"},
	} {
		_, err := Parse("f.yaml", []byte(c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q:\n got  %v\n want %s", c.yaml, err, c.want)
		}
	}
}

func TestGroupReservedHostsAndEvacuable(t *testing.T) {
	c, err := Parse("f.yaml", []byte(groupsBase+`groups:
  - name: gpu
    aggregate: agg-gpu
    reserved_hosts: [gpu-spare-1, gpu-spare-2]
    evacuable: {flavor_extra_spec: "ha:evacuable=true"}
  - name: rack1
    hosts: [cmp-0*]
    reserved_hosts: [cmp-09]
    evacuable: {}
  - name: web
    hosts: [web-1]
`))
	if err != nil {
		t.Fatal(err)
	}
	d := c.GroupDefs()
	if strings.Join(d[0].Reserved, ",") != "gpu-spare-1,gpu-spare-2" || strings.Join(d[1].Reserved, ",") != "cmp-09" || d[2].Reserved != nil {
		t.Fatalf("%+v", d)
	}
	if e := c.Groups[0].Evacuable; e == nil || e.FlavorExtraSpec != "ha:evacuable=true" {
		t.Fatalf("gpu evacuable %+v", e)
	}
	if e := c.Groups[1].Evacuable; e == nil || *e != (Evacuable{}) || c.Groups[2].Evacuable != nil {
		t.Fatalf("rack1 evacuable %+v, web %+v", e, c.Groups[2].Evacuable)
	}
	if err := c.CheckReserved([]string{"gpu-spare-1", "gpu-spare-2", "cmp-09"}); err != nil {
		t.Fatal(err)
	}
	if err := c.CheckReserved([]string{"gpu-spare-1", "cmp-09"}); err == nil ||
		!strings.Contains(err.Error(), "f.yaml:6: groups[0].reserved_hosts[1]: gpu-spare-2 is not a known host") {
		t.Fatalf("unknown reserved host: %v", err)
	}
}

func TestGroupReservedErrorsNameFileLineField(t *testing.T) {
	noNova := "etcd: {embedded: {data_dir: /tmp/x}}\n"
	for _, c := range []struct{ yaml, want string }{
		{groupsBase + "groups:\n  - name: g\n    hosts: [a]\n    reserved_hosts: [\"s*\"]\n", `f.yaml:6: groups[0].reserved_hosts[0]: a reserved host is a host name (no globs)`},
		{groupsBase + "groups:\n  - name: g\n    hosts: [a]\n    reserved_hosts: [s1, s1]\n", "f.yaml:6: groups[0].reserved_hosts[1]: s1 is listed twice"},
		{groupsBase + "groups:\n  - name: g\n    hosts: [a]\n    reserved_hosts: [s1]\n  - name: h\n    hosts: [b]\n    reserved_hosts: [s2, s1]\n",
			"f.yaml:9: groups[1].reserved_hosts[1]: s1 is also a reserved host of groups[0] (g): a host is reserved by one group"},
		{groupsBase + "groups:\n  - name: g\n    hosts: [a]\n    reserved_hosts: [cmp-07]\n  - name: h\n    hosts: [cmp-0*]\n",
			"f.yaml:6: groups[0].reserved_hosts[0]: cmp-07 is also a member of groups[1] (h) by its hosts"},
		{groupsBase + "groups:\n  - name: g\n    hosts: [a]\n  - name: h\n    hosts: [b]\n    reserved_hosts: [a]\n",
			"f.yaml:8: groups[1].reserved_hosts[0]: a is also a member of groups[0] (g) by its hosts"},
		{noNova + "groups:\n  - name: g\n    hosts: [a]\n    reserved_hosts: [s1]\n", "f.yaml:5: groups[0].reserved_hosts: group g: reserved hosts are kept disabled in Nova: they need the nova: section"},
		{noNova + "groups:\n  - name: g\n    hosts: [a]\n    evacuable: {}\n", "f.yaml:5: groups[0].evacuable: group g: the evacuable filter is Nova's"},
		{groupsBase + "groups:\n  - name: g\n    hosts: [a]\n    evacuable: {image_property: nokey}\n", `f.yaml:6: groups[0].evacuable.image_property: "nokey": want key=value`},
		{groupsBase + "groups:\n  - name: g\n    hosts: [a]\n    evacuable: {tag: x}\n", "f.yaml:6: field tag not found"},
	} {
		_, err := Parse("f.yaml", []byte(c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q:\n got  %v\n want %s", c.yaml, err, c.want)
		}
	}
}
