package config

import (
	"crypto/ed25519"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fencedhq/fenced/pkg/audit"
)

const full = `
tick: 5s
hosts: [cn1, cn2]
api:
  listen: 127.0.0.1:9000
etcd:
  endpoints: [https://10.0.0.1:2379, https://10.0.0.2:2379]
  ca_file: /etc/fenced/etcd-ca.pem
  username: fenced
  password_env: ETCD_PW
nova:
  cloud: prod
  evacuable: {flavor_extra_spec: "evacuable=true"}
bmc:
  check_interval: 1m
  template:
    endpoint: https://{host}-bmc.example
    system_id: System.Embedded.1
    username: fenced
    password_env: BMC_PW
  hosts:
    cn2: {endpoint: "https://10.1.0.2", system_id: "1", username: root, password_env: CN2_PW, insecure: true}
libvirt:
  uri: qemu+tls://{host}/system
  hosts: {cn2: "qemu+tcp://10.1.0.2/system"}
prometheus:
  url: http://127.0.0.1:9090
  host_label: host
  queries:
    cpu_steal_pct: 'rate(x[1m])'
webhooks:
  - {name: oncall, url: "http://127.0.0.1:1/hook", format: slack}
record: {dir: /var/lib/fenced/record, max_file_mb: 16, max_files: 4}
`

