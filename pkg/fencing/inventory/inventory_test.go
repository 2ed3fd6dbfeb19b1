package inventory

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestParse(t *testing.T) {
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	data := []byte(`bmcs:
  cmp-017:
    endpoint: https://10.0.0.117
    system_id: System.Embedded.1
    username: fenced
    password_env: BMC_PW
  cmp-018:
    endpoint: https://10.0.0.118:8443
    username: fenced
    password_file: ` + pwFile + `
    insecure: true
`)
	ts, err := Parse("inv.yaml", data, env(map[string]string{"BMC_PW": "from-env"}))
	if err != nil {
		t.Fatal(err)
	}
	if ts["cmp-017"].Password != "from-env" || ts["cmp-018"].Password != "from-file" || !ts["cmp-018"].Insecure || ts["cmp-017"].SystemID != "System.Embedded.1" {
		t.Fatalf("%+v", ts)
	}
}

func TestErrorsNameTheFieldAndNeverTheSecret(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"bmcs:\n  h:\n    endpoint: 10.0.0.1\n    username: u\n    password_env: P\n", "inv.yaml:3: bmcs.h.endpoint"},
		{"bmcs:\n  h:\n    endpoint: https://b\n    password_env: P\n", "bmcs.h.username: required"},
		{"bmcs:\n  h:\n    endpoint: https://b\n    username: u\n", "exactly one of password_env and password_file"},
		{"bmcs:\n  h:\n    endpoint: https://b\n    username: u\n    password_env: UNSET\n", "bmcs.h.password_env: environment variable UNSET"},
		{"bmcs:\n  h:\n    endpoint: https://b\n    username: u\n    password: hunter2\n", "inv.yaml:5: field password not found"},
		{"bmcs:\n  h:\n    endpoint: https://b\n    username: u\n    password_env: P\n    insecure: true\n    ca_file: x\n", "insecure and ca_file exclude"},
		{"bmcs: {}\n", "no BMCs"},
	} {
		_, err := Parse("inv.yaml", []byte(c.yaml), env(map[string]string{"P": "hunter2"}))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.yaml, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("secret in error: %v", err)
		}
	}
}
