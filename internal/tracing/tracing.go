// Package tracing builds the OpenTelemetry tracer provider of a replica
// from the config's tracing: section: spans go in batches over OTLP (HTTP
// or gRPC) to a receiver such as the OpenTelemetry Collector.
package tracing

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/credentials"

	"github.com/fencedhq/fenced/internal/buildinfo"
	"github.com/fencedhq/fenced/internal/capool"
	"github.com/fencedhq/fenced/pkg/config"
)

// Provider is a replica's tracer provider; Shutdown flushes what is
// buffered (bounded by ctx).
type Provider struct {
	trace.TracerProvider
	sdk *sdktrace.TracerProvider
}

// Shutdown exports the spans still buffered and stops the exporter.
func (p *Provider) Shutdown(ctx context.Context) error {
	if p == nil || p.sdk == nil {
		return nil
	}
	return p.sdk.Shutdown(ctx)
}

// ForceFlush exports the spans buffered now.
func (p *Provider) ForceFlush(ctx context.Context) error {
	if p == nil || p.sdk == nil {
		return nil
	}
	return p.sdk.ForceFlush(ctx)
}

// New builds the provider t describes for replica id. Nothing is sent
// until a span ends; an unreachable receiver costs dropped spans and an
// error in the log of the exporter, never a stalled tick (spans are
// exported in batches off the callers' goroutines).
func New(ctx context.Context, t *config.Tracing, replica string) (*Provider, error) {
	if t == nil {
		return nil, errors.New("tracing: no tracing section")
	}
	timeout := t.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	var tlsCfg *tls.Config
	if !t.Insecure {
		tlsCfg = &tls.Config{MinVersion: tls.VersionTLS12}
		if t.CAFile != "" {
			pool, err := capool.Read(t.CAFile)
			if err != nil {
				return nil, fmt.Errorf("tracing: ca_file: %w", err)
			}
			tlsCfg.RootCAs = pool
		}
	}
	var client otlptrace.Client
	switch t.Protocol {
	case "grpc":
		opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(t.Endpoint), otlptracegrpc.WithTimeout(timeout)}
		if tlsCfg == nil {
			opts = append(opts, otlptracegrpc.WithInsecure())
		} else {
			opts = append(opts, otlptracegrpc.WithTLSCredentials(credentials.NewTLS(tlsCfg)))
		}
		client = otlptracegrpc.NewClient(opts...)
	default:
		opts := []otlptracehttp.Option{otlptracehttp.WithEndpoint(t.Endpoint), otlptracehttp.WithTimeout(timeout)}
		if tlsCfg == nil {
			opts = append(opts, otlptracehttp.WithInsecure())
		} else {
			opts = append(opts, otlptracehttp.WithTLSClientConfig(tlsCfg))
		}
		client = otlptracehttp.NewClient(opts...)
	}
	exp, err := otlptrace.New(ctx, client)
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter for %s: %w", t.Endpoint, err)
	}
	name := t.ServiceName
	if name == "" {
		name = "fenced"
	}
	res := resource.NewSchemaless(attribute.String("service.name", name), attribute.String("service.version", buildinfo.Get().Version),
		attribute.String("service.instance.id", replica))
	ratio := 1.0
	if t.SampleRatio != nil {
		ratio = *t.SampleRatio
	}
	sdk := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(time.Second)), sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))))
	return &Provider{TracerProvider: sdk, sdk: sdk}, nil
}
