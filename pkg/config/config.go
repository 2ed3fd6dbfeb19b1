// Package config loads the configuration file of `fenced run --config` (the
// part that is about this deployment; thresholds live in the policy).
// Loading is strict: unknown keys are errors and every error names the file,
// line and field. Parse checks the file alone; Resolve reads what the file
// points to (credentials in environment variables and files) and expands
// the per-host templates.
//
// deploy/fenced.yaml is the commented example; docs/production.md explains
// every section.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/fencedhq/fenced/internal/hostname"
	"github.com/fencedhq/fenced/pkg/alerts"
	"github.com/fencedhq/fenced/pkg/audit"
	"github.com/fencedhq/fenced/pkg/fencing/inventory"
	"github.com/fencedhq/fenced/pkg/fencing/redfish"
	"github.com/fencedhq/fenced/pkg/groups"
	"github.com/fencedhq/fenced/pkg/playbook"
	"github.com/fencedhq/fenced/pkg/signals"
	"github.com/fencedhq/fenced/pkg/yamlfile"
)

// Config is the file.
type Config struct {
	Policy     string        `yaml:"policy"` // policy file; default: built-in
	Tick       time.Duration `yaml:"tick"`   // default 10s
	Hosts      []string      `yaml:"hosts"`  // hosts known up front (Nova's computes are added)
	API        API           `yaml:"api"`
	Etcd       *Etcd         `yaml:"etcd"`
	Nova       *Nova         `yaml:"nova"`
	BMC        *BMC          `yaml:"bmc"`
	Libvirt    *Libvirt      `yaml:"libvirt"`
	Prometheus *Prometheus   `yaml:"prometheus"`
	Webhooks   []Webhook     `yaml:"webhooks"`
	Audit      *Audit        `yaml:"audit"`
	Record     *Record       `yaml:"record"`
	Tracing    *Tracing      `yaml:"tracing"`
	Alerts     *Alerts       `yaml:"alerts"`
	Groups     []Group       `yaml:"groups"`

	file string
	doc  *yamlfile.Doc
}

// API is the HTTP API, /metrics and the status page.
type API struct {
	Listen     string `yaml:"listen"`      // default 127.0.0.1:8480
	TLSCert    string `yaml:"tls_cert"`    // serve over HTTPS with this certificate
	TLSKey     string `yaml:"tls_key"`     //
	TokensFile string `yaml:"tokens_file"` // lines "ROLE NAME TOKEN"; required unless listen is loopback
	// PublicURL is where people reach the console (behind a proxy, the
	// proxy's URL): webhooks link each host's incident view under it.
	PublicURL string `yaml:"public_url"`
}

// Etcd is where leadership, host records, intents and the audit chain live.
type Etcd struct {
	Endpoints    []string      `yaml:"endpoints"`
	CAFile       string        `yaml:"ca_file"`
	CertFile     string        `yaml:"cert_file"`
	KeyFile      string        `yaml:"key_file"`
	Username     string        `yaml:"username"`
	PasswordEnv  string        `yaml:"password_env"`
	PasswordFile string        `yaml:"password_file"`
	Prefix       string        `yaml:"prefix"` // default /fenced/
	TTL          time.Duration `yaml:"ttl"`    // session TTL: how fast a dead leader is replaced; default 5s
	Settle       time.Duration `yaml:"settle"` // a new leader's wait for an old leader's in-flight action; default 60s
	// Embedded runs an etcd inside this process: one replica, no HA.
	Embedded *Embedded `yaml:"embedded"`
}

// Embedded is an in-process etcd.
type Embedded struct {
	DataDir string `yaml:"data_dir"`
}

// Nova configures the compute API (auth as the openstack CLI: clouds.yaml or OS_*).
type Nova struct {
	Cloud          string        `yaml:"cloud"` // clouds.yaml entry (default: OS_CLOUD, then OS_* variables)
	Region         string        `yaml:"region"`
	Interface      string        `yaml:"interface"`       // public, internal, admin
	ReportInterval time.Duration `yaml:"report_interval"` // Nova's report_interval (default 10s)
	CallTimeout    time.Duration `yaml:"call_timeout"`    // one HTTP attempt (default 10s)
	// DisableTimeout bounds a disable of a compute Nova still thinks is up
	// (nova-api calls the compute synchronously; default 5s).
	DisableTimeout time.Duration `yaml:"disable_timeout"`
	// Evacuable, when set, evacuates only the servers it matches.
	Evacuable *Evacuable `yaml:"evacuable"`
	// EvacuateParallel bounds concurrent evacuations off one host (default 4).
	EvacuateParallel int `yaml:"evacuate_parallel"`
	// GroupRefresh is how often the membership of groups defined by an
	// aggregate or an availability zone is read again (default 5m).
	GroupRefresh time.Duration `yaml:"group_refresh"`
}

