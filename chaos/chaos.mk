# Fault injection on real georaftd processes (docs/chaos.md). The Makefile includes this file
# (`include chaos/chaos.mk`).
#
#   make chaos DURATION=10m [SEED=42] [CHAOS_FLAGS="--kinds pause-leader,kill-leader --geo"]
#   make chaos-replay SCHEDULE=results/tmp/chaos/seed-42-.../schedule.json
#   make chaos-failover [REPEAT=5]
#   make chaos-test
GO ?= go
BIN ?= bin
CHAOS := $(BIN)/georaft-chaos
# georaftd with the test hooks (clock-rate skew); production builds lack them.
CHAOS_GEORAFTD := $(BIN)/chaos/georaftd
DURATION ?= 2m
SEED ?=
REPEAT ?= 5
SCHEDULE ?=
CHAOS_FLAGS ?=

.PHONY: chaos chaos-replay chaos-failover chaos-test chaos-bin

chaos-bin:
	@mkdir -p $(BIN)/chaos
	$(GO) build -o $(BIN)/ ./chaos/cmd/georaft-chaos
	$(GO) build -tags georaft_testhooks -o $(CHAOS_GEORAFTD) ./node/cmd/georaftd

# A soak: rotating faults for DURATION, then heal, restart everything, check. Exits non-zero
# on any anomaly or lost write, after printing where the artifacts are and how to replay.
chaos: chaos-bin
	$(CHAOS) run --georaftd $(CHAOS_GEORAFTD) --duration $(DURATION) $(if $(SEED),--seed $(SEED)) $(CHAOS_FLAGS)

chaos-replay: chaos-bin
	@test -n "$(SCHEDULE)" || { echo "usage: make chaos-replay SCHEDULE=path/to/schedule.json"; exit 2; }
	$(CHAOS) run --georaftd $(CHAOS_GEORAFTD) --schedule $(SCHEDULE) $(CHAOS_FLAGS)

chaos-failover: chaos-bin
	$(CHAOS) failover --georaftd $(CHAOS_GEORAFTD) --repeat $(REPEAT) $(CHAOS_FLAGS)

# What CI runs: one round of every fault kind, the failover ratios, the checker's own tests.
chaos-test:
	$(GO) test -short -timeout 5m ./chaos/...
