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
set -euo pipefail

GO=${GO:-go}
FUZZTIME=${FUZZTIME:-10s}
FUZZ_PKGS=${FUZZ_PKGS:-./...}
cd "$(dirname "$0")/.."

list_only=false
case "${1:-}" in
  --list) list_only=true ;;
  "") ;;
  *) echo "usage: $0 [--list]" >&2; exit 2 ;;
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
  if $GO test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" -timeout "$FUZZ_TIMEOUT" "${parallel[@]}" "$pkg"; then
    passed=$((passed + 1))
  else
    failed+=("$pkg $name")
  fi
done

echo "fuzz: $passed of ${#targets[@]} targets passed"
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzz: FAILED:" >&2
  printf '  %s\n' "${failed[@]}" >&2
  exit 1
fi