// Evacuable is the evacuable filter: any one match makes a server
// evacuable. Each is "key=value".
type Evacuable struct {
	FlavorExtraSpec   string `yaml:"flavor_extra_spec"`
	ImageProperty     string `yaml:"image_property"`
	AggregateMetadata string `yaml:"aggregate_metadata"`
}

// check validates each set field (key=value); nil is valid.
func (e *Evacuable) check(doc *yamlfile.Doc, field string) error {
	if e == nil {
		return nil
	}
	for _, f := range []struct{ name, v string }{{"flavor_extra_spec", e.FlavorExtraSpec}, {"image_property", e.ImageProperty}, {"aggregate_metadata", e.AggregateMetadata}} {
		if k, _, ok := strings.Cut(f.v, "="); f.v != "" && (!ok || k == "") {
			return doc.Errorf(field+"."+f.name, "%s: want key=value, e.g. evacuable=true", yamlfile.Quote(f.v))
		}
	}
	return nil
}

// BMC is the Redfish inventory: a template for every host and per-host
// entries that replace it.
type BMC struct {
	CheckInterval time.Duration              `yaml:"check_interval"` // fence-path health check; default 5m
	Template      *inventory.Entry           `yaml:"template"`       // {host} is replaced in endpoint and system_id
	Hosts         map[string]inventory.Entry `yaml:"hosts"`
}

// Libvirt configures the management-path probes.
type Libvirt struct {
	URI         string            `yaml:"uri"`          // template, e.g. qemu+tls://{host}/system
	Hosts       map[string]string `yaml:"hosts"`        // per-host URIs that replace the template
	CallTimeout time.Duration     `yaml:"call_timeout"` // default 2s
}

// Prometheus configures the PromQL collector.
type Prometheus struct {
	URL       string            `yaml:"url"`
	HostLabel string            `yaml:"host_label"`
	HostMap   map[string]string `yaml:"host_map"`
	Timeout   time.Duration     `yaml:"timeout"`
	Queries   map[string]string `yaml:"queries"` // signal → PromQL; replaces the defaults when set
}

// Audit signs the audit chain (docs/audit.md): each replica signs every
// record it appends with its own ed25519 key, kept in a file and never in
// etcd; verification trusts the public keys listed here.
type Audit struct {
	SigningKeyFile string   `yaml:"signing_key_file"` // this replica's key (fenced audit keygen), mode 0600
	PublicKeys     []string `yaml:"public_keys"`      // every replica's public key, base64
	// WitnessFile keeps the newest record this replica wrote or verified,
	// so that a tail cut behind it is noticed after a restart too.
	WitnessFile string `yaml:"witness_file"`
}

// Record keeps what this replica observes while it leads (its samples,
// Nova's answers, the faults it saw) as traces for `fenced simulate`, in
// rotating files: at most max_files of at most max_file_mb each; the oldest
// is removed (docs/operations.md, Replay).
type Record struct {
	Dir       string `yaml:"dir"`
	MaxFileMB int    `yaml:"max_file_mb"` // default 64
	MaxFiles  int    `yaml:"max_files"`   // default 8
}

// Tracing exports OpenTelemetry spans over OTLP: one per tick, one trace
// per host incident, one per external call (docs/operations.md, Tracing).
// Off when the section is absent.
type Tracing struct {
	Endpoint    string        `yaml:"endpoint"`     // host:port of the OTLP receiver (required)
	Protocol    string        `yaml:"protocol"`     // http (default; port 4318) or grpc (4317)
	Insecure    bool          `yaml:"insecure"`     // plain HTTP or gRPC, no TLS
	CAFile      string        `yaml:"ca_file"`      // CA of the receiver's certificate (default: the system's)
	SampleRatio *float64      `yaml:"sample_ratio"` // share of traces kept, 0 to 1 (default 1)
	Timeout     time.Duration `yaml:"timeout"`      // one export (default 10s)
	ServiceName string        `yaml:"service_name"` // service.name of the spans (default fenced)
}

