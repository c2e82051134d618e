// Program pyagent-otelcol is a minimal OpenTelemetry Collector distribution for pyagent's
// tests and local runs. Written the way the OpenTelemetry Collector Builder (ocb) generates
// main.go (cmd/builder templates at v0.161.0), without the Windows-service variant.
package main

import (
	"os"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	envprovider "go.opentelemetry.io/collector/confmap/provider/envprovider"
	fileprovider "go.opentelemetry.io/collector/confmap/provider/fileprovider"
	yamlprovider "go.opentelemetry.io/collector/confmap/provider/yamlprovider"
	"go.opentelemetry.io/collector/otelcol"
)

// Keep in step with go.mod: every collector module is at one release (v0.161.0 / v1.67.0).
const (
	coreVersion   = "v0.161.0"
	stableVersion = "v1.67.0"
)

func main() {
	info := component.BuildInfo{
		Command:     "pyagent-otelcol",
		Description: "pyagent's minimal OpenTelemetry Collector (otlp receiver; batch processor; file and debug exporters)",
		Version:     coreVersion[1:],
	}

	set := otelcol.CollectorSettings{
		BuildInfo: info,
		Factories: components,
		ConfigProviderSettings: otelcol.ConfigProviderSettings{
			ResolverSettings: confmap.ResolverSettings{
				ProviderFactories: []confmap.ProviderFactory{
					envprovider.NewFactory(),
					fileprovider.NewFactory(),
					yamlprovider.NewFactory(),
				},
			},
		},
		ProviderModules: map[string]string{
			envprovider.NewFactory().Create(confmap.ProviderSettings{}).Scheme():  "go.opentelemetry.io/collector/confmap/provider/envprovider " + stableVersion,
			fileprovider.NewFactory().Create(confmap.ProviderSettings{}).Scheme(): "go.opentelemetry.io/collector/confmap/provider/fileprovider " + stableVersion,
			yamlprovider.NewFactory().Create(confmap.ProviderSettings{}).Scheme(): "go.opentelemetry.io/collector/confmap/provider/yamlprovider " + stableVersion,
		},
		ConverterModules: []string{},
	}

	if err := otelcol.NewCommand(set).Execute(); err != nil {
		// cobra has already printed the error.
		os.Exit(1)
	}
}
