# fenced — make targets. `make test` is what CI runs (via .ci/run).
GO        ?= go
BIN       := bin/fenced
PKGS      := ./cmd/... ./pkg/... ./internal/...
# what `fenced version` and fenced_build_info report (internal/buildinfo)
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo unknown)
COMMIT    ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS   := -X github.com/fencedhq/fenced/internal/buildinfo.version=$(VERSION) -X github.com/fencedhq/fenced/internal/buildinfo.commit=$(COMMIT)
INTEG     := ./integration/...

.PHONY: all build package test unit integration deps demo bench saturation detection chaos fuzz lint clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/fenced

## package: the Debian package DIST/fenced_<version>_<arch>.deb, built by cmd/fenced-package (nfpm
## as a Go library): the binary, a minimal /etc/fenced/fenced.yaml, the policy in observe mode, the
## hardened systemd unit, the alert rules, the docs (docs/operations.md, "Packaging")
DIST      ?= dist
package: build
	$(GO) run ./cmd/fenced-package --version "$(VERSION)" --binary $(BIN) --out $(DIST)

## deps: Debian packages the tests need (apt-get; skipped when present) and Go modules (also those of
## integration/otelcol, the OpenTelemetry Collector the tracing tests build: a module of its own)
deps:
	bash integration/install-deps.sh
	$(GO) mod download
	cd integration/otelcol && $(GO) mod download

## test: everything CI runs — lint, unit tests, integration tests against real daemons
test: deps lint unit integration

unit:
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

# Integration packages start real daemons; run them one package at a time.
integration:
	@pkgs=$$($(GO) list $(INTEG) 2>/dev/null); \
	if [ -z "$$pkgs" ]; then echo "integration: no packages yet"; else $(GO) test -count=1 -p 1 -timeout 25m $$pkgs; fi

demo: build
	$(BIN) run --dev

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./pkg/signals/
	$(GO) run ./bench/scale -hosts 10000 -ticks 30

## saturation: the B.4 lab (about eleven minutes; writes docs/saturation.md and .png)
saturation: deps
	FENCED_SATURATION=1 $(GO) test -count=1 -v -timeout 20m ./integration/saturation/

## detection: detection and recovery against Nova's defaults and Masakari, five trials each (integration/detection; 55–60 minutes)
detection: deps
	FENCED_DETECTION_TRIALS=5 $(GO) test -count=1 -v -timeout 90m ./integration/detection/

## chaos: the full chaos suite (integration/chaos): 100 kill -9 trials of the leader, then a stopped
## leader, a pause across a kill, etcd partition and quorum loss, BMC faults, blind hosts, Nova down
## (about 55 minutes; figures in docs/reliability.md). `make test` runs its short variant.
chaos: deps
	FENCED_CHAOS_TRIALS=100 $(GO) test -count=1 -v -timeout 90m ./integration/chaos/

## fuzz: each fuzz target for FUZZTIME (30 s), one after another. Minimising
## a new input is capped (Go's default is a minute, more than the whole run).
FUZZTIME ?= 30s
FUZZFLAGS = -run '^$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s
fuzz:
	$(GO) test $(FUZZFLAGS) -fuzz '^FuzzParse$$' ./pkg/policy/
	$(GO) test $(FUZZFLAGS) -fuzz '^FuzzConfigParse$$' ./pkg/config/
	$(GO) test $(FUZZFLAGS) -fuzz '^FuzzReader$$' ./pkg/trace/
	$(GO) test $(FUZZFLAGS) -fuzz '^FuzzWriteBodies$$' ./pkg/api/
	$(GO) test $(FUZZFLAGS) -fuzz '^FuzzBMCResponses$$' ./pkg/fencing/redfish/

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go') 2>/dev/null); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS) $$($(GO) list $(INTEG) 2>/dev/null)

clean:
	rm -rf bin $(DIST)
