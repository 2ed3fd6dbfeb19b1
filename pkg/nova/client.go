package nova

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/fencedhq/fenced/internal/obs"
	"github.com/fencedhq/fenced/pkg/clock"
)

// Client talks to one Nova (and its placement). Safe for concurrent use.
type Client struct {
	cfg       Config
	compute   *gophercloud.ServiceClient
	placement *gophercloud.ServiceClient
	// image is glance v2, when the catalog has it (the evacuable filter's
	// image property); nil otherwise.
	image *gophercloud.ServiceClient
	clk   clock.Clock
	log   zerolog.Logger
	calls *prometheus.HistogramVec
	tr    trace.Tracer
	// badHosts are Nova host names already warned about (services.go)
	badHosts sync.Map

	mu sync.Mutex
	// own holds, per service UUID, the updated_at values fenced's own PUTs
	// produced; hb the last genuine heartbeat seen per service.
	own map[string][]time.Time
	hb  map[string]time.Time
}

func newClient(cfg Config, compute *gophercloud.ServiceClient) *Client {
	cfg.defaults()
	calls, err := newCallMetrics(cfg.Metrics)
	if err != nil { // a programming error: the calls go on, uncounted
		cfg.Logger.Error().Err(err).Str("component", "nova").Msg("nova metrics not registered")
	}
	return &Client{cfg: cfg, compute: compute, clk: cfg.Clock, log: cfg.Logger, calls: calls, tr: obs.Tracer(cfg.Tracer),
		own: map[string][]time.Time{}, hb: map[string]time.Time{}}
}

// NewWithServiceClients builds a Client over already authenticated service
// clients; compute.Microversion must be set (placement may be nil). For tests
// and for callers that share one provider.
func NewWithServiceClients(cfg Config, compute, placement *gophercloud.ServiceClient) *Client {
	c := newClient(cfg, compute)
	c.placement = placement
	return c
}

// Retryable reports whether err is worth another attempt: a timeout, a
// connection error, 409 (Nova's "service is busy"), 429 or a 5xx.
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	var ue gophercloud.ErrUnexpectedResponseCode
	if errors.As(err, &ue) {
		switch {
		case ue.Actual == http.StatusConflict, ue.Actual == http.StatusTooManyRequests, ue.Actual >= 500:
			return true
		}
	}
	return false
}

// call runs fn with a per-attempt timeout. Idempotent calls are retried with
// doubling backoff while the error is Retryable and ctx allows.
func (c *Client) call(ctx context.Context, action, host string, idempotent bool, fn func(context.Context) error) error {
	attempts := 1
	if idempotent {
		attempts = c.cfg.Attempts
	}
	wait := c.cfg.Backoff
	var err error
	for i := 0; i < attempts; i++ {
		if i > 0 {
			select {
			case <-ctx.Done():
				return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
			case <-c.clk.After(wait):
			}
			wait *= 2
		}
		start := c.clk.Now()
		// the action's request id, sent to Nova as its global request id
		cctx, ids := withRequestIDs(ctx, obs.From(ctx).RequestID)
		cctx, call := obs.Start(cctx, c.tr, c.clk, "nova."+action, obs.Fields{Component: "nova", RequestID: ids.global, HostID: host, Action: action}, trace.SpanKindClient)
		actx, cancel := context.WithTimeout(cctx, c.cfg.CallTimeout)
		err = fn(actx)
		cancel()
		c.observeCall(action, c.clk.Now().Sub(start), err)
		ev := c.log.Debug()
		if err != nil {
			ev = c.log.Warn()
		}
		nova := ids.answered()
		call.Set(attribute.String("openstack.request_id", nova), attribute.Int("attempt", i+1))
		call.End(ev, outcome(err), err).Str("openstack_request_id", nova).Msg("nova call")
		if err == nil || !Retryable(err) || ctx.Err() != nil {
			return err
		}
	}
	return err
}

func outcome(err error) string {
	if err == nil {
		return "ok"
	}
	return "error"
}
