package lease

import (
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/fencedhq/fenced/internal/capool"
)

// ClientConfig is how to reach a production etcd cluster.
type ClientConfig struct {
	Endpoints   []string
	DialTimeout time.Duration // default 5 s
	CertFile    string        // client certificate (TLS)
	KeyFile     string
	CAFile      string
	Username    string // etcd auth
	Password    string // never logged
}

// Connect opens a client.
func Connect(c ClientConfig) (*clientv3.Client, error) {
	if len(c.Endpoints) == 0 {
		return nil, errors.New("lease: no etcd endpoints")
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = 5 * time.Second
	}
	cfg := clientv3.Config{Endpoints: c.Endpoints, DialTimeout: c.DialTimeout, Username: c.Username, Password: c.Password,
		Logger: zap.NewNop(), DialKeepAliveTime: 2 * time.Second, DialKeepAliveTimeout: 2 * time.Second}
	if c.CertFile != "" || c.CAFile != "" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if c.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("lease: etcd client certificate: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		if c.CAFile != "" {
			pool, err := capool.Read(c.CAFile)
			if err != nil {
				return nil, fmt.Errorf("lease: etcd CA: %w", err)
			}
			tc.RootCAs = pool
		}
		cfg.TLS = tc
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("lease: connect %v: %w", c.Endpoints, err)
	}
	return cli, nil
}
