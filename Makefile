# Logbook's make targets are the contract: CI runs `make verify` and `make test`
# (see .ci/run). `make` alone lists the targets.

GO    ?= go
GOFMT ?= $(shell $(GO) env GOROOT)/bin/gofmt
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# Tools installed by `go install` land here; put it first so the pinned
# versions win over anything else on PATH.
GOBIN_DIR := $(shell $(GO) env GOPATH)/bin
export PATH := $(GOBIN_DIR):$(PATH)

# Pinned generators and linters. Changing a generator version changes the
# generated code: run `make proto` and commit the result.
PROTOC_VERSION        := 3.21.12
PROTOC_APT_PACKAGES   := protobuf-compiler libprotobuf-dev
PROTOC_GEN_GO_VERSION := v1.36.12
PROTOC_GEN_CONNECT_GO_VERSION := v1.21.1
STATICCHECK_VERSION   := v0.8.2

# Sudo only when not root (CI and the dev machines run as root).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

PROTO_DIR  := proto
PROTO_SRCS  = $(shell find $(PROTO_DIR) -name '*.proto' | LC_ALL=C sort)
PROTOC_CMD  = protoc -I $(PROTO_DIR) --go_out=paths=source_relative:$(1) \
	--connect-go_out=paths=source_relative:$(1) $(PROTO_SRCS)

TEST_TIMEOUT ?= 14m
TEST_FLAGS   ?=
FUZZTIME     ?= 10s
BENCH_FLAGS  ?=

.PHONY: help
help: ## list the targets
	@echo "usage: make TARGET [VAR=value ...]"
	@echo
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo
	@echo "variables: GO=$(GO) FUZZTIME=$(FUZZTIME) BENCH_FLAGS=$(BENCH_FLAGS) TEST_FLAGS=$(TEST_FLAGS)"

.PHONY: run
run: ## run a control plane (logbook serve) with three simulated units, data in ./logbook-dev
	$(GO) build -o bin/logbook ./cmd/logbook
	./bin/logbook dev

.PHONY: demo
demo: ## walk through the embedded event log: append, read and verify
	$(GO) run ./cmd/logbook demo

.PHONY: test
test: ## run every test with the race detector (CI=true makes missing services fail, not skip)
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) $(TEST_FLAGS) ./...

.PHONY: test-crash
test-crash: ## run only the crash test (kill -9 the store under load, check recovery)
	$(GO) test -race -count=1 -v -timeout 10m $(TEST_FLAGS) ./test/crash/

.PHONY: bench
bench: ## run every benchmark scenario (JSON on stdout, table on stderr); BENCH_FLAGS="-scenario append"
	$(GO) run ./test/bench $(BENCH_FLAGS)

.PHONY: bench-quick
bench-quick: ## run the benchmarks in quick mode (append scenario in under a minute)
	$(GO) run ./test/bench -quick $(BENCH_FLAGS)

.PHONY: fuzz
fuzz: ## run each Fuzz target for FUZZTIME (default 10s)
	@found=0; \
	for dir in $$(grep -rl --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]*\(' . | grep -v '/testdata/' | xargs -r -n1 dirname | LC_ALL=C sort -u); do \
	  for name in $$(grep -h -o -E '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go | sed 's/^func //' | LC_ALL=C sort -u); do \
	    found=1; \
	    echo "fuzz $$dir $$name ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$dir; \
	  done; \
	done; \
	if [ $$found = 0 ]; then echo "no Fuzz targets found"; fi

.PHONY: proto
proto: tool-protoc tool-protoc-gen-go tool-protoc-gen-connect-go ## regenerate proto/**/*.pb.go from proto/**/*.proto
	$(call PROTOC_CMD,$(PROTO_DIR))

.PHONY: verify
verify: verify-fmt verify-vet verify-staticcheck verify-tidy verify-proto ## gofmt, go vet, staticcheck, go mod tidy diff, generated code up to date
	@echo "verify: ok"