// Alerts takes Alertmanager's webhook notifications on POST /api/v1/alerts
// (docs/groups.md, Inbound alerts): each alert with a host label becomes,
// as map says by its alertname, a value of a signal or a corroboration
// weight for that host. Alerts alone never take a host past warn. Off
// when the section is absent.
type Alerts struct {
	HostLabel   string                 `yaml:"host_label"`   // default host
	HostMap     map[string]string      `yaml:"host_map"`     // label value → host name
	ExpireAfter time.Duration          `yaml:"expire_after"` // a firing alert not repeated this long is dropped (default 5m)
	Map         map[string]alerts.Rule `yaml:"map"`          // alertname → signal and value, or weight
}

// Group is one group of hosts (docs/groups.md): defined by exactly one of
// aggregate, availability_zone and hosts, with its own guard on automatic
// fencing on top of the fleet-wide storm guard. Hosts in no group are in
// the implicit group "default".
//
// Per-group policy overrides (thresholds, mode, after_fence, on_timeout …)
// are to be added here as their own fields.
type Group struct {
	Name             string   `yaml:"name"`
	Aggregate        string   `yaml:"aggregate"`         // a Nova host aggregate
	AvailabilityZone string   `yaml:"availability_zone"` // a Nova availability zone
	Hosts            []string `yaml:"hosts"`             // host names and globs, e.g. [cmp-0*, cn1]
	// MinHealthy: a count ("3") or a percentage ("60%") of the group's hosts
	// that must stay healthy (verdict normal) for an automatic fence in it.
	MinHealthy    string `yaml:"min_healthy"`
	MaxConcurrent int    `yaml:"max_concurrent"` // hosts of the group fenced or rebooting at once (unset: the fleet's limit only)
	// ReservedHosts are spares (host names, no globs) kept disabled in Nova
	// until a fenced host of the group finds no normal host with headroom
	// (docs/groups.md, Reserved hosts). A reserved host is in this group
	// whatever aggregate, zone or hosts define it.
	ReservedHosts []string `yaml:"reserved_hosts"`
	// Evacuable replaces nova.evacuable for the group's hosts (absent: the
	// fleet's; present and empty: every server).
	Evacuable *Evacuable `yaml:"evacuable"`
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
	data, err := yamlfile.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes and validates config data.
func Parse(name string, data []byte) (*Config, error) {
	c := &Config{Tick: 10 * time.Second, API: API{Listen: "127.0.0.1:8480"}, file: name}
	doc, err := yamlfile.Decode(name, data, c)
	if err != nil {
		return nil, err
	}
	c.doc = doc
	if c.Tick < time.Second {
		return nil, doc.Errorf("tick", "must be at least 1s, have %s", c.Tick)
	}
	for i, h := range c.Hosts {
		if err := validHost(h); err != nil {
			return nil, doc.Errorf(fmt.Sprintf("hosts[%d]", i), "%v", err)
		}
	}
	if err := c.checkAPI(doc); err != nil {
		return nil, err
	}
	if err := c.checkEtcd(doc); err != nil {
		return nil, err
	}
	if n := c.Nova; n != nil {
		for f, d := range map[string]time.Duration{"report_interval": n.ReportInterval, "call_timeout": n.CallTimeout, "disable_timeout": n.DisableTimeout} {
			if d < 0 {
				return nil, doc.Errorf("nova."+f, "must not be negative")
			}
		}
		if n.GroupRefresh != 0 && n.GroupRefresh < time.Second {
			return nil, doc.Errorf("nova.group_refresh", "must be at least 1s (unset: %s), have %s", groups.DefaultInterval, n.GroupRefresh)
		}
		if n.EvacuateParallel < 0 {
			return nil, doc.Errorf("nova.evacuate_parallel", "must not be negative")
		}
		if err := n.Evacuable.check(doc, "nova.evacuable"); err != nil {
			return nil, err
		}
	}
	if err := c.checkBMC(doc); err != nil {
		return nil, err
	}
	if l := c.Libvirt; l != nil {
		if l.URI == "" && len(l.Hosts) == 0 {
			return nil, doc.Errorf("libvirt", "give uri (a template with {host}) or hosts")
		}
		if l.URI != "" && (!strings.Contains(l.URI, "://") || !strings.Contains(l.URI, "{host}")) {
			return nil, doc.Errorf("libvirt.uri", "%s: want a libvirt URI template with {host}, e.g. qemu+tls://{host}/system", yamlfile.Quote(l.URI))
		}
		for _, h := range sortedKeys(l.Hosts) {
			u := l.Hosts[h]
			if err := validHost(h); err != nil {
				return nil, doc.Errorf("libvirt.hosts", "%v", err)
			}
			if !strings.Contains(u, "://") {
				return nil, doc.Errorf("libvirt.hosts."+h, "%s is not a libvirt URI", yamlfile.Quote(u))
			}
		}
		if l.CallTimeout < 0 {
			return nil, doc.Errorf("libvirt.call_timeout", "must not be negative")
		}
	}
	if p := c.Prometheus; p != nil {
		if p.URL == "" {
			return nil, doc.Errorf("prometheus.url", "required")
		}
		if u, err := url.Parse(p.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, doc.Errorf("prometheus.url", "%s: want http(s)://host:port", yamlfile.Quote(p.URL))
		}
		if p.Timeout < 0 {
			return nil, doc.Errorf("prometheus.timeout", "must not be negative")
		}
		for _, label := range sortedKeys(p.HostMap) {
			if err := validHost(p.HostMap[label]); err != nil {
				return nil, doc.Errorf("prometheus.host_map", "%v", err)
			}
		}
		for sig := range p.Queries {
			if !signals.Name(sig).Valid() {
				return nil, doc.Errorf("prometheus.queries."+sig, "unknown signal")
			}
		}
	}
	if a := c.Audit; a != nil {
		if _, err := audit.ParsePublicKeys(a.PublicKeys); err != nil {
			return nil, doc.Errorf("audit.public_keys", "%v", err)
		}
		if a.SigningKeyFile == "" {
			return nil, doc.Errorf("audit.signing_key_file", "required: a replica that checks signatures must sign what it appends (fenced audit keygen --out FILE)")
		}
		if len(a.PublicKeys) == 0 {
			return nil, doc.Errorf("audit.public_keys", "required: the public key of every replica's signing_key_file (fenced audit keygen prints it)")
		}
	}
	if r := c.Record; r != nil {
		if r.Dir == "" {
			return nil, doc.Errorf("record.dir", "required: the directory the trace files go to")
		}
		if r.MaxFileMB < 0 || r.MaxFileMB > 1<<20 {
			return nil, doc.Errorf("record.max_file_mb", "want 1 to %d MB (unset: 64), have %d", 1<<20, r.MaxFileMB)
		}
		if r.MaxFiles < 0 || r.MaxFiles > 10000 {
			return nil, doc.Errorf("record.max_files", "want 1 to 10000 (unset: 8), have %d", r.MaxFiles)
		}
	}
	if err := c.checkTracing(doc); err != nil {
		return nil, err
	}
	if err := c.checkAlerts(doc); err != nil {
		return nil, err
	}
	if err := c.checkGroups(doc); err != nil {
		return nil, err
	}
	for i, w := range c.Webhooks {
		f := fmt.Sprintf("webhooks[%d]", i)
		u, err := url.Parse(w.URL)
		if w.URL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, doc.Errorf(f, "url %s: want http(s)://host/path", yamlfile.Quote(w.URL))
		}
		switch w.Format {
		case "", "generic", "slack", "pagerduty":
		default:
			return nil, doc.Errorf(f, "format %s: want generic, slack or pagerduty", yamlfile.Quote(w.Format))
		}
	}
	return c, nil
}

