#!/usr/bin/env bash
# Worker-count scaling, the two figures of issue 14's 16-core target:
#  1. noop executes/s (the runtime's own cost: 16 clients × 16 in flight)
#     for 1, 2, 4, 8 and 16 workers, as a ratio to the first count (1
#     worker), with where the cores went (theus-bench --cpu-profile: the
#     bench process, which the supervisor runs in, the supervisor's own
#     loops, the workers, the busiest loop and the commit's share; a
#     worker-* loop near 1.00 core is saturated, a conn loop may be
#     several goroutines: docs/OPERATIONS.md, "Which goroutine is
#     busy"); then the same for counter-spread, whose executes commit;
#  2. a CPU-bound process (bench.spin, --spin-us of CPU per request, 2
#     requests in flight per worker) and the efficiency per worker:
#     throughput(N) / (N × throughput(1)).
# Each worker is limited to one CPU (GOMAXPROCS=1: the worker count is
# the parallelism). Run it on a machine with 16 cores to see the curve.
# Usage: scripts/scaling.sh [DIR]   (default bench-results/scaling-<time>)
# Env: SCALING_DURATION (default 5s), SCALING_SPIN_US (default 2000),
#      SCALING_WORKERS (default "1 2 4 8 16", capped at the CPUs),
#      THEUS_BENCH (a prebuilt theus-bench, e.g. on a machine without Go:
#      CGO_ENABLED=0 go build -o theus-bench ./cmd/theus-bench).
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

# rps FILE: the throughput in a theus-bench result.
rps() { sed -n 's/^  "throughput_rps": \([0-9.e+]*\),$/\1/p' "$1"; }

# profiled WORKLOAD: WORKLOAD with 16 clients x 16 in flight for each
# worker count, with where the cores went, into $out/WORKLOAD.txt.
profiled() {
  local w=$1 base= n lines line steal r
  echo "$w, 16 clients x 16 in flight"
  printf '%-8s %12s %6s %8s %8s %8s   %-22s %7s %6s\n' workers "execs/s" "x 1" "bench" "superv." "workers" "busiest loop, cores" commit steal
  for n in "${counts[@]}"; do
    lines=$("$bench" --out "$out" --name "$w-$n" --workload "$w" --workers "$n" --worker-procs 1 \
      --clients 16 --depth 16 --durability none --duration "$dur" --cpu-profile "$out/$w-$n.pprof")
    line=$(tail -1 <<<"$lines")
    steal=$(sed -n 's/.*  steal \([0-9?%]*\)  -> .*/\1/p' <<<"$lines" | head -1)
    r=$(rps "$out/$w-$n.json")
    [ -z "$base" ] && base=$r
    # line: "  cpu C cores: ROLE C ...; busiest loop LOOP C; commit C; workers C  -> FILE"
    # In cores: bench, the whole theus-bench process (the supervisor runs
    # in it); superv., the supervisor's loops (roles conn, worker-*,
    # journal*, flux*; its GC and other goroutines are in bench only); workers,
    # the worker processes.
    LINE=$line awk -v n="$n" -v r="$r" -v b="$base" -v steal="$steal" 'BEGIN {
      line = ENVIRON["LINE"]; sub(/  -> .*$/, "", line) # the file name may hold anything
      split(line, part, "; ")
      sub(/^ *cpu /, "", part[1]); nf = split(part[1], f, " ")
      sup = 0
      for (i = 3; i < nf; i += 2) if (f[i] ~ /^(conn|worker-|journal|flux)/) sup += f[i+1]
      sub(/^busiest loop /, "", part[2]); sub(/^commit /, "", part[3])
      sub(/^workers /, "", part[4])
      printf "%-8d %12.0f %6.2f %8s %8.2f %8s   %-22s %7s %6s\n", n, r, r / b, f[1], sup, part[4], part[2], part[3], steal
    }'
  done | tee "$out/$w.txt"
}

profiled noop
echo
profiled counter-spread
echo
echo "bench.spin, ${spin}us of CPU per request, 2 in flight per worker"
printf '%-8s %12s %12s %10s\n' workers "req/s" "ideal" efficiency
base=
for n in "${counts[@]}"; do
  "$bench" --out "$out" --name "spin-$n" --workload spin --spin-us "$spin" --workers "$n" \
    --worker-procs 1 --clients "$n" --depth 2 --durability none --duration "$dur" >/dev/null
  r=$(rps "$out/spin-$n.json")
  [ -z "$base" ] && base=$r
  awk -v n="$n" -v r="$r" -v b="$base" 'BEGIN { printf "%-8d %12.0f %12.0f %10.2f\n", n, r, n * b, r / (n * b) }'
done | tee "$out/scaling.txt"

last=${counts[${#counts[@]}-1]}
echo
awk -v n="$last" -v f="${counts[0]}" '$1 == n { printf "noop %s workers / %s: %.2fx (target on 16 cores, 16 / 1: >= 4)\n", n, f, $3 }' "$out/noop.txt"
awk -v n="$last" '$1 == n { printf "bench.spin efficiency at %s workers: %.2f (target on 16 cores: >= 0.8)\n", n, $4 }' "$out/scaling.txt"
echo "machine: $cpus CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); spin ${spin}us per request"
echo "results: $out (noop-N.pprof, counter-spread-N.pprof: the CPU profiles; go tool pprof -tags FILE)"
