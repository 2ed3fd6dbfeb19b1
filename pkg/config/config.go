// Package config loads the configuration file of `fenced run` (the part that
// is about this deployment; thresholds live in the policy). Loading is
// strict: unknown keys are errors and every error names the file, line and
// field.
package config

import (
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/fencedhq/fenced/pkg/signals"
	"github.com/fencedhq/fenced/pkg/yamlfile"
)

// Config is the file.
type Config struct {
	Listen     string        `yaml:"listen"`      // API address; default 127.0.0.1:8480
	Policy     string        `yaml:"policy"`      // policy file; default: built-in
	Tick       time.Duration `yaml:"tick"`        // default 10s
	TokensFile string        `yaml:"tokens_file"` // lines "ROLE TOKEN"; required unless listen is loopback
	TLSCert    string        `yaml:"tls_cert"`    // serve the API over HTTPS with this certificate
	TLSKey     string        `yaml:"tls_key"`
	Hosts      []string      `yaml:"hosts"` // hosts known up front
	Prometheus *Prometheus   `yaml:"prometheus"`
	Libvirt    *Libvirt      `yaml:"libvirt"`
	Nova       *Nova         `yaml:"nova"`
	Webhooks   []Webhook     `yaml:"webhooks"`

	file string
}

// Prometheus configures the PromQL collector.
type Prometheus struct {
	URL       string            `yaml:"url"`
	HostLabel string            `yaml:"host_label"`
	HostMap   map[string]string `yaml:"host_map"`
	Timeout   time.Duration     `yaml:"timeout"`
	Queries   map[string]string `yaml:"queries"` // signal → PromQL; replaces the defaults when set
}

// Nova configures the compute API (auth as the openstack CLI: clouds.yaml or OS_*).
type Nova struct {
	Cloud          string        `yaml:"cloud"` // clouds.yaml entry (default: OS_CLOUD, then OS_* variables)
	Region         string        `yaml:"region"`
	Interface      string        `yaml:"interface"`       // public, internal, admin
	ReportInterval time.Duration `yaml:"report_interval"` // Nova's report_interval (default 10s)
}

// Libvirt configures the management-path probes.
type Libvirt struct {
	URIs        map[string]string `yaml:"uris"`         // host → qemu+tcp://…/system, qemu+tls://…, qemu+ssh://…
	CallTimeout time.Duration     `yaml:"call_timeout"` // default 2s
}

// Webhook is one on-call endpoint.
type Webhook struct {
	Name       string `yaml:"name"`
	URL        string `yaml:"url"`
	Format     string `yaml:"format"`      // generic, slack, pagerduty
	SecretFile string `yaml:"secret_file"` // HMAC key
	RoutingKey string `yaml:"routing_key_env"`
}

// Load reads and validates a config file.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes and validates config data.
func Parse(name string, data []byte) (*Config, error) {
	c := &Config{Listen: "127.0.0.1:8480", Tick: 10 * time.Second, file: name}
	doc, err := yamlfile.Decode(name, data, c)
	if err != nil {
		return nil, err
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return nil, doc.Errorf("listen", "%q is not host:port", c.Listen)
	}
	if c.Tick < time.Second {
		return nil, doc.Errorf("tick", "must be at least 1s, have %s", c.Tick)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return nil, doc.Errorf("tls_cert", "tls_cert and tls_key go together")
	}
	if c.TokensFile == "" && !c.Loopback() {
		return nil, doc.Errorf("tokens_file", "required when listen is not a loopback address")
	}
	if p := c.Prometheus; p != nil {
		if p.URL == "" {
			return nil, doc.Errorf("prometheus.url", "required")
		}
		for sig := range p.Queries {
			if !signals.Name(sig).Valid() {
				return nil, doc.Errorf("prometheus.queries."+sig, "unknown signal")
			}
		}
	}
	if l := c.Libvirt; l != nil {
		if len(l.URIs) == 0 {
			return nil, doc.Errorf("libvirt.uris", "list at least one host")
		}
		for h, u := range l.URIs {
			if !strings.Contains(u, "://") {
				return nil, doc.Errorf("libvirt.uris."+h, "%q is not a libvirt URI", u)
			}
		}
	}
	for i, w := range c.Webhooks {
		f := fmt.Sprintf("webhooks[%d]", i)
		if w.URL == "" {
			return nil, doc.Errorf(f, "url is required")
		}
		switch w.Format {
		case "", "generic", "slack", "pagerduty":
		default:
			return nil, doc.Errorf(f, "format %q: want generic, slack or pagerduty", w.Format)
		}
	}
	return c, nil
}

// Loopback reports whether the API listens on loopback only.
func (c *Config) Loopback() bool {
	host, _, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}

// File is where the config came from.
func (c *Config) File() string { return c.file }