// validHost is the host-name rule of the API and traces (pkg
// internal/hostname): letters, digits, '.', '-', '_'.
func validHost(h string) error { return hostname.Check(h) }

func (c *Config) checkTracing(doc *yamlfile.Doc) error {
	t := c.Tracing
	if t == nil {
		return nil
	}
	if t.Endpoint == "" {
		return doc.Errorf("tracing.endpoint", "required: host:port of the OTLP receiver, e.g. 127.0.0.1:4318")
	}
	if host, port, err := net.SplitHostPort(t.Endpoint); err != nil || host == "" || port == "" {
		return doc.Errorf("tracing.endpoint", "%s: want host:port (no scheme), e.g. otel-collector.example:4318", yamlfile.Quote(t.Endpoint))
	}
	switch t.Protocol {
	case "", "http", "grpc":
	default:
		return doc.Errorf("tracing.protocol", "%s: want http or grpc", yamlfile.Quote(t.Protocol))
	}
	if t.Insecure && t.CAFile != "" {
		return doc.Errorf("tracing.ca_file", "set with insecure: true; a CA is used only over TLS")
	}
	if t.SampleRatio != nil && (*t.SampleRatio < 0 || *t.SampleRatio > 1) {
		return doc.Errorf("tracing.sample_ratio", "want 0 to 1, have %g", *t.SampleRatio)
	}
	if t.Timeout < 0 {
		return doc.Errorf("tracing.timeout", "must not be negative")
	}
	return nil
}

