package nova

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/config/clouds"
	"github.com/gophercloud/gophercloud/v2/openstack/utils"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/trace"

	"github.com/fencedhq/fenced/internal/obs"
	"github.com/fencedhq/fenced/pkg/clock"
)

// Microversion bounds. fenced needs 2.53 (service UUIDs, PUT os-services/{id}
// with forced_down). It pins the highest version the server offers up to
// MaxMicroversion, whose semantics (evacuate to STOPPED at 2.95) it handles.
const (
	MinMicroversion = "2.53"
	MaxMicroversion = "2.95"
	// hypervisorMicroversion is the last version whose os-hypervisors still
	// reports vcpus / memory_mb (removed in 2.88).
	hypervisorMicroversion = "2.87"
)

// Config says how to reach Nova. The zero value of every field means its
// default.
type Config struct {
	// Cloud names an entry of clouds.yaml (as OS_CLOUD does). Empty: OS_CLOUD,
	// and without it the OS_* variables.
	Cloud string
	// Region and Interface (public, internal, admin) override clouds.yaml /
	// OS_REGION_NAME / OS_INTERFACE.
	Region    string
	Interface string
	// CallTimeout bounds one HTTP attempt (default 10 s).
	CallTimeout time.Duration
	// Attempts is how many times an idempotent call is tried (default 3).
	Attempts int
	// Backoff is the first wait between attempts, doubled each time (default 500 ms).
	Backoff time.Duration
	// ReportInterval is Nova's report_interval: how often a healthy compute
	// heartbeats (default 10 s, Nova's default).
	ReportInterval time.Duration
	// HeartbeatLagThreshold is the lag above which the heartbeat signal is
	// critical (default 30 s, Appendix B.2).
	HeartbeatLagThreshold time.Duration
	// PollInterval is how often Wait* look at a migration (default 1 s).
	PollInterval time.Duration
	// StartAfterEvacuate starts a server that an evacuation at >= 2.95 left
	// SHUTOFF, when it was ACTIVE before.
	StartAfterEvacuate bool

	Clock  clock.Clock
	Logger zerolog.Logger
	// Getenv reads the environment (default os.Getenv); tests replace it.
	Getenv func(string) string
	// HTTPClient, if set, is used for every request.
	HTTPClient *http.Client
	// Metrics receives the client's collectors (nil: none).
	Metrics prometheus.Registerer
	// Tracer receives a span per call (nil: tracing off).
	Tracer trace.TracerProvider
}

func (c *Config) defaults() {
	if c.CallTimeout <= 0 {
		c.CallTimeout = 10 * time.Second
	}
	if c.Attempts <= 0 {
		c.Attempts = 3
	}
	if c.Backoff <= 0 {
		c.Backoff = 500 * time.Millisecond
	}
	if c.ReportInterval <= 0 {
		c.ReportInterval = 10 * time.Second
	}
	if c.HeartbeatLagThreshold <= 0 {
		c.HeartbeatLagThreshold = 30 * time.Second
	}
	if c.PollInterval <= 0 {
		c.PollInterval = time.Second
	}
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	if c.Getenv == nil {
		c.Getenv = os.Getenv
	}
}

// ErrNoCredentials is returned when neither OS_CLOUD/clouds.yaml nor OS_AUTH_URL is set.
var ErrNoCredentials = errors.New("nova: no credentials: set OS_CLOUD (clouds.yaml) or OS_AUTH_URL and the other OS_* variables")

// authOptions resolves credentials the way the openstack CLI does: a named
// cloud in clouds.yaml wins; otherwise the OS_* variables, including
// OS_USER_DOMAIN_NAME / OS_PROJECT_DOMAIN_NAME, which
// openstack.AuthOptionsFromEnv ignores.
func authOptions(cfg Config) (gophercloud.AuthOptions, gophercloud.EndpointOpts, *tls.Config, error) {
	env := cfg.Getenv
	cloud := cfg.Cloud
	if cloud == "" {
		cloud = env("OS_CLOUD")
	}
	var ao gophercloud.AuthOptions
	var eo gophercloud.EndpointOpts
	var tlsCfg *tls.Config
	if cloud != "" {
		opts := []clouds.ParseOption{clouds.WithCloudName(cloud)}
		if f := env("OS_CLIENT_CONFIG_FILE"); f != "" {
			opts = append(opts, clouds.WithLocations(f))
		}
		var err error
		ao, eo, tlsCfg, err = clouds.Parse(opts...)
		if err != nil {
			return ao, eo, nil, fmt.Errorf("nova: read clouds.yaml cloud %q: %w", cloud, err)
		}
	} else {
		if env("OS_AUTH_URL") == "" {
			return ao, eo, nil, ErrNoCredentials
		}
		ao = gophercloud.AuthOptions{
			IdentityEndpoint:            env("OS_AUTH_URL"),
			Username:                    env("OS_USERNAME"),
			UserID:                      env("OS_USER_ID"),
			Password:                    env("OS_PASSWORD"),
			TokenID:                     env("OS_TOKEN"),
			DomainID:                    first(env("OS_USER_DOMAIN_ID"), env("OS_DOMAIN_ID")),
			DomainName:                  first(env("OS_USER_DOMAIN_NAME"), env("OS_DOMAIN_NAME")),
			ApplicationCredentialID:     env("OS_APPLICATION_CREDENTIAL_ID"),
			ApplicationCredentialName:   env("OS_APPLICATION_CREDENTIAL_NAME"),
			ApplicationCredentialSecret: env("OS_APPLICATION_CREDENTIAL_SECRET"),
		}
		switch {
		case env("OS_SYSTEM_SCOPE") == "all":
			ao.Scope = &gophercloud.AuthScope{System: true}
		case env("OS_PROJECT_ID") != "":
			ao.Scope = &gophercloud.AuthScope{ProjectID: env("OS_PROJECT_ID")}
		case env("OS_PROJECT_NAME") != "":
			ao.Scope = &gophercloud.AuthScope{
				ProjectName: env("OS_PROJECT_NAME"),
				DomainID:    first(env("OS_PROJECT_DOMAIN_ID"), env("OS_DOMAIN_ID")),
				DomainName:  first(env("OS_PROJECT_DOMAIN_NAME"), env("OS_DOMAIN_NAME")),
			}
			if ao.Scope.DomainID == "" && ao.Scope.DomainName == "" {
				ao.Scope.DomainName = "Default"
			}
		}
		if ao.DomainID == "" && ao.DomainName == "" && ao.UserID == "" && ao.ApplicationCredentialID == "" {
			ao.DomainName = "Default"
		}
		eo = gophercloud.EndpointOpts{Region: env("OS_REGION_NAME")}
		eo.Availability = availability(env("OS_INTERFACE"))
	}
	if cfg.Region != "" {
		eo.Region = cfg.Region
	}
	if cfg.Interface != "" {
		eo.Availability = availability(cfg.Interface)
	}
	ao.AllowReauth = true
	return ao, eo, tlsCfg, nil
}

