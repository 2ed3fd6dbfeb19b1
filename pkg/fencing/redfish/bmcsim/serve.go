package bmcsim

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"strconv"
	"strings"
	"time"
)

// ParseFault reads "KIND[=VALUE]": hang, slow=DUR, conflict409, fail5xx=N,
// never-off, auth-fail.
func ParseFault(s string, f *Faults) error {
	kind, val, _ := strings.Cut(s, "=")
	switch kind {
	case "hang":
		f.Hang = true
	case "slow":
		d, err := time.ParseDuration(val)
		if err != nil {
			return fmt.Errorf("fault slow=%q: want a duration (slow=3s)", val)
		}
		f.Slow = d
	case "conflict409":
		f.Conflict409 = true
	case "fail5xx":
		n, err := strconv.Atoi(val)
		if err != nil || n < 1 {
			return fmt.Errorf("fault fail5xx=%q: want a count (fail5xx=3)", val)
		}
		f.Fail5xx = n
	case "never-off":
		f.NeverOff = true
	case "auth-fail":
		f.AuthFail = true
	default:
		return fmt.Errorf("unknown fault %q (want hang, slow=DUR, conflict409, fail5xx=N, never-off, auth-fail)", kind)
	}
	return nil
}

// SelfSigned makes a TLS certificate for 127.0.0.1 and localhost.
func SelfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "fenced bmcsim"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(365 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// ParseFaults reads a comma-separated list of KIND[=VALUE] (ParseFault);
// an empty list is no fault.
func ParseFaults(list string) (Faults, error) {
	var f Faults
	for _, spec := range strings.Split(list, ",") {
		if spec = strings.TrimSpace(spec); spec == "" {
			continue
		}
		if err := ParseFault(spec, &f); err != nil {
			return Faults{}, err
		}
	}
	return f, nil
}

// String is the faults as ParseFaults reads them ("" when none).
func (f Faults) String() string {
	var out []string
	if f.Hang {
		out = append(out, "hang")
	}
	if f.Slow > 0 {
		out = append(out, "slow="+f.Slow.String())
	}
	if f.Conflict409 {
		out = append(out, "conflict409")
	}
	if f.Fail5xx > 0 {
		out = append(out, "fail5xx="+strconv.Itoa(f.Fail5xx))
	}
	if f.NeverOff {
		out = append(out, "never-off")
	}
	if f.AuthFail {
		out = append(out, "auth-fail")
	}
	return strings.Join(out, ",")
}
