#!/usr/bin/env bash
# etcd's own benchmark tool (go.etcd.io/etcd/v3/tools/benchmark) against a 5-node georaft and a
# 5-member etcd on loopback, side by side: put, range linearizable, range serializable,
# txn-put and watch-latency, in interleaved rounds, reported as medians with their spread and
# georaft ÷ etcd ratios. Run by `make bench-compare` (and alone: make bench-etcd-tool).
#
# The tool is built from the Go module proxy in a wrapper module under $BIN (never
# committed): it requires go.etcd.io/etcd/v3 and builds its tools/benchmark.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-bin}
ROUNDS=${ROUNDS:-3}
TOTAL=${TOTAL:-5000}
CLIENTS=${CLIENTS:-32}
ETCD_MODULE_VERSION=${ETCD_MODULE_VERSION:-v3.6.8}
OUT=${OUT:-results/etcd-tool-latest.md}
TOOL=$BIN/etcd-benchmark
WORK=$(mktemp -d /tmp/georaft-etcd-tool.XXXXXX)

build_tool() {
  [ -x "$TOOL" ] && return
  local src=$BIN/etcd-benchmark-src
  mkdir -p "$src"
  cat > "$src/go.mod" <<MOD
module georaft.local/etcd-benchmark

go 1.26
MOD
  cat > "$src/tools.go" <<'GO'
//go:build tools

// The benchmark's module, pulled in so that go build can build its main package.
package tools

import _ "go.etcd.io/etcd/v3/tools/benchmark"
GO
  (cd "$src" && go get "go.etcd.io/etcd/v3@$ETCD_MODULE_VERSION" && go mod tidy && go build -o ../etcd-benchmark go.etcd.io/etcd/v3/tools/benchmark)
}

ETCD_PIDS=()
cleanup() {
  for p in "${ETCD_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  "$BIN/georaft-lab" local-down >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

start_etcd() {
  local cluster="" i
  for i in 1 2 3 4 5; do cluster+="e$i=http://127.0.0.1:74$((i))0,"; done
  cluster=${cluster%,}
  for i in 1 2 3 4 5; do
    etcd --name "e$i" --data-dir "$WORK/etcd$i" \
      --listen-peer-urls "http://127.0.0.1:74$((i))0" --initial-advertise-peer-urls "http://127.0.0.1:74$((i))0" \
      --listen-client-urls "http://127.0.0.1:74$((i))1" --advertise-client-urls "http://127.0.0.1:74$((i))1" \
      --initial-cluster "$cluster" --initial-cluster-state new --log-level error >"$WORK/etcd$i.log" 2>&1 &
    ETCD_PIDS+=($!)
  done
  for _ in $(seq 100); do
    ETCDCTL_API=3 etcdctl --endpoints 127.0.0.1:7411 put /ready 1 >/dev/null 2>&1 && return
    sleep 0.2
  done
  echo "etcd did not start; see $WORK/etcd*.log" >&2; exit 1
}

GEORAFT_EPS=127.0.0.1:7201,127.0.0.1:7202,127.0.0.1:7203,127.0.0.1:7204,127.0.0.1:7205
ETCD_EPS=127.0.0.1:7411,127.0.0.1:7421,127.0.0.1:7431,127.0.0.1:7441,127.0.0.1:7451

# workload NAME: the tool's arguments.
workload() {
  case $1 in
    put) echo "put --total $TOTAL --key-size 16 --val-size 256 --key-space-size 10000" ;;
    range-linearizable) echo "range /bench/k --consistency l --total $TOTAL" ;;
    range-serializable) echo "range /bench/k --consistency s --total $TOTAL" ;;
    txn-put) echo "txn-put --total $TOTAL --key-size 16 --val-size 256 --key-space-size 10000" ;;
    watch-latency) echo "watch-latency --put-total 500 --put-rate 100 --streams 10 --watchers-per-stream 10" ;;
  esac
}
WORKLOADS="put range-linearizable range-serializable txn-put watch-latency"