func (c *Config) checkAlerts(doc *yamlfile.Doc) error {
	a := c.Alerts
	if a == nil {
		return nil
	}
	if len(a.Map) == 0 {
		return doc.Errorf("alerts.map", "required: alert names and what each says, e.g. HostStealHigh: {signal: cpu_steal_pct, value_from: annotation:steal_pct}")
	}
	if a.ExpireAfter < 0 || (a.ExpireAfter > 0 && a.ExpireAfter < time.Second) {
		return doc.Errorf("alerts.expire_after", "want at least 1s (unset: %s), have %s", alerts.DefaultExpireAfter, a.ExpireAfter)
	}
	for _, label := range sortedKeys(a.HostMap) {
		if err := validHost(a.HostMap[label]); err != nil {
			return doc.Errorf("alerts.host_map", "%v", err)
		}
	}
	names := make([]string, 0, len(a.Map))
	for n := range a.Map {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if strings.TrimSpace(n) == "" {
			return doc.Errorf("alerts.map", "an empty alert name")
		}
		if err := a.Map[n].Check(); err != nil {
			var fe *alerts.FieldError
			if errors.As(err, &fe) {
				return doc.Errorf("alerts.map."+n+"."+fe.Field, "%s", fe.Msg)
			}
			return doc.Errorf("alerts.map."+n, "%v", err)
		}
	}
	return nil
}

func (c *Config) checkGroups(doc *yamlfile.Doc) error {
	seen := map[string]int{}
	for i, g := range c.Groups {
		f := fmt.Sprintf("groups[%d]", i)
		switch {
		case strings.TrimSpace(g.Name) == "":
			return doc.Errorf(f+".name", "required: the group's name, as fenced hosts --group and fenced pause --group take it")
		case g.Name == playbook.DefaultGroup:
			return doc.Errorf(f+".name", "%q is the implicit group of hosts in no group; choose another name", g.Name)
		}
		if err := hostname.Check(g.Name); err != nil {
			return doc.Errorf(f+".name", "a group name is letters, digits, '.', '-' and '_': %v", err)
		}
		if j, dup := seen[g.Name]; dup {
			return doc.Errorf(f+".name", "%s is also the name of groups[%d]", g.Name, j)
		}
		seen[g.Name] = i
		n := 0
		for _, set := range []bool{g.Aggregate != "", g.AvailabilityZone != "", len(g.Hosts) > 0} {
			if set {
				n++
			}
		}
		if n != 1 {
			return doc.Errorf(f, "group %s: give exactly one of aggregate, availability_zone and hosts (have %d)", g.Name, n)
		}
		if (g.Aggregate != "" || g.AvailabilityZone != "") && c.Nova == nil {
			field := f + ".aggregate"
			if g.AvailabilityZone != "" {
				field = f + ".availability_zone"
			}
			return doc.Errorf(field, "group %s: membership from Nova needs the nova: section", g.Name)
		}
		for j, h := range g.Hosts {
			if err := groups.CheckGlob(h); err != nil {
				return doc.Errorf(fmt.Sprintf("%s.hosts[%d]", f, j), "%v", err)
			}
		}
		if _, err := playbook.ParseMinHealthy(g.MinHealthy); err != nil {
			return doc.Errorf(f+".min_healthy", "%v", err)
		}
		if g.MaxConcurrent < 0 {
			return doc.Errorf(f+".max_concurrent", "must not be negative (unset: the fleet-wide storm_guard.max_concurrent only)")
		}
		if g.Evacuable != nil && c.Nova == nil {
			return doc.Errorf(f+".evacuable", "group %s: the evacuable filter is Nova's: it needs the nova: section", g.Name)
		}
		if err := g.Evacuable.check(doc, f+".evacuable"); err != nil {
			return err
		}
		if len(g.ReservedHosts) > 0 && c.Nova == nil {
			return doc.Errorf(f+".reserved_hosts", "group %s: reserved hosts are kept disabled in Nova: they need the nova: section", g.Name)
		}
	}
	if a, b, entry, ok := groups.ExplicitOverlap(c.GroupDefs()); ok {
		return doc.Errorf(fmt.Sprintf("groups[%d].hosts", b), "%s overlaps groups[%d] (%s): a host is in at most one group",
			yamlfile.Quote(entry), a, c.Groups[a].Name)
	}
	return c.checkReserved(doc)
}

