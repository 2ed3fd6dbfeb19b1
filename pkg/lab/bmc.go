package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/fencedhq/fenced/pkg/fencing/redfish"
	"github.com/fencedhq/fenced/pkg/fencing/redfish/bmcsim"
	"github.com/fencedhq/fenced/pkg/playbook"
)

// ServeBMC serves a Redfish BMC simulator for the lab hosts on loopback and
// returns the gofish fencer that drives it: --dev fences through real
// Redfish. A reset the BMC accepts reboots the simulated host. The fencer's
// collectors go on reg (nil: none).
func (w *World) ServeBMC(ctx context.Context, hosts []string, delay time.Duration, log zerolog.Logger, reg prometheus.Registerer) (playbook.PowerFencer, func(), error) {
	var b [12]byte
	_, _ = rand.Read(b[:])
	pw := hex.EncodeToString(b[:])
	sim := bmcsim.New("fenced", pw, delay, hosts...)
	sim.OnReset = func(host, rt string) {
		switch rt {
		case "On", "ForceOn":
			_ = w.PowerOn(ctx, host)
		case "ForceOff", "GracefulShutdown", "PushPowerButton":
			_ = w.PowerOff(ctx, host)
		default:
			_ = w.PowerCycle(ctx, host)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	srv := &http.Server{Handler: sim.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	targets := map[string]redfish.Target{}
	for _, h := range hosts {
		targets[h] = redfish.Target{Host: h, Endpoint: "http://" + ln.Addr().String(), SystemID: h, Username: "fenced", Password: pw}
	}
	f, err := redfish.New(redfish.Config{Targets: targets, Poll: 250 * time.Millisecond, Log: log, Metrics: reg})
	if err != nil {
		srv.Close()
		return nil, nil, err
	}
	return f, func() { srv.Close() }, nil
}
