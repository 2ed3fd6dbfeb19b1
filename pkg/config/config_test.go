package config

import (
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	c, err := Parse("fenced.yaml", []byte(`
listen: 127.0.0.1:9000
tick: 5s
prometheus:
  url: http://127.0.0.1:9090
  host_label: host
  queries:
    cpu_steal_pct: 'rate(x[1m])'
webhooks:
  - {name: oncall, url: "http://127.0.0.1:1/hook", format: slack}
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Tick != 5*time.Second || c.Prometheus.HostLabel != "host" || !c.Loopback() || c.Webhooks[0].Format != "slack" {
		t.Fatalf("%+v", c)
	}
	if c, err := Parse("empty.yaml", nil); err != nil || c.Listen != "127.0.0.1:8480" {
		t.Fatalf("empty file: %v", err)
	}
}

func TestErrorsNameFileLineField(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"listen: 127.0.0.1:9000\nticks: 5s\n", "f.yaml:2: field ticks not found"},
		{"listen: nowhere\n", "f.yaml:1: listen"},
		{"listen: 0.0.0.0:8480\n", "f.yaml:1: tokens_file: required"},
		{"tick: 10ms\n", "f.yaml:1: tick"},
		{"prometheus:\n  host_label: x\n", "f.yaml:1: prometheus.url: required"},
		{"prometheus:\n  url: http://p\n  queries:\n    cpu_stolen: x\n", "f.yaml:4: prometheus.queries.cpu_stolen: unknown signal"},
		{"webhooks:\n  - url: http://x\n  - url: http://y\n    format: teams\n", "f.yaml:3: webhooks[1]: format"},
	} {
		_, err := Parse("f.yaml", []byte(c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.yaml, err, c.want)
		}
	}
}
