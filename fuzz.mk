# Fuzzing targets. The Makefile includes this file (`include fuzz.mk`).
#
#   make fuzz-smoke                 every fuzz target in the repository, 10s each (CI)
#   make fuzz FUZZTIME=10m          every target, 10m each (default 5m), for long runs
#   make fuzz-list                  the targets found, "package target" per line
#
# Targets are discovered with `go test -list` (scripts/fuzz-smoke.sh), so a new Fuzz
# function is picked up without touching this file. Narrow the search with
# FUZZ_PKGS=./raft/..., cap the workers with FUZZ_PARALLEL=1 on a shared machine. A failing
# input is saved under the package's testdata/fuzz/TARGET/ and named in the output.
GO ?= go
FUZZ_SCRIPT := scripts/fuzz-smoke.sh
# FUZZTIME is left undefined here so each target can have its own default.
FUZZ_SMOKE_TIME = $(or $(FUZZTIME),10s)
FUZZ_LONG_TIME = $(or $(FUZZTIME),5m)

.PHONY: fuzz-smoke fuzz fuzz-list

fuzz-smoke:
	bash $(FUZZ_SCRIPT) --self-test
	GO=$(GO) FUZZTIME=$(FUZZ_SMOKE_TIME) bash $(FUZZ_SCRIPT)

# No overall deadline by default on long runs: FUZZTIME bounds each target.
fuzz:
	GO=$(GO) FUZZTIME=$(FUZZ_LONG_TIME) FUZZ_TIMEOUT=$(or $(FUZZ_TIMEOUT),0) bash $(FUZZ_SCRIPT)

fuzz-list:
	@GO=$(GO) bash $(FUZZ_SCRIPT) --list
