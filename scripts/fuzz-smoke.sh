#!/usr/bin/env bash
# Runs every Go fuzz target in the repository, one after another, each for FUZZTIME.
# Targets are discovered, never listed by hand: a package is a candidate when one of its
# _test.go files declares `func Fuzz...`, and `go test -list '^Fuzz'` on it names the
# targets. A target added tomorrow is run tomorrow.
#
#   scripts/fuzz-smoke.sh            # every target for FUZZTIME (default 10s): what CI runs
#   FUZZTIME=10m scripts/fuzz-smoke.sh
#   scripts/fuzz-smoke.sh --list     # print "package target" per line and exit
#
# Environment:
#   FUZZTIME       per target, as go test -fuzztime takes it (10s, 5m, 1000x); default 10s
#   FUZZ_PKGS      package patterns to search (default ./...)
#   FUZZ_TIMEOUT   go test -timeout per target (default FUZZTIME + 10m; 0 disables)
#   FUZZ_PARALLEL  fuzzing workers per target (default: go test's, GOMAXPROCS)
#   GO             the go tool (default go)
#
# Every target runs even if an earlier one fails; the exit status is non-zero if any target
# failed, if a package's tests do not build, or if no target was found at all. A failing
# input is saved by go test under the package's testdata/fuzz/TARGET/ and named in the
# output with the command that replays it.
#
# One failure is not a finding: Go 1.26's fuzz coordinator can report a bare "context
# deadline exceeded" when a duration -fuzztime runs out (go.dev/issue/75804, fixed in Go
# 1.27). Such a run wrote no failing input, so there is nothing to reproduce. The script
# tells it apart (is_deadline_race), replays the target's corpus deterministically instead,
# and passes the target only if that replay passes. Any other failure fails the target.
#
#   scripts/fuzz-smoke.sh --self-test   # checks that classification against sample outputs
set -euo pipefail

GO=${GO:-go}
FUZZTIME=${FUZZTIME:-10s}
FUZZ_PKGS=${FUZZ_PKGS:-./...}
cd "$(dirname "$0")/.."

# is_deadline_race reads a failed `go test -fuzz` run's output on stdin and succeeds when
# the only failure is the coordinator's deadline race: the target failed with a bare
# "context deadline exceeded" and nothing says an input failed (no failing input written,
# no panic, no t.Error line from the target, no test-binary timeout).
is_deadline_race() {
  local out
  out=$(cat)
  grep -qE '^[[:space:]]+context deadline exceeded$' <<<"$out" || return 1
  ! grep -qE 'Failing input written to|^panic:|panic: |_test\.go:[0-9]+:|test timed out after|fatal error:' <<<"$out"
}

self_test() {
  local race='fuzz: elapsed: 10s, execs: 29285 (10183/sec), new interesting: 4 (total: 451)
--- FAIL: FuzzLoadConfig (10.16s)
    context deadline exceeded
FAIL
exit status 1'
  local crash='--- FAIL: FuzzDecode (3.20s)
    --- FAIL: FuzzDecode (0.00s)
        decode_test.go:41: round trip changed the value
    Failing input written to testdata/fuzz/FuzzDecode/5d1c
    To re-run:
    go test -run=FuzzDecode/5d1c
FAIL'
  local panicked='--- FAIL: FuzzDecode (1.02s)
    --- FAIL: FuzzDecode (0.00s)
        testing.go:1591: panic: runtime error: index out of range [3] with length 3
    context deadline exceeded
FAIL'
  local timeout='panic: test timed out after 10m0s
	running tests:
		FuzzDecode (10m0s)'
  local fails=0
  is_deadline_race <<<"$race" || { echo "self-test: the deadline race was not recognised" >&2; fails=1; }
  ! is_deadline_race <<<"$crash" || { echo "self-test: a written failing input was taken for the race" >&2; fails=1; }
  ! is_deadline_race <<<"$panicked" || { echo "self-test: a panic was taken for the race" >&2; fails=1; }
  ! is_deadline_race <<<"$timeout" || { echo "self-test: a test timeout was taken for the race" >&2; fails=1; }
  [[ $fails -eq 0 ]] && echo "fuzz: self-test passed"
  return $fails
}

list_only=false
case "${1:-}" in
  --list) list_only=true ;;
  --self-test) self_test; exit ;;
  "") ;;
  *) echo "usage: $0 [--list|--self-test]" >&2; exit 2 ;;
esac

# default_timeout is FUZZTIME plus room for building, the seed corpus and minimizing a
# failing input; for an iteration count (1000x) a flat 30m.
default_timeout() {
  if [[ $FUZZTIME =~ ^([0-9]+)(s|m|h)$ ]]; then
    local n=${BASH_REMATCH[1]} unit=${BASH_REMATCH[2]}
    case $unit in
      s) echo "$((n + 600))s" ;;
      m) echo "$((n + 10))m" ;;
      h) echo "$((n * 60 + 10))m" ;;
    esac
  else
    echo 30m
  fi
}
FUZZ_TIMEOUT=${FUZZ_TIMEOUT:-$(default_timeout)}

# Candidate packages: those with a test file declaring a fuzz target.
candidates=()
while read -r pkg dir; do
  [[ -n $pkg ]] || continue
  if grep -qsE '^func Fuzz[A-Za-z0-9_]*\(' "$dir"/*_test.go; then
    candidates+=("$pkg")
  fi
done < <($GO list -e -f '{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}} {{.Dir}}{{end}}' $FUZZ_PKGS)

targets=()   # "package target"
failed=()
for pkg in "${candidates[@]}"; do
  if ! out=$($GO test -list '^Fuzz' "$pkg" 2>&1); then
    echo "fuzz: cannot list the fuzz targets of $pkg:" >&2
    echo "$out" >&2
    failed+=("$pkg (tests do not build)")
    continue
  fi
  while read -r name; do
    targets+=("$pkg $name")
  done < <(grep -E '^Fuzz[A-Za-z0-9_]*$' <<<"$out" || true)
done

if $list_only; then
  printf '%s\n' "${targets[@]}"
  [[ ${#failed[@]} -eq 0 ]] || exit 1
  exit 0
fi

if [[ ${#targets[@]} -eq 0 ]]; then
  echo "fuzz: no fuzz targets found under $FUZZ_PKGS (discovery is broken, or they were removed)" >&2
  exit 1
fi

parallel=()
[[ -z ${FUZZ_PARALLEL:-} ]] || parallel=(-parallel "$FUZZ_PARALLEL")

echo "fuzz: ${#targets[@]} targets, ${FUZZTIME} each (timeout ${FUZZ_TIMEOUT})"
passed=0
for t in "${targets[@]}"; do
  read -r pkg name <<<"$t"
  echo "=== fuzz $pkg $name"
  log=$(mktemp)
  if $GO test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" -timeout "$FUZZ_TIMEOUT" "${parallel[@]}" "$pkg" 2>&1 | tee "$log"; then
    passed=$((passed + 1))
  elif is_deadline_race <"$log"; then
    echo "fuzz: $name stopped on Go's -fuzztime deadline race (go.dev/issue/75804) and wrote no failing input; replaying its corpus"
    if $GO test -run "^${name}\$" -count 1 "$pkg"; then
      passed=$((passed + 1))
    else
      failed+=("$pkg $name (corpus replay)")
    fi
  else
    failed+=("$pkg $name")
  fi
  rm -f "$log"
done

echo "fuzz: $passed of ${#targets[@]} targets passed"
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzz: FAILED:" >&2
  printf '  %s\n' "${failed[@]}" >&2
  exit 1
fi