# run SYSTEM WORKLOAD ROUND: one measurement, its report kept.
run() {
  local eps=$GEORAFT_EPS
  [ "$1" = etcd ] && eps=$ETCD_EPS
  # shellcheck disable=SC2046
  "$TOOL" --endpoints "$eps" --conns 8 --clients "$CLIENTS" $(workload "$2") >"$WORK/$1-$2-$3.txt" 2>&1
}

# metric FILE: requests/s and p50, p99 in ms of the last report in FILE.
metric() {
  awk '/Requests\/sec:/ {rps=$2} / 50% in / {p50=$3*1000} / 99% in / {p99=$3*1000} END {printf "%s %.3f %.3f\n", rps, p50, p99}' "$1"
}

build_tool
go build -o "$BIN/" ./node/cmd/georaftd ./lab/cmd/georaft-lab ./client/cmd/georaft
"$BIN/georaft-lab" local-up
start_etcd
for sys in georaft etcd; do
  eps=$GEORAFT_EPS; [ $sys = etcd ] && eps=$ETCD_EPS
  ETCDCTL_API=3 etcdctl --endpoints "$eps" put /bench/k v >/dev/null
done

for round in $(seq "$ROUNDS"); do
  for w in $WORKLOADS; do
    # Interleaved: the order alternates each round, so neither system always runs first.
    if [ $((round % 2)) = 1 ]; then order="georaft etcd"; else order="etcd georaft"; fi
    for sys in $order; do
      echo "round $round: $w on $sys" >&2
      run "$sys" "$w" "$round"
    done
  done
done

{
  echo "# etcd's benchmark tool (go.etcd.io/etcd/v3 $ETCD_MODULE_VERSION tools/benchmark): georaft vs etcd"
  echo
  echo "$(date -u +%Y-%m-%dT%H:%MZ), 5 nodes each on loopback, fsync on, $CLIENTS clients over 8 connections,"
  echo "$TOTAL requests per run (watch-latency: 500 puts at 100/s, 10 streams × 10 watchers), $ROUNDS interleaved rounds;"
  echo "medians, with min–max over the rounds. etcd is Debian's etcd-server $(etcd --version 2>/dev/null | awk '/etcd Version/ {print $3}')."
  echo
  echo "| workload | georaft req/s | etcd req/s | ratio | georaft p50 ms | etcd p50 ms | p50 ratio | georaft p99 ms | etcd p99 ms |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
  for w in $WORKLOADS; do
    for sys in georaft etcd; do
      for round in $(seq "$ROUNDS"); do metric "$WORK/$sys-$w-$round.txt"; done >"$WORK/$sys-$w.metrics"
    done
    python3 - "$w" "$WORK/georaft-$w.metrics" "$WORK/etcd-$w.metrics" <<'PY'
import statistics, sys
w, g, e = sys.argv[1], [l.split() for l in open(sys.argv[2])], [l.split() for l in open(sys.argv[3])]
def col(rows, i): return [float(r[i]) for r in rows if len(r) > i]
def cell(v): return f"{statistics.median(v):.4g} ({min(v):.4g}–{max(v):.4g})" if v else "n/a"
def ratio(a, b): return f"{statistics.median(a)/statistics.median(b):.2f}" if a and b and statistics.median(b) else "n/a"
gr, er, g50, e50, g99, e99 = col(g,0), col(e,0), col(g,1), col(e,1), col(g,2), col(e,2)
print(f"| {w} | {cell(gr)} | {cell(er)} | {ratio(gr, er)} | {cell(g50)} | {cell(e50)} | {ratio(g50, e50)} | {cell(g99)} | {cell(e99)} |")
PY
  done
  echo
  echo "ratio: georaft ÷ etcd throughput (above 1: georaft serves more); p50 ratio: georaft ÷ etcd latency (below 1: georaft is faster)."
} | tee "$OUT"
