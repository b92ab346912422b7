#!/usr/bin/env bash
# Throughput of a CPU-bound process (bench.spin, --spin-us of CPU per
# request) for 1, 2, 4, 8 and 16 workers (at most the CPUs unless
# SCALING_WORKERS says otherwise), each worker limited to one CPU
# (GOMAXPROCS=1: the worker count is the parallelism), with 2 requests in
# flight per worker, and the efficiency per worker: throughput(N) / (N × throughput(1)).
# Run it on a machine with 16 cores to see the curve.
# Usage: scripts/scaling.sh [DIR]   (default bench-results/scaling-<time>)
# Env: SCALING_DURATION (default 5s), SCALING_SPIN_US (default 2000),
#      SCALING_WORKERS (default "1 2 4 8 16", capped at the CPUs),
#      THEUS_BENCH (a prebuilt theus-bench, e.g. on a machine without Go).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/bench.sh
out=${1:-bench-results/scaling-$(date +%Y%m%d-%H%M%S)}
dur=${SCALING_DURATION:-5s}
spin=${SCALING_SPIN_US:-2000}
cpus=$(nproc)
mkdir -p "$out"
if [ -n "${THEUS_BENCH:-}" ]; then bench=$THEUS_BENCH; else build_bench "$out/bin"; fi
counts=()
for n in ${SCALING_WORKERS:-1 2 4 8 16}; do
  if [ -z "${SCALING_WORKERS:-}" ] && [ "$n" -gt "$cpus" ]; then continue; fi
  counts+=("$n")
done
printf '%-8s %12s %12s %10s\n' workers "req/s" "ideal" efficiency
base=
for n in "${counts[@]}"; do
  "$bench" --out "$out" --name "spin-$n" --workload spin --spin-us "$spin" --workers "$n" \
    --worker-procs 1 --clients "$n" --depth 2 --durability none --duration "$dur" >/dev/null
  rps=$(sed -n 's/^  "throughput_rps": \([0-9.e+]*\),$/\1/p' "$out/spin-$n.json")
  [ -z "$base" ] && base=$rps
  awk -v n="$n" -v r="$rps" -v b="$base" 'BEGIN { printf "%-8d %12.0f %12.0f %10.2f\n", n, r, n * b, r / (n * b) }'
done | tee "$out/scaling.txt"
echo "machine: $cpus CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); spin ${spin}us per request"
echo "results: $out"
