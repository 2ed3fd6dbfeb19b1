package main

import (
	"context"
	"fmt"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/service/telemetry"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// telemetryConfig is the service's own telemetry section
// (service::telemetry): only the log level. The collector's own metrics and
// traces are not produced, so it opens no port of its own beyond the
// receiver's.
type telemetryConfig struct {
	Logs struct {
		Level zapcore.Level `mapstructure:"level"`
	} `mapstructure:"logs"`
}

// newTelemetryFactory logs JSON to stderr and produces no metrics and no
// traces. It stands in for otelconftelemetry, the builder's default, whose
// resource detectors (Kubernetes' client-go, the cloud providers') would add
// about a hundred packages and a quarter to a cold build.
func newTelemetryFactory() telemetry.Factory {
	return telemetry.NewFactory(
		func() component.Config {
			cfg := &telemetryConfig{}
			cfg.Logs.Level = zapcore.InfoLevel
			return cfg
		},
		telemetry.WithCreateLogger(func(_ context.Context, set telemetry.LoggerSettings, c component.Config) (*zap.Logger, component.ShutdownFunc, error) {
			cfg, ok := c.(*telemetryConfig)
			if !ok {
				return nil, nil, fmt.Errorf("telemetry config is %T, want *telemetryConfig", c)
			}
			zc := zap.NewProductionConfig()
			zc.Level = zap.NewAtomicLevelAt(cfg.Logs.Level)
			zc.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
			zc.Sampling = nil
			build := set.BuildZapLogger
			if build == nil {
				build = zap.Config.Build
			}
			logger, err := build(zc)
			if err != nil {
				return nil, nil, err
			}
			return logger, func(context.Context) error { _ = logger.Sync(); return nil }, nil
		}),
	)
}