// checkReserved checks the reserved hosts: host names (no globs), each
// reserved by one group only, and no plain member of another group (named
// in its hosts: or matched by one of its globs). Whether each is a host
// fenced knows (in hosts:, or a Nova compute) is checked when a replica
// starts (Config.CheckReserved).
func (c *Config) checkReserved(doc *yamlfile.Doc) error {
	by := map[string]int{}
	defs := c.GroupDefs()
	for i, g := range c.Groups {
		for j, h := range g.ReservedHosts {
			f := fmt.Sprintf("groups[%d].reserved_hosts[%d]", i, j)
			if err := validHost(h); err != nil {
				return doc.Errorf(f, "a reserved host is a host name (no globs): %v", err)
			}
			if k, dup := by[h]; dup {
				if k == i {
					return doc.Errorf(f, "%s is listed twice", h)
				}
				return doc.Errorf(f, "%s is also a reserved host of groups[%d] (%s): a host is reserved by one group", h, k, c.Groups[k].Name)
			}
			by[h] = i
			for k, d := range defs {
				if k != i && d.MatchesExplicit(h) {
					return doc.Errorf(f, "%s is also a member of groups[%d] (%s) by its hosts: a reserved host is only in the group that reserves it", h, k, c.Groups[k].Name)
				}
			}
		}
	}
	return nil
}

// CheckReserved checks, when a replica starts, that every reserved host is
// a host it knows (hosts: or a Nova compute).
func (c *Config) CheckReserved(known []string) error {
	have := map[string]bool{}
	for _, h := range known {
		have[h] = true
	}
	for i, g := range c.Groups {
		for j, h := range g.ReservedHosts {
			if !have[h] {
				return c.Errorf(fmt.Sprintf("groups[%d].reserved_hosts[%d]", i, j), "%s is not a known host (neither in hosts: nor a compute service in Nova)", h)
			}
		}
	}
	return nil
}

// GroupNames are the names of the groups, in file order.
func (c *Config) GroupNames() []string {
	out := make([]string, 0, len(c.Groups))
	for _, g := range c.Groups {
		out = append(out, g.Name)
	}
	return out
}

// GroupDefs are the groups as pkg/groups takes them (call after Parse:
// min_healthy is valid).
func (c *Config) GroupDefs() []groups.Def {
	out := make([]groups.Def, 0, len(c.Groups))
	for _, g := range c.Groups {
		m, _ := playbook.ParseMinHealthy(g.MinHealthy)
		out = append(out, groups.Def{Name: g.Name, Aggregate: g.Aggregate, AvailabilityZone: g.AvailabilityZone, Hosts: g.Hosts,
			Guard: playbook.GroupGuard{MinHealthy: m, MaxConcurrent: g.MaxConcurrent}, Reserved: g.ReservedHosts})
	}
	return out
}

func (c *Config) checkAPI(doc *yamlfile.Doc) error {
	a := c.API
	if _, _, err := net.SplitHostPort(a.Listen); err != nil {
		return doc.Errorf("api.listen", "%s is not host:port", yamlfile.Quote(a.Listen))
	}
	if (a.TLSCert == "") != (a.TLSKey == "") {
		return doc.Errorf("api.tls_cert", "tls_cert and tls_key go together")
	}
	if a.TokensFile == "" && !c.Loopback() {
		return doc.Errorf("api.tokens_file", "required when listen is not a loopback address")
	}
	if a.PublicURL != "" {
		u, err := url.Parse(a.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return doc.Errorf("api.public_url", "%s: want the console's base URL, http(s)://host[:port][/path], without query, fragment or credentials", yamlfile.Quote(a.PublicURL))
		}
	}
	return nil
}

