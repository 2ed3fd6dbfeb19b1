package main

import (
	"strings"
	"testing"

	"github.com/fencedhq/fenced/pkg/config"
)

func TestRestartNeeded(t *testing.T) {
	parse := func(body string) *config.Config {
		t.Helper()
		c, err := config.Parse("f.yaml", []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	base := "tick: 2s\netcd: {embedded: {data_dir: /var/lib/fenced/etcd}}\nlibvirt: {hosts: {cn1: \"test:///default\"}}\n"
	old := parse(base)
	for _, c := range []struct{ body, want string }{
		{base, ""},
		// what a reload applies
		{base + "policy: /etc/fenced/policy.yaml\nwebhooks:\n  - {name: oncall, url: \"https://x.example/h\"}\n", ""},
		// what needs a restart
		{strings.Replace(base, "tick: 2s", "tick: 3s", 1), "tick"},
		{base + "api: {listen: \"127.0.0.1:9000\"}\n", "api"},
		{strings.Replace(base, "/var/lib/fenced/etcd", "/srv/etcd", 1) + "hosts: [cn2]\n", "hosts,etcd"},
		{strings.Replace(base, "cn1", "cn9", 1), "libvirt"},
	} {
		if got := strings.Join(restartNeeded(old, parse(c.body)), ","); got != c.want {
			t.Errorf("%q: %q, want %q", c.body, got, c.want)
		}
	}
}