func availability(iface string) gophercloud.Availability {
	switch strings.TrimSuffix(strings.ToLower(iface), "url") {
	case "internal":
		return gophercloud.AvailabilityInternal
	case "admin":
		return gophercloud.AvailabilityAdmin
	default:
		return gophercloud.AvailabilityPublic
	}
}

func first(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// New authenticates, finds the compute and placement endpoints and pins the
// compute microversion.
func New(ctx context.Context, cfg Config) (*Client, error) {
	cfg.defaults()
	ao, eo, tlsCfg, err := authOptions(cfg)
	if err != nil {
		return nil, err
	}
	provider, err := openstack.NewClient(ao.IdentityEndpoint)
	if err != nil {
		return nil, fmt.Errorf("nova: auth URL %q: %w", ao.IdentityEndpoint, err)
	}
	switch {
	case cfg.HTTPClient != nil:
		provider.HTTPClient = *cfg.HTTPClient
	case tlsCfg != nil:
		provider.HTTPClient = http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg}}
	}
	provider.HTTPClient = tracedHTTPClient(provider.HTTPClient)
	actx, cancel := context.WithTimeout(ctx, cfg.CallTimeout*time.Duration(cfg.Attempts))
	defer cancel()
	if err := openstack.Authenticate(actx, provider, ao); err != nil {
		return nil, fmt.Errorf("nova: authenticate at %s: %w", ao.IdentityEndpoint, err)
	}
	compute, err := openstack.NewComputeV2(provider, eo)
	if err != nil {
		return nil, fmt.Errorf("nova: find compute endpoint (region %q): %w", eo.Region, err)
	}
	c := newClient(cfg, compute)
	if pl, err := openstack.NewPlacementV1(provider, eo); err == nil {
		pl.Microversion = "1.0"
		c.placement = pl
	}
	if im, err := openstack.NewImageV2(provider, eo); err == nil {
		c.image = im
	}
	if err := c.negotiate(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// negotiate pins the compute microversion: the highest the server supports,
// at most MaxMicroversion, at least MinMicroversion.
func (c *Client) negotiate(ctx context.Context) error {
	var mv utils.SupportedMicroversions
	err := c.call(ctx, "negotiate_microversion", "", true, func(ctx context.Context) error {
		var err error
		mv, err = utils.GetSupportedMicroversions(ctx, c.compute)
		return err
	})
	if err != nil {
		return fmt.Errorf("nova: negotiate compute microversion: %w", err)
	}
	pin, err := pickMicroversion(mv)
	if err != nil {
		return err
	}
	c.compute.Microversion = pin
	obs.Line(ctx, c.log.Info(), obs.Fields{Component: "nova", Action: "negotiate_microversion"}, 0, pin).Msg("compute microversion pinned")
	return nil
}

func pickMicroversion(mv utils.SupportedMicroversions) (string, error) {
	ok, err := mv.IsSupported(MinMicroversion)
	if err != nil || !ok {
		return "", fmt.Errorf("nova: server supports compute %d.%d-%d.%d, fenced needs at least %s", mv.MinMajor, mv.MinMinor, mv.MaxMajor, mv.MaxMinor, MinMicroversion)
	}
	maxMaj, maxMin, _ := utils.ParseMicroversion(MaxMicroversion)
	if mv.MaxMajor > maxMaj || (mv.MaxMajor == maxMaj && mv.MaxMinor > maxMin) {
		return MaxMicroversion, nil
	}
	return fmt.Sprintf("%d.%d", mv.MaxMajor, mv.MaxMinor), nil
}

// Microversion is the pinned compute microversion.
func (c *Client) Microversion() string { return c.compute.Microversion }

// atLeast reports whether the pinned microversion is >= v.
func (c *Client) atLeast(v string) bool {
	a1, a2, err1 := utils.ParseMicroversion(c.compute.Microversion)
	b1, b2, err2 := utils.ParseMicroversion(v)
	if err1 != nil || err2 != nil {
		return false
	}
	return a1 > b1 || (a1 == b1 && a2 >= b2)
}
