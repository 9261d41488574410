# georaft: see README.md. Every target works on a fresh Debian machine with Go 1.26.
SHELL := /bin/bash
GO ?= go
BIN := bin
GOBIN_DIR := $(shell $(GO) env GOPATH)/bin
PROTOC_GEN_GO_VERSION := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
BUF_VERSION := v1.75.0

.PHONY: all build test test-go test-hosts proto proto-lint vet fmt clean soak-sim bench-engine bench-10m

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -buildvcs=auto -o $(BIN)/ ./node/cmd/georaftd ./client/cmd/georaft ./lab/cmd/georaft-lab

vet:
	$(GO) vet ./...

# What CI runs: vet, every package's tests in short mode (thousands of simulator seeds, real
# clusters on loopback, a bounded chaos run, the real Ansible run), then every fuzz target
# for a few seconds.
test: vet proto-lint tflint test-go fuzz-smoke

test-go:
	$(GO) test -short -timeout 15m ./...

# The Ansible role on five real Debian hosts booted with systemd (systemd-nspawn): deploy,
# changed=0, rolling upgrade leader last, rollback, blank-disk refusal, replace. Needs root,
# debootstrap and systemd-container; the first run builds the root filesystem into
# build/hosts (about a minute from Debian's mirror). See docs/deploy.md.
test-hosts:
	$(GO) test ./deploy -run 'TestAnsibleOnRealHosts' -hosts -count=1 -v -timeout 30m

# Many more simulator seeds than make test runs, ordinary and adversarial (read-lease holders,
# membership changes, lease attacks): SEEDS=100000 make soak-sim.
SEEDS ?= 20000
soak-sim:
	$(GO) test ./raft -run 'TestSimulation$$' -sim.seeds=$(SEEDS) -timeout 0 -v
	$(GO) test ./raft -run 'TestAdversarialSimulationClean$$' -sim.seeds=$(SEEDS) -timeout 0 -v

# The storage engines side by side on georaft's apply workload (README, Dependencies).
bench-engine:
	$(GO) test ./node/mvcc/enginecmp -run '^$$' -bench . -benchtime 2s -count $(or $(COUNT),3) -timeout 60m

# About 10 million keys through the state machine: resident memory and disk use (README).
bench-10m:
	$(GO) test ./node/mvcc -run '^TestLoadKeys$$' -mvcc.load 10000000 -v -timeout 2h

fmt:
	gofmt -w $$(git ls-files '*.go')

# Regenerates the committed protobuf code with Debian's protoc and pinned Go plugins.
proto:
	@command -v protoc >/dev/null || { echo "protoc missing: apt-get install protobuf-compiler libprotobuf-dev"; exit 1; }
	$(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	$(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	PATH=$(GOBIN_DIR):$$PATH protoc -I proto \
	  --go_out=proto --go_opt=paths=source_relative \
	  --go-grpc_out=proto --go-grpc_opt=paths=source_relative \
	  proto/georaft/v1/*.proto

# The protocol stays clean under buf's STANDARD lint rules (proto/buf.yaml).
proto-lint:
	cd proto && $(GO) run github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION) lint

clean:
	rm -rf $(BIN) results/tmp

# Local and emulated-geo clusters, and `make bench` (lab/lab.mk).
include lab/lab.mk
# Google Cloud deployment: cluster-up, cluster-down, cluster-status, cluster-bench (deploy/cluster.mk).
include deploy/cluster.mk
# Fault injection on real processes: make chaos DURATION=10m (chaos/chaos.mk).
include chaos/chaos.mk
# georaft and etcd side by side: make bench-compare (compare/compare.mk).
include compare/compare.mk
# Fuzzing: make fuzz-smoke (CI), make fuzz FUZZTIME=10m (fuzz.mk).
include fuzz.mk
