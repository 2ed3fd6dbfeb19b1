package lease

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Embedded is an in-process single-member etcd: the default for `fenced run
// --dev`, `--etcd embedded` and unit tests.
type Embedded struct {
	etcd      *embed.Etcd
	Endpoints []string
}

func freeURL() (url.URL, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return url.URL{}, err
	}
	defer l.Close()
	return url.URL{Scheme: "http", Host: l.Addr().String()}, nil
}

// StartEmbedded starts etcd with its data in dir, on free loopback ports (or
// on clientAddr, "host:port", when given), and waits until it serves.
func StartEmbedded(ctx context.Context, dir, clientAddr string) (*Embedded, error) {
	cfg := embed.NewConfig()
	cfg.Name = "fenced"
	cfg.Dir = dir
	cu, err := freeURL()
	if err != nil {
		return nil, fmt.Errorf("lease: embedded etcd: %w", err)
	}
	if clientAddr != "" {
		cu = url.URL{Scheme: "http", Host: clientAddr}
	}
	pu, err := freeURL()
	if err != nil {
		return nil, fmt.Errorf("lease: embedded etcd: %w", err)
	}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{cu}, []url.URL{cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{pu}, []url.URL{pu}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	cfg.LogLevel = "error"
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("lease: embedded etcd in %s: %w", dir, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		e.Close()
		return nil, fmt.Errorf("lease: embedded etcd in %s: not ready within 30 s", dir)
	case <-ctx.Done():
		e.Close()
		return nil, ctx.Err()
	}
	return &Embedded{etcd: e, Endpoints: []string{cu.String()}}, nil
}

// Close stops etcd.
func (e *Embedded) Close() { e.etcd.Close() }

// Open connects to the etcd a replica uses: the cluster of c.Endpoints, or,
// when embeddedDir is set, an in-process etcd with its data there (one
// replica). close stops both the client and an embedded etcd.
func Open(ctx context.Context, c ClientConfig, embeddedDir string) (cli *clientv3.Client, close func(), err error) {
	stop := func() {}
	if embeddedDir != "" {
		if len(c.Endpoints) > 0 {
			return nil, nil, fmt.Errorf("lease: an embedded etcd and endpoints exclude each other")
		}
		e, err := StartEmbedded(ctx, embeddedDir, "")
		if err != nil {
			return nil, nil, err
		}
		c.Endpoints, stop = e.Endpoints, e.Close
	}
	cli, err = Connect(c)
	if err != nil {
		stop()
		return nil, nil, err
	}
	return cli, func() { cli.Close(); stop() }, nil
}
