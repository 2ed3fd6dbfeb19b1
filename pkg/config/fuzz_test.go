package config

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// FuzzConfigParse: any bytes give a config or an error that names the file
// and stays short; what is accepted holds the relations Parse promises, and
// resolving it (BMC targets, libvirt URIs, the etcd password) does not panic.
func FuzzConfigParse(f *testing.F) {
	f.Add([]byte(full))
	if b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "fenced.yaml")); err == nil {
		f.Add(b)
	}
	f.Add([]byte("tick: 5s\nhosts: [cn1]\n"))
	f.Add([]byte("bmc: {template: {endpoint: 'https://{host}-bmc', username: u, password_env: P}}\nhosts: [a, b]\n"))
	f.Add([]byte("webhooks: [{url: 'ftp://x/y'}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.yaml", data)
		if err != nil {
			msg := err.Error()
			if !strings.HasPrefix(msg, "fuzz.yaml") {
				t.Fatalf("an error that does not name the file: %.300q", msg)
			}
			if len(msg) > 2048 {
				t.Fatalf("an error of %d bytes: %.300q", len(msg), msg)
			}
			return
		}
		if c.Tick < time.Second {
			t.Fatalf("accepted tick %s", c.Tick)
		}
		for i, w := range c.Webhooks {
			u, err := url.Parse(w.URL)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				t.Fatalf("accepted webhooks[%d] url %q", i, w.URL)
			}
		}
		if p := c.Prometheus; p != nil && p.Timeout < 0 {
			t.Fatalf("accepted prometheus timeout %s", p.Timeout)
		}
		env := func(string) string { return "pw" }
		_, _ = c.BMCTargets(c.Hosts, env)
		_ = c.LibvirtURIs(c.Hosts)
		_, _ = c.EtcdPassword(env)
		_ = c.Loopback()
	})
}
