// Package capool reads a PEM bundle of CA certificates: the one way fenced
// trusts a CA file (etcd, BMCs, the API's clients, the OTLP receiver).
package capool

import (
	"crypto/x509"
	"fmt"
	"os"
)

// Read returns the certificates of the PEM file at path as a pool; a file
// that cannot be read or holds no certificate is an error naming it.
func Read(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificate in it", path)
	}
	return pool, nil
}
