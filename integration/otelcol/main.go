// Program fenced-otelcol is a minimal OpenTelemetry Collector for fenced's
// integration tests: the OTLP receiver (gRPC and HTTP) and the file exporter,
// which writes what it receives as OTLP JSON lines. It is what the Collector's
// builder (ocb) would generate for that component list, written by hand so
// that the tests need no generator; integration/internal/otelcol builds and
// runs it.
package main

import (
	"os"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/fileprovider"
	"go.opentelemetry.io/collector/otelcol"
)

func main() {
	info := component.BuildInfo{
		Command:     "fenced-otelcol",
		Description: "OpenTelemetry Collector for fenced's integration tests (OTLP in, OTLP JSON file out)",
		Version:     "0.161.0",
	}
	set := otelcol.CollectorSettings{
		BuildInfo: info,
		Factories: components,
		ConfigProviderSettings: otelcol.ConfigProviderSettings{
			ResolverSettings: confmap.ResolverSettings{
				ProviderFactories: []confmap.ProviderFactory{fileprovider.NewFactory()},
				DefaultScheme:     "file",
			},
		},
	}
	// cobra has printed the error already.
	if err := otelcol.NewCommand(set).Execute(); err != nil {
		os.Exit(1)
	}
}
