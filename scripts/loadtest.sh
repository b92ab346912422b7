#!/usr/bin/env bash
# A quick run of every workload (about a minute) against a supervisor that
# theus-bench starts (durability sync, the default; workers = CPUs): prints
# one line per run and a table, and writes JSON and PNG plots under a
# directory of its own.
# Usage: scripts/loadtest.sh [DIR]   (default bench-results/loadtest-<time>)
# Env: LOADTEST_DURATION (default 5s per run), LOADTEST_CLIENTS (default 8).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/bench.sh
out=${1:-bench-results/loadtest-$(date +%Y%m%d-%H%M%S)}
dur=${LOADTEST_DURATION:-5s}
clients=${LOADTEST_CLIENTS:-8}
mkdir -p "$out"
build_bench "$out/bin"
run() { "$bench" --out "$out" --duration "$dur" "$@"; }

run --workload noop --clients "$clients"
run --workload counter --clients "$clients"
run --workload counter-spread --clients "$clients"
run --workload bank --clients "$clients"
run --workload mix --clients "$clients"
run --workload spin --clients "$clients"
for size in 4KiB 1MiB 64MiB; do
  run --workload tensor --clients 2 --tensor-size "$size"
done
# 1 GiB tensors: one client, one worker (a 5 GiB zone, pre-faulted).
if [ "$(mem_available_gib)" -ge 8 ]; then
  run --workload tensor --clients 1 --workers 1 --tensor-size 1GiB
else
  echo "skipping tensor 1GiB: less than 8 GiB of memory available" >&2
fi
echo
"$bench" report "$out"
echo "results: $out"
