#!/usr/bin/env bash
# Runs the HEAVY zone benchmarks (supervisor/heavy_bench_test.go) and
# prints each figure against its baseline, measured in the same run and
# reported by the benchmark itself as a ratio. Needs about 3 GiB of free
# memory (THEUS_BENCH_TENSOR=BYTES for a smaller tensor than 1 GiB).
# Usage: scripts/bench-heavy.sh [count]   (default 2)
#        BENCH_INPUT=FILE scripts/bench-heavy.sh   (only the table, from lines run elsewhere)
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-2}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
if [ -n "${BENCH_INPUT:-}" ]; then
  grep '^Benchmark' "$BENCH_INPUT" > "$out"
else
  go test ./supervisor -run '^$' -bench 'HeavyHandoff' -benchtime 300x -count "$count" | grep '^Benchmark' | tee "$out"
  go test ./supervisor -run '^$' -bench 'HeavySum|HeavyFill' -benchtime 10x -count "$count" | grep '^Benchmark' | tee -a "$out"
  go test ./supervisor -run '^$' -bench 'HeavyStart' -benchtime 3x -count "$count" | grep '^Benchmark' | tee -a "$out"
  go test ./supervisor -run '^$' -bench 'HeavyInline' -benchtime 1000x -count 1 | grep '^Benchmark' | tee -a "$out"
fi
echo
awk '
  /^Benchmark/ {
    name = $1; sub(/-[0-9]+$/, "", name)
    if (!(name in seen)) { seen[name] = 1; order[++names] = name }
    for (i = 2; i < NF; i++) {
      u = $(i+1)
      if (!((name, u) in lo) || $i < lo[name, u]) lo[name, u] = $i
      if (!((name, u) in hi) || $i > hi[name, u]) hi[name, u] = $i
    }
  }
  function r(x, u) { return sprintf("%.2f-%.2f", lo[x, u], hi[x, u]) }
  END {
    printf "%-66s %13s %8s\n", "figure (lowest-highest of the runs)", "ratio", "target"
    printf "%-66s %13s %8s\n", "tensor.peek 1 GiB / tensor.peek 4 KiB (client)", r("BenchmarkHeavyHandoff", "peek-1GiB/peek-4KiB"), "<= 2"
    printf "%-66s %13s %8s\n", "1 GiB socket copy / tensor.peek 1 GiB, supervisor to worker", r("BenchmarkHeavyHandoff", "socket-copy/dispatch-peek-1GiB"), ">= 1000"
    printf "%-66s %13s %8s\n", "1 GiB socket copy / tensor.peek 1 GiB through a client", r("BenchmarkHeavyHandoff", "socket-copy/peek-1GiB"), ">= 1000"
    printf "%-66s %13s %8s\n", "tensor.sum 1 GiB bandwidth / in-process sum", r("BenchmarkHeavySum", "bandwidth-ratio"), ">= 0.8"
    printf "%-66s %13s %8s\n", "tensor.fill 1 GiB committed / in-process fill", r("BenchmarkHeavyFill", "fill-ratio"), "<= 1.1"
    printf "%-66s %13s %8s\n", "1 GiB zone start, 2 workers / 3 populates of 1 GiB", r("BenchmarkHeavyStart", "start-ratio"), "<= 1.2"
    printf "\ninline against arena, p50 us (fill, then peek):\n"
    for (i = 1; i <= names; i++) {
      n = order[i]
      if (n ~ /HeavyInline/) {
        label = n; sub(/BenchmarkHeavyInline\//, "", label)
        printf "  %-30s %8.0f\n", label, lo[n, "p50-ns"] / 1000
      }
    }
  }' "$out"
