package nova

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/gophercloud/gophercloud/v2"
)

func envMap(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestAuthFromEnvLikeTheCLI(t *testing.T) {
	ao, eo, _, err := authOptions(Config{Getenv: envMap(map[string]string{
		"OS_AUTH_URL": "http://k:5000/v3", "OS_USERNAME": "admin", "OS_PASSWORD": "pw", "OS_PROJECT_NAME": "admin",
		"OS_USER_DOMAIN_NAME": "Users", "OS_PROJECT_DOMAIN_NAME": "Projects", "OS_REGION_NAME": "R2", "OS_INTERFACE": "internal"})})
	if err != nil {
		t.Fatal(err)
	}
	if ao.DomainName != "Users" || ao.Scope == nil || ao.Scope.ProjectName != "admin" || ao.Scope.DomainName != "Projects" {
		t.Fatalf("auth %+v scope %+v", ao, ao.Scope)
	}
	if eo.Region != "R2" || eo.Availability != gophercloud.AvailabilityInternal {
		t.Fatalf("endpoint %+v", eo)
	}
	_, eo, _, _ = authOptions(Config{Region: "R3", Interface: "admin", Getenv: envMap(map[string]string{"OS_AUTH_URL": "http://k/v3", "OS_REGION_NAME": "R2"})})
	if eo.Region != "R3" || eo.Availability != gophercloud.AvailabilityAdmin {
		t.Fatalf("overrides: %+v", eo)
	}
	if _, _, _, err := authOptions(Config{Getenv: envMap(nil)}); !errors.Is(err, ErrNoCredentials) {
		t.Fatalf("no env: %v", err)
	}
}

func TestAuthFromCloudsYAML(t *testing.T) {
	p := filepath.Join(t.TempDir(), "clouds.yaml")
	if err := os.WriteFile(p, []byte(`clouds:
  lab:
    region_name: RegionLab
    interface: internal
    auth:
      auth_url: http://k:5000/v3
      username: fenced
      password: secret
      project_name: ops
      user_domain_name: Default
      project_domain_name: Default
`), 0o600); err != nil {
		t.Fatal(err)
	}
	ao, eo, _, err := authOptions(Config{Getenv: envMap(map[string]string{"OS_CLOUD": "lab", "OS_CLIENT_CONFIG_FILE": p})})
	if err != nil {
		t.Fatal(err)
	}
	if ao.Username != "fenced" || ao.IdentityEndpoint != "http://k:5000/v3" || eo.Region != "RegionLab" || eo.Availability != gophercloud.AvailabilityInternal {
		t.Fatalf("auth %+v endpoint %+v", ao, eo)
	}
	_, _, _, err = authOptions(Config{Cloud: "nope", Getenv: envMap(map[string]string{"OS_CLIENT_CONFIG_FILE": p})})
	if err == nil {
		t.Fatal("unknown cloud accepted")
	}
}