func (c *Config) checkEtcd(doc *yamlfile.Doc) error {
	e := c.Etcd
	if e == nil {
		return doc.Errorf("etcd", "required: endpoints of an etcd cluster, or embedded: {data_dir: …} for a single replica")
	}
	switch {
	case e.Embedded != nil && len(e.Endpoints) > 0:
		return doc.Errorf("etcd.embedded", "embedded and endpoints exclude each other")
	case e.Embedded != nil:
		if e.Embedded.DataDir == "" {
			return doc.Errorf("etcd.embedded.data_dir", "required: the embedded etcd keeps host records, approvals and the audit chain there")
		}
		for f, v := range map[string]string{"ca_file": e.CAFile, "cert_file": e.CertFile, "key_file": e.KeyFile, "username": e.Username} {
			if v != "" {
				return doc.Errorf("etcd."+f, "does not apply to an embedded etcd")
			}
		}
	case len(e.Endpoints) == 0:
		return doc.Errorf("etcd.endpoints", "list the cluster's client URLs, or use embedded: {data_dir: …}")
	}
	for i, ep := range e.Endpoints {
		u, err := url.Parse(ep)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return doc.Errorf(fmt.Sprintf("etcd.endpoints[%d]", i), "%s: want http(s)://host:port", yamlfile.Quote(ep))
		}
	}
	if (e.CertFile == "") != (e.KeyFile == "") {
		return doc.Errorf("etcd.cert_file", "cert_file and key_file go together")
	}
	if e.Username != "" && (e.PasswordEnv == "") == (e.PasswordFile == "") {
		return doc.Errorf("etcd.username", "give exactly one of password_env and password_file")
	}
	if e.Username == "" && (e.PasswordEnv != "" || e.PasswordFile != "") {
		return doc.Errorf("etcd.username", "required with a password")
	}
	if e.Prefix == "" {
		e.Prefix = "/fenced/"
	}
	if !strings.HasPrefix(e.Prefix, "/") || !strings.HasSuffix(e.Prefix, "/") {
		return doc.Errorf("etcd.prefix", "%s: want /name/", yamlfile.Quote(e.Prefix))
	}
	if e.TTL == 0 {
		e.TTL = 5 * time.Second
	}
	if e.TTL < time.Second {
		return doc.Errorf("etcd.ttl", "must be at least 1s, have %s", e.TTL)
	}
	if e.Settle == 0 {
		e.Settle = time.Minute
	}
	if e.Settle < 0 {
		return doc.Errorf("etcd.settle", "must not be negative")
	}
	return nil
}

