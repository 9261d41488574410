# `make bench-compare`: georaft and etcd side by side, on loopback and behind the 5-region
# emulation (compare/, docs/compare.md). The top-level Makefile includes this file.
# The emulated half needs root: network namespaces, a bridge and iptables DNAT rules.
GO ?= go
BIN ?= bin
COMPARE := $(BIN)/georaft-compare
# Extra flags, e.g. make bench-compare COMPARE_FLAGS="--envs loopback --duration 3s"
COMPARE_FLAGS ?=

# A shorter run for development: loopback only, 3 rounds of 2 s phases, no profiles, no
# etcd tool (about 4 minutes). Narrow it further with COMPARE_FLAGS, e.g.
# make bench-compare-short COMPARE_FLAGS='--workloads "write c1,linearizable read c1"'
COMPARE_SHORT_FLAGS ?= --envs loopback --rounds 3 --duration 2s --warmup 500ms --profile=false --results lab-run/compare/results-short

.PHONY: bench-compare bench-compare-short bench-compare-clean compare-deps compare-bin

# etcd 3.4 from Debian, and the tools the namespaces need; installed only when missing.
compare-deps:
	@command -v etcd >/dev/null 2>&1 && command -v etcdctl >/dev/null 2>&1 || { \
	  echo "etcd not installed: apt-get install -y etcd-server etcd-client"; \
	  apt-get install -y etcd-server etcd-client || { apt-get update && apt-get install -y etcd-server etcd-client; }; }
	@command -v ip >/dev/null 2>&1 || { apt-get install -y iproute2 || { apt-get update && apt-get install -y iproute2; }; }
	@command -v iptables >/dev/null 2>&1 || { apt-get install -y iptables || { apt-get update && apt-get install -y iptables; }; }
	@command -v etcd >/dev/null 2>&1 || { echo "etcd still missing after apt-get: install etcd-server by hand"; exit 1; }

# Only what the comparison runs: the node binary and the harness.
compare-bin:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./node/cmd/georaftd ./compare/cmd/georaft-compare

bench-compare: compare-deps compare-bin
	$(COMPARE) run $(COMPARE_FLAGS)
	BIN=$(BIN) compare/etcdbench/run.sh

bench-compare-short: compare-deps compare-bin
	@mkdir -p lab-run/compare/results-short
	$(COMPARE) run $(COMPARE_SHORT_FLAGS) $(COMPARE_FLAGS)

# Stops what a killed run left behind and removes its namespaces and bridge.
bench-compare-clean:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./compare/cmd/georaft-compare
	$(COMPARE) clean

# etcd's own benchmark tool against georaft and etcd (compare/etcdbench/run.sh); part of
# bench-compare, and alone as bench-etcd-tool. ROUNDS=3 TOTAL=5000 CLIENTS=32 by default.
.PHONY: bench-etcd-tool
bench-etcd-tool: compare-deps
	BIN=$(BIN) compare/etcdbench/run.sh