func TestParseAndResolve(t *testing.T) {
	c, err := Parse("fenced.yaml", []byte(full))
	if err != nil {
		t.Fatal(err)
	}
	if c.Tick != 5*time.Second || c.Prometheus.HostLabel != "host" || !c.Loopback() || c.Webhooks[0].Format != "slack" ||
		*c.Record != (Record{Dir: "/var/lib/fenced/record", MaxFileMB: 16, MaxFiles: 4}) {
		t.Fatalf("%+v", c)
	}
	if e := c.Etcd; e.Prefix != "/fenced/" || e.TTL != 5*time.Second || e.Settle != time.Minute {
		t.Fatalf("etcd defaults: %+v", e)
	}
	env := map[string]string{"BMC_PW": "tmpl-secret", "CN2_PW": "cn2-secret", "ETCD_PW": "e"}
	targets, err := c.BMCTargets([]string{"cn1", "cn2", "cn3"}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if t1 := targets["cn1"]; t1.Endpoint != "https://cn1-bmc.example" || t1.Password != "tmpl-secret" || t1.SystemID != "System.Embedded.1" {
		t.Fatalf("template: %+v", t1)
	}
	if t2 := targets["cn2"]; t2.Endpoint != "https://10.1.0.2" || t2.Password != "cn2-secret" || !t2.Insecure || t2.Username != "root" {
		t.Fatalf("per-host entry: %+v", t2)
	}
	if len(targets) != 3 {
		t.Fatalf("want cn1..cn3, have %d", len(targets))
	}
	uris := c.LibvirtURIs([]string{"cn1", "cn2"})
	if uris["cn1"] != "qemu+tls://cn1/system" || uris["cn2"] != "qemu+tcp://10.1.0.2/system" {
		t.Fatalf("libvirt: %v", uris)
	}
	// a missing secret names the field and the host, never a value
	delete(env, "BMC_PW")
	_, err = c.BMCTargets([]string{"cn1"}, func(k string) string { return env[k] })
	if err == nil || !strings.Contains(err.Error(), "bmc.template.password_env") || !strings.Contains(err.Error(), "cn1") {
		t.Fatalf("missing BMC_PW: %v", err)
	}
	if pw, err := c.EtcdPassword(func(k string) string { return env[k] }); err != nil || pw != "e" {
		t.Fatalf("etcd password: %q %v", pw, err)
	}
}

func TestPasswordFile(t *testing.T) {
	dir := t.TempDir()
	pwf := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwf, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Parse("f.yaml", []byte("etcd: {embedded: {data_dir: "+dir+"}}\nbmc:\n  hosts:\n    cn1: {endpoint: http://127.0.0.1:1, username: u, password_file: "+pwf+"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	ts, err := c.BMCTargets(nil, os.Getenv)
	if err != nil || ts["cn1"].Password != "s3cret" {
		t.Fatalf("%v %+v", err, ts)
	}
}

func TestErrorsNameFileLineField(t *testing.T) {
	const etcd = "etcd: {embedded: {data_dir: /tmp/x}}\n"
	for _, c := range []struct{ yaml, want string }{
		{etcd + "api:\n  listen: 127.0.0.1:9000\nticks: 5s\n", "f.yaml:4: field ticks not found"},
		{etcd + "listen: 127.0.0.1:9000\n", "f.yaml:2: field listen not found"},
		{etcd + "api:\n  listen: nowhere\n", "f.yaml:3: api.listen"},
		{etcd + "api:\n  public_url: fenced.example/console\n", "f.yaml:3: api.public_url"},
		{etcd + "api:\n  public_url: \"https://u:p@fenced.example/\"\n", "f.yaml:3: api.public_url"},
		{etcd + "api:\n  listen: 0.0.0.0:8480\n", "f.yaml:2: api.tokens_file: required"},
		{etcd + "tick: 10ms\n", "f.yaml:2: tick"},
		{"tick: 5s\n", "etcd: required"},
		{"etcd:\n  endpoints: [http://a:1]\n  embedded: {data_dir: /x}\n", "f.yaml:3: etcd.embedded: embedded and endpoints exclude"},
		{"etcd:\n  endpoints: [a:1]\n", "f.yaml:2: etcd.endpoints[0]"},
		{"etcd:\n  endpoints: [http://a:1]\n  username: u\n", "f.yaml:3: etcd.username: give exactly one"},
		{"etcd:\n  embedded: {}\n", "etcd.embedded.data_dir: required"},
		{"etcd:\n  embedded: {data_dir: /x}\n  ca_file: /y\n", "f.yaml:3: etcd.ca_file: does not apply"},
		{etcd + "prometheus:\n  host_label: x\n", "f.yaml:2: prometheus.url: required"},
		{etcd + "prometheus:\n  url: ftp://p\n", "f.yaml:3: prometheus.url"},
		{etcd + "prometheus:\n  url: http://p\n  queries:\n    cpu_stolen: x\n", "f.yaml:5: prometheus.queries.cpu_stolen: unknown signal"},
		{etcd + "webhooks:\n  - url: http://x\n  - url: http://y\n    format: teams\n", "f.yaml:4: webhooks[1]: format"},
		{etcd + "webhooks:\n  - url: ftp://x\n", "f.yaml:3: webhooks[0]: url"},
		{etcd + "bmc:\n  template: {endpoint: https://bmc, username: u, password_env: X}\n", "f.yaml:3: bmc.template: endpoint or system_id must contain {host}"},
		{etcd + "bmc:\n  hosts:\n    cn1: {endpoint: https://bmc, password_env: X}\n", "f.yaml:4: bmc.hosts.cn1.username: required"},
		{etcd + "bmc:\n  hosts:\n    cn1: {endpoint: https://bmc, username: u, password_env: X, insecure: true, ca_file: /c}\n", "bmc.hosts.cn1.insecure"},
		{etcd + "bmc:\n  hosts:\n    cn1: {endpoint: https://bmc, username: u, password_env: X, passwd: y}\n", "f.yaml:4: field passwd not found"},
		{etcd + "libvirt:\n  uri: qemu+tls://host/system\n", "f.yaml:3: libvirt.uri"},
		{etcd + "nova:\n  evacuable: {flavor_extra_spec: evacuable}\n", "f.yaml:3: nova.evacuable.flavor_extra_spec"},
		{etcd + "hosts: [\"a b\"]\n", "f.yaml:2: hosts[0]"},
		{etcd + "hosts: [\"cn1\\e[2J\"]\n", `f.yaml:2: hosts[0]: "cn1\x1b[2J" is not a host name`},
		{etcd + "hosts: [\"cn\\u202e1\"]\n", `f.yaml:2: hosts[0]: "cn\u202e1" is not a host name`},
		{etcd + "bmc:\n  hosts:\n    \"cn\\n1\": {endpoint: https://bmc, username: u, password_env: X}\n", `f.yaml:3: bmc.hosts: "cn\n1" is not a host name`},
		{etcd + "libvirt:\n  hosts: {\"cn 1\": \"qemu+tcp://x/system\"}\n", `f.yaml:3: libvirt.hosts: "cn 1" is not a host name`},
		{etcd + "prometheus:\n  url: http://p\n  host_map: {node1: \"cn/1\"}\n", `f.yaml:4: prometheus.host_map: "cn/1" is not a host name`},
		{etcd + "prometheus:\n  url: http://p\n  timeout: -1s\n", "f.yaml:4: prometheus.timeout: must not be negative"},
		{etcd + "nova:\n  call_timeout: -1s\n", "f.yaml:3: nova.call_timeout: must not be negative"},
		{etcd + "libvirt:\n  uri: qemu+tls://{host}/system\n  call_timeout: -2s\n", "f.yaml:4: libvirt.call_timeout: must not be negative"},
		{etcd + "bmc:\n  check_interval: -1m\n  template: {endpoint: \"https://{host}\", username: u, password_env: X}\n", "f.yaml:3: bmc.check_interval"},
		{"etcd:\n  endpoints: [http://a:1]\n  settle: -1s\n", "f.yaml:3: etcd.settle: must not be negative"},
		{etcd + "webhooks:\n  - url: \"ftp://oncall.example/hook\"\n", `f.yaml:3: webhooks[0]: url "ftp://oncall.example/hook": want http(s)`},
		{etcd + "webhooks:\n  - url: \"javascript:alert(1)\"\n", "f.yaml:3: webhooks[0]: url"},
		{"etcd:\n  endpoints: [ftp://a:1]\n", "f.yaml:2: etcd.endpoints[0]"},
		{etcd + "bmc:\n  template: {endpoint: \"ftp://{host}\", username: u, password_env: X}\n", "f.yaml:3: bmc.template.endpoint"},
		{etcd + "audit:\n  signing_key_file: /k\n  public_keys: [AAAA]\n", `f.yaml:4: audit.public_keys: [0]: not a base64 ed25519 public key (32 bytes): "AAAA"`},
		{etcd + "audit:\n  public_keys: [" + testPub + "]\n", "f.yaml:2: audit.signing_key_file: required"},
		{etcd + "audit:\n  signing_key_file: /k\n", "f.yaml:2: audit.public_keys: required"},
		{etcd + "record:\n  max_files: 3\n", "f.yaml:2: record.dir: required"},
		{etcd + "record:\n  dir: /r\n  max_file_mb: -1\n", "f.yaml:4: record.max_file_mb: want 1 to"},
		{etcd + "record:\n  dir: /r\n  max_files: -2\n", "f.yaml:4: record.max_files: want 1 to 10000"},
		{etcd + "record:\n  dir: /r\n  max_size: 1\n", "f.yaml:4: field max_size not found"},
		{etcd + "tracing:\n  protocol: grpc\n", "f.yaml:2: tracing.endpoint: required"},
		{etcd + "tracing:\n  endpoint: http://otel:4318\n", `f.yaml:3: tracing.endpoint: "http://otel:4318": want host:port`},
		{etcd + "tracing:\n  endpoint: otel:4318\n  protocol: zipkin\n", `f.yaml:4: tracing.protocol: "zipkin": want http or grpc`},
		{etcd + "tracing:\n  endpoint: otel:4318\n  insecure: true\n  ca_file: /ca.pem\n", "f.yaml:5: tracing.ca_file: set with insecure"},
		{etcd + "tracing:\n  endpoint: otel:4318\n  sample_ratio: 1.5\n", "f.yaml:4: tracing.sample_ratio: want 0 to 1"},
		{etcd + "tracing:\n  endpoint: otel:4318\n  headers: {a: b}\n", "f.yaml:4: field headers not found"},
		{etcd + "alerts:\n  host_label: node\n", "f.yaml:2: alerts.map: required"},
		{etcd + "alerts:\n  map:\n    HostStealHigh: {signal: cpu_stolen, value: 3}\n", `f.yaml:4: alerts.map.HostStealHigh.signal: "cpu_stolen": not one of the nine`},
		{etcd + "alerts:\n  map:\n    HostStealHigh: {signal: cpu_steal_pct}\n", "f.yaml:4: alerts.map.HostStealHigh.value: give exactly one of value and value_from"},
		{etcd + "alerts:\n  map:\n    HostStealHigh:\n      signal: cpu_steal_pct\n      value_from: header:x\n", `f.yaml:6: alerts.map.HostStealHigh.value_from: "header:x": want annotation:NAME or label:NAME`},
		{etcd + "alerts:\n  map:\n    NodeDown:\n      weight: 3\n", "f.yaml:5: alerts.map.NodeDown.weight: want a number in (0,1]"},
		{etcd + "alerts:\n  map:\n    NodeDown: {weight: 1, signal: cpu_steal_pct}\n", "f.yaml:4: alerts.map.NodeDown.weight: signal and weight exclude"},
		{etcd + "alerts:\n  map:\n    NodeDown: {weigth: 1}\n", "f.yaml:4: field weigth not found"},
		{etcd + "alerts:\n  expire_after: 10ms\n  map: {NodeDown: {weight: 1}}\n", "f.yaml:3: alerts.expire_after: want at least 1s"},
		{etcd + "alerts:\n  host_map: {\"10.0.0.1\": \"cn 1\"}\n  map: {NodeDown: {weight: 1}}\n", `f.yaml:3: alerts.host_map: "cn 1" is not a host name`},
	} {
		_, err := Parse("f.yaml", []byte(c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.yaml, err, c.want)
		}
	}
}

// TestHugeValueMakesAShortError: a 50 MB value is refused with an error
// that quotes at most about 200 bytes of it, in Parse and in Load.
func TestHugeValueMakesAShortError(t *testing.T) {
	huge := strings.Repeat("A", 50<<20)
	for _, y := range []string{
		"etcd: {embedded: {data_dir: /x}}\napi:\n  listen: " + huge + "\n",
		"etcd: {embedded: {data_dir: /x}}\napi:\n  listen: " + huge[:200<<10] + "\n",
		"etcd: {embedded: {data_dir: /x}}\nwebhooks:\n  - url: http://x\n    format: " + huge[:200<<10] + "\n",
		"etcd: {embedded: {data_dir: /x}}\nbmc:\n  hosts:\n    cn1: {endpoint: " + huge[:200<<10] + ", username: u, password_env: X}\n",
	} {
		_, err := Parse("f.yaml", []byte(y))
		if err == nil || len(err.Error()) > 800 {
			t.Errorf("%d bytes of config: an error of %d bytes: %.300v", len(y), len(fmt.Sprint(err)), err)
		}
	}
	p := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(p, []byte("tick: "+huge), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); err == nil || len(err.Error()) > 300 {
		t.Fatalf("a 50 MB file: %.300v", err)
	}
}

func TestShippedExampleParses(t *testing.T) {
	c, err := Load(filepath.Join("..", "..", "deploy", "fenced.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Nova == nil || c.BMC == nil || c.Libvirt == nil || c.Etcd == nil || len(c.Etcd.Endpoints) != 3 {
		t.Fatalf("the example should show every section: %+v", c)
	}
}

const testPub = "O2onvM62pC1io6jQKm8Nc2UyFXcd4kOmOsBIoYtZ2ik="

// TestAuditSigning: the key file is read, and must be one of public_keys.
func TestAuditSigning(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "audit.key")
	k, err := audit.GenerateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	mine := audit.EncodePublicKey(k.Public().(ed25519.PublicKey))
	for _, c := range []struct{ keys, want string }{
		{"[" + mine + ", " + testPub + "]", ""},
		{"[" + testPub + "]", "audit.public_keys: does not hold the public key of " + key},
	} {
		body := fmt.Sprintf("etcd: {endpoints: [http://a:1]}\naudit:\n  signing_key_file: %s\n  public_keys: %s\n", key, c.keys)
		cfg, err := Parse("f.yaml", []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		s, keys, _, err := cfg.AuditSigning("r1")
		if c.want == "" {
			if err != nil || s == nil || len(keys) != 2 {
				t.Fatalf("%v", err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "f.yaml:") {
			t.Fatalf("%v, want %q", err, c.want)
		}
	}
}

func TestAlertsSection(t *testing.T) {
	c, err := Parse("f.yaml", []byte(`etcd: {embedded: {data_dir: /x}}
alerts:
  host_label: node
  host_map: {"10.0.0.7": cmp-007}
  expire_after: 2m
  map:
    HostStealHigh: {signal: cpu_steal_pct, value_from: "annotation:steal_pct"}
    LibvirtSlow: {signal: libvirt_latency_p95_ms, value: 800}
    NodeExporterDown: {weight: 0.5}
`))
	if err != nil {
		t.Fatal(err)
	}
	a := c.Alerts
	if a.HostLabel != "node" || a.HostMap["10.0.0.7"] != "cmp-007" || a.ExpireAfter != 2*time.Minute || len(a.Map) != 3 ||
		a.Map["HostStealHigh"].ValueFrom != "annotation:steal_pct" || *a.Map["LibvirtSlow"].Value != 800 || a.Map["NodeExporterDown"].Weight != 0.5 {
		t.Fatalf("%+v", a)
	}
}
