// Package inventory loads the BMC inventory: which BMC fences which host,
// and where its credentials come from. Credentials are never in the file:
// it names an environment variable or a file holding them. Loading is strict
// and errors name the file, line and field; secrets never appear in errors
// or logs.
//
//	bmcs:
//	  cmp-017:
//	    endpoint: https://10.0.0.117
//	    system_id: System.Embedded.1
//	    username: fenced
//	    password_env: BMC_PASSWORD          # or password_file: /etc/fenced/bmc-pass
//	    ca_file: /etc/fenced/bmc-ca.pem     # or insecure: true (logged as a warning)
//	    basic_auth: false
package inventory

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"sort"
	"strings"

	"github.com/fencedhq/fenced/pkg/fencing/redfish"
	"github.com/fencedhq/fenced/pkg/yamlfile"
)

// Entry is one host's BMC in the file.
type Entry struct {
	Endpoint     string `yaml:"endpoint"`
	SystemID     string `yaml:"system_id"`
	Username     string `yaml:"username"`
	PasswordEnv  string `yaml:"password_env"`
	PasswordFile string `yaml:"password_file"`
	CAFile       string `yaml:"ca_file"`
	Insecure     bool   `yaml:"insecure"`
	BasicAuth    bool   `yaml:"basic_auth"`
}

// File is the inventory file.
type File struct {
	BMCs map[string]Entry `yaml:"bmcs"`
}

// Load reads an inventory and resolves credentials into redfish targets.
func Load(path string) (map[string]redfish.Target, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	return Parse(path, data, os.Getenv)
}

// Parse decodes inventory data; getenv resolves password_env.
func Parse(name string, data []byte, getenv func(string) string) (map[string]redfish.Target, error) {
	var f File
	doc, err := yamlfile.Decode(name, data, &f)
	if err != nil {
		return nil, err
	}
	if len(f.BMCs) == 0 {
		return nil, doc.Errorf("bmcs", "no BMCs listed")
	}
	hosts := make([]string, 0, len(f.BMCs))
	for h := range f.BMCs {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	out := map[string]redfish.Target{}
	for _, h := range hosts {
		t, err := Resolve(h, f.BMCs[h], getenv)
		if err != nil {
			var fe *FieldError
			if errors.As(err, &fe) {
				field := "bmcs." + h
				if fe.Field != "" {
					field += "." + fe.Field
				}
				return nil, doc.Errorf(field, "%v", fe.Err)
			}
			return nil, err
		}
		out[h] = t
	}
	return out, nil
}

// FieldError is a problem with one field of an entry ("" for the entry).
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Err.Error()
	}
	return e.Field + ": " + e.Err.Error()
}

func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(field, format string, a ...any) error {
	return &FieldError{Field: field, Err: fmt.Errorf(format, a...)}
}

// Check validates an entry without reading its credentials (getenv nil) or
// with them.
func Check(e Entry, getenv func(string) string) error {
	u, err := url.Parse(e.Endpoint)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fieldErr("endpoint", "%q: want https://HOST[:PORT]", e.Endpoint)
	}
	if e.Username == "" {
		return fieldErr("username", "required")
	}
	if (e.PasswordEnv == "") == (e.PasswordFile == "") {
		return fieldErr("", "give exactly one of password_env and password_file")
	}
	if e.Insecure && e.CAFile != "" {
		return fieldErr("insecure", "insecure and ca_file exclude each other")
	}
	if getenv != nil {
		_, err := password(e, getenv)
		return err
	}
	return nil
}

func password(e Entry, getenv func(string) string) (string, error) {
	if e.PasswordEnv != "" {
		pw := getenv(e.PasswordEnv)
		if pw == "" {
			return "", fieldErr("password_env", "environment variable %s is empty or unset", e.PasswordEnv)
		}
		return pw, nil
	}
	b, err := os.ReadFile(e.PasswordFile)
	if err != nil {
		return "", fieldErr("password_file", "%v", err)
	}
	pw := strings.TrimSpace(string(b))
	if pw == "" {
		return "", fieldErr("password_file", "%s is empty", e.PasswordFile)
	}
	return pw, nil
}

// Resolve checks an entry and reads its credentials into a redfish target.
// Errors are *FieldError and never contain the secret.
func Resolve(host string, e Entry, getenv func(string) string) (redfish.Target, error) {
	if err := Check(e, nil); err != nil {
		return redfish.Target{}, err
	}
	pw, err := password(e, getenv)
	if err != nil {
		return redfish.Target{}, err
	}
	return redfish.Target{Host: host, Endpoint: e.Endpoint, SystemID: e.SystemID, Username: e.Username, Password: pw,
		BasicAuth: e.BasicAuth, Insecure: e.Insecure, CAFile: e.CAFile}, nil
}