.PHONY: verify-fmt
verify-fmt:
	@srcs=$$(find . -name '*.go' -not -path './.git/*' -not -path '*/testdata/*' -not -path './vendor/*' \
	         | xargs -r grep -L -E '^// Code generated .* DO NOT EDIT\.$$' || true); \
	files=$$(echo "$$srcs" | xargs -r $(GOFMT) -l); \
	if [ -n "$$files" ]; then echo "gofmt: these files need formatting (run gofmt -w):"; echo "$$files"; exit 1; fi

.PHONY: verify-vet
verify-vet:
	$(GO) vet ./...

.PHONY: verify-staticcheck
verify-staticcheck: tool-staticcheck
	staticcheck ./...

.PHONY: verify-tidy
verify-tidy:
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum are not tidy: run go mod tidy"; exit 1; }

.PHONY: verify-proto
verify-proto: tool-protoc tool-protoc-gen-go tool-protoc-gen-connect-go
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(call PROTOC_CMD,$$tmp); \
	stale=0; \
	for f in $$( { (cd $$tmp && find . -name '*.pb.go' -o -name '*.connect.go'); (cd $(PROTO_DIR) && find . -name '*.pb.go' -o -name '*.connect.go'); } | LC_ALL=C sort -u); do \
	  if [ ! -f "$(PROTO_DIR)/$$f" ]; then echo "missing generated file $(PROTO_DIR)/$${f#./}"; stale=1; \
	  elif [ ! -f "$$tmp/$$f" ]; then echo "generated file $(PROTO_DIR)/$${f#./} has no .proto source"; stale=1; \
	  elif ! diff -u "$(PROTO_DIR)/$$f" "$$tmp/$$f"; then stale=1; fi; \
	done; \
	if [ $$stale = 1 ]; then echo "generated code is out of date: run make proto"; exit 1; fi

.PHONY: tools
tools: tool-protoc tool-protoc-gen-go tool-protoc-gen-connect-go tool-staticcheck ## install the pinned protoc, protoc-gen-go, protoc-gen-connect-go and staticcheck when missing

.PHONY: tool-protoc
tool-protoc:
	@if ! protoc --version 2>/dev/null | grep -qx 'libprotoc $(PROTOC_VERSION)'; then \
	  echo "installing protoc $(PROTOC_VERSION) ($(PROTOC_APT_PACKAGES)) with apt-get"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  $(SUDO) apt-get install -y -q $(PROTOC_APT_PACKAGES) </dev/null \
	    || { $(SUDO) apt-get update -q </dev/null && $(SUDO) apt-get install -y -q $(PROTOC_APT_PACKAGES) </dev/null; }; \
	fi; \
	got=$$(protoc --version 2>/dev/null || echo none); \
	if [ "$$got" != "libprotoc $(PROTOC_VERSION)" ]; then \
	  echo "protoc: have '$$got', want 'libprotoc $(PROTOC_VERSION)' (Debian bookworm's protobuf-compiler)"; exit 1; \
	fi

.PHONY: tool-protoc-gen-go
tool-protoc-gen-go:
	@if [ "$$(protoc-gen-go --version 2>/dev/null)" != "protoc-gen-go $(PROTOC_GEN_GO_VERSION)" ]; then \
	  echo "installing protoc-gen-go $(PROTOC_GEN_GO_VERSION)"; \
	  $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION); \
	fi

.PHONY: tool-protoc-gen-connect-go
tool-protoc-gen-connect-go:
	@if [ "$$(protoc-gen-connect-go --version 2>/dev/null)" != "$(PROTOC_GEN_CONNECT_GO_VERSION:v%=%)" ]; then \
	  echo "installing protoc-gen-connect-go $(PROTOC_GEN_CONNECT_GO_VERSION)"; \
	  $(GO) install connectrpc.com/connect/cmd/protoc-gen-connect-go@$(PROTOC_GEN_CONNECT_GO_VERSION); \
	fi

.PHONY: tool-staticcheck
tool-staticcheck:
	@if ! staticcheck --version 2>/dev/null | grep -qF '($(STATICCHECK_VERSION:v%=%))'; then \
	  echo "installing staticcheck $(STATICCHECK_VERSION)"; \
	  $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION); \
	fi
