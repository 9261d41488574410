# Lab targets: clusters on this machine and the benchmark. The Makefile includes this file
# (`include lab/lab.mk`); see docs/lab.md.
GO ?= go
BIN ?= bin
LAB := $(BIN)/georaft-lab
# Extra flags, e.g. make geo-up LAB_FLAGS="--scale 0.5 --jitter 2ms"
LAB_FLAGS ?=
# e.g. make bench BENCH_FLAGS="--far-region asia-east1 --duration 10s"
BENCH_FLAGS ?=

.PHONY: local-up local-down local-status geo-up geo-down bench gen-configs lab-bin

# Stopping must not depend on every package building: lab-bin builds only georaft-lab.
lab-bin:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./lab/cmd/georaft-lab

local-up: build
	$(LAB) local-up $(LAB_FLAGS)

local-down: lab-bin
	$(LAB) local-down

local-status: build
	$(BIN)/georaft status --config configs/local/node1.yaml

geo-up: build
	$(LAB) geo-up $(LAB_FLAGS)

geo-down: lab-bin
	$(LAB) geo-down

bench: build
	$(LAB) bench $(BENCH_FLAGS)

# Regenerates configs/local and configs/geo (a test checks the committed files match).
gen-configs: lab-bin
	$(LAB) gen-local-configs
	$(LAB) gen-geo-configs