func (c *Config) checkBMC(doc *yamlfile.Doc) error {
	b := c.BMC
	if b == nil {
		return nil
	}
	if b.Template == nil && len(b.Hosts) == 0 {
		return doc.Errorf("bmc", "give a template (with {host}) or per-host entries under hosts")
	}
	if b.CheckInterval == 0 {
		b.CheckInterval = 5 * time.Minute
	}
	if b.CheckInterval < time.Second {
		return doc.Errorf("bmc.check_interval", "must be at least 1s, have %s", b.CheckInterval)
	}
	if t := b.Template; t != nil {
		if !strings.Contains(t.Endpoint+t.SystemID, "{host}") {
			return doc.Errorf("bmc.template", "endpoint or system_id must contain {host}: one template serves every host")
		}
		if err := inventory.Check(expand(*t, "host"), nil); err != nil {
			return doc.Errorf("bmc.template."+fieldOf(err), "%v", msgOf(err))
		}
	}
	for h, e := range b.Hosts {
		if err := validHost(h); err != nil {
			return doc.Errorf("bmc.hosts", "%v", err)
		}
		if err := inventory.Check(e, nil); err != nil {
			return doc.Errorf("bmc.hosts."+h+"."+fieldOf(err), "%v", msgOf(err))
		}
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func fieldOf(err error) string {
	if fe, ok := err.(*inventory.FieldError); ok {
		return fe.Field
	}
	return ""
}

func msgOf(err error) error {
	if fe, ok := err.(*inventory.FieldError); ok {
		return fe.Err
	}
	return err
}

func expand(e inventory.Entry, host string) inventory.Entry {
	e.Endpoint = strings.ReplaceAll(e.Endpoint, "{host}", host)
	e.SystemID = strings.ReplaceAll(e.SystemID, "{host}", host)
	return e
}

// Loopback reports whether the API listens on loopback only.
func (c *Config) Loopback() bool {
	host, _, err := net.SplitHostPort(c.API.Listen)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}

// File is where the config came from.
func (c *Config) File() string { return c.file }

// Errorf is an error at a field of the file (with its line).
func (c *Config) Errorf(field, format string, a ...any) error {
	if c.doc == nil {
		return fmt.Errorf("%s: %s: %s", c.file, field, fmt.Sprintf(format, a...))
	}
	return c.doc.Errorf(field, format, a...)
}

// BMCTargets resolves the BMC of every host (per-host entry, else the
// template), with credentials from the environment or files. Hosts without
// an entry and no template are left out.
func (c *Config) BMCTargets(hosts []string, getenv func(string) string) (map[string]redfish.Target, error) {
	out := map[string]redfish.Target{}
	if c.BMC == nil {
		return out, nil
	}
	all := map[string]bool{}
	for _, h := range hosts {
		all[h] = true
	}
	for h := range c.BMC.Hosts {
		all[h] = true
	}
	names := make([]string, 0, len(all))
	for h := range all {
		names = append(names, h)
	}
	sort.Strings(names)
	for _, h := range names {
		e, field := c.BMC.Hosts[h], "bmc.hosts."+h
		if _, ok := c.BMC.Hosts[h]; !ok {
			if c.BMC.Template == nil {
				continue
			}
			e, field = expand(*c.BMC.Template, h), "bmc.template"
		}
		t, err := inventory.Resolve(h, e, getenv)
		if err != nil {
			return nil, c.Errorf(field+"."+fieldOf(err), "%s: %v", h, msgOf(err))
		}
		out[h] = t
	}
	return out, nil
}

// LibvirtURIs is the libvirt URI of every host (per-host entry, else the
// template).
func (c *Config) LibvirtURIs(hosts []string) map[string]string {
	out := map[string]string{}
	if c.Libvirt == nil {
		return out
	}
	for h, u := range c.Libvirt.Hosts {
		out[h] = u
	}
	if c.Libvirt.URI != "" {
		for _, h := range hosts {
			if _, ok := out[h]; !ok {
				out[h] = strings.ReplaceAll(c.Libvirt.URI, "{host}", h)
			}
		}
	}
	return out
}

// AuditSigning loads the audit section: this replica's signer (its key
// must be one of public_keys), the trusted keys and the witness. Without an
// audit section all three are nil: the chain is hash-linked, unsigned.
func (c *Config) AuditSigning(replica string) (*audit.Signer, audit.Keyring, *audit.Witness, error) {
	a := c.Audit
	if a == nil {
		return nil, nil, nil, nil
	}
	keys, err := audit.ParsePublicKeys(a.PublicKeys)
	if err != nil {
		return nil, nil, nil, c.Errorf("audit.public_keys", "%v", err)
	}
	key, err := audit.LoadKey(a.SigningKeyFile)
	if err != nil {
		return nil, nil, nil, c.Errorf("audit.signing_key_file", "%v", err)
	}
	s := audit.NewSigner(key, replica)
	if _, ok := keys[s.ID()]; !ok {
		return nil, nil, nil, c.Errorf("audit.public_keys", "does not hold the public key of %s (%s): add it, or the records this replica signs will not verify",
			a.SigningKeyFile, audit.EncodePublicKey(s.Public()))
	}
	w, err := audit.NewWitness(a.WitnessFile)
	if err != nil {
		return nil, nil, nil, c.Errorf("audit.witness_file", "%v", err)
	}
	return s, keys, w, nil
}

// EtcdPassword reads the etcd password from its variable or file.
func (c *Config) EtcdPassword(getenv func(string) string) (string, error) {
	e := c.Etcd
	switch {
	case e == nil || e.Username == "":
		return "", nil
	case e.PasswordEnv != "":
		if pw := getenv(e.PasswordEnv); pw != "" {
			return pw, nil
		}
		return "", c.Errorf("etcd.password_env", "environment variable %s is empty or unset", e.PasswordEnv)
	default:
		b, err := os.ReadFile(e.PasswordFile)
		if err != nil {
			return "", c.Errorf("etcd.password_file", "%v", err)
		}
		if pw := strings.TrimSpace(string(b)); pw != "" {
			return pw, nil
		}
		return "", c.Errorf("etcd.password_file", "%s is empty", e.PasswordFile)
	}
}
