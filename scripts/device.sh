#!/usr/bin/env bash
# Issue 14's many-core checks in one run, on a machine without Go (the
# 16-core device some sessions are lent), from binaries built here:
#
#   CGO_ENABLED=0 go build -ldflags='-s -w' -o bin/theus-bench ./cmd/theus-bench
#   CGO_ENABLED=0 go test -c -ldflags='-s -w' -o bin/supervisor.test ./supervisor
#   (61 MiB together; carry bin/ to the machine)
#   scripts/device.sh OUT          # there: about 5 minutes on 16 cores
#   BENCH_INPUT=OUT/runtime.txt scripts/bench-runtime.sh   # here, or there: the ratios
#
# It writes OUT/scaling/ (scripts/scaling.sh: noop and counter-spread for
# 1 to 16 workers with where the cores went, then bench.spin's
# efficiency), OUT/runtime.txt (the benchmarks behind bench-runtime.sh's
# ratios) and OUT/machine.txt, and prints the host's steal over each.
# Env: DEVICE_ITERATIONS (default 20000), DEVICE_COUNT (default 3), and
# scaling.sh's (SCALING_DURATION, SCALING_WORKERS).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/bench.sh
out=${1:?usage: scripts/device.sh OUT}
n=${DEVICE_ITERATIONS:-20000}
count=${DEVICE_COUNT:-3}
for b in bin/theus-bench bin/supervisor.test; do
  [ -x "$b" ] || { echo "device.sh: no $b: build it first (see the top of this script)" >&2; exit 2; }
done
mkdir -p "$out"
{
  echo "cpus: $(nproc)"
  grep -m1 'model name' /proc/cpuinfo || true
  uname -r
  grep MemTotal /proc/meminfo || true
} > "$out/machine.txt"
cat "$out/machine.txt"

THEUS_BENCH=$PWD/bin/theus-bench scripts/scaling.sh "$out/scaling"

echo
echo "runtime benchmarks (${n} iterations x ${count})"
test=$PWD/bin/supervisor.test
h0=$(host_times)
(cd supervisor && "$test" -test.timeout 60m -test.run '^$' -test.bench 'RoundTrip|Calls|Pipelined|HotKey|Workers' \
  -test.benchtime "${n}x" -test.count "$count") | grep '^Benchmark' | tee "$out/runtime.txt"
(cd supervisor && "$test" -test.timeout 60m -test.run '^$' -test.bench '^BenchmarkStart$' -test.benchtime 100x \
  -test.count "$count" 2>/dev/null) | grep '^Benchmark' | tee -a "$out/runtime.txt"
host_share "$h0" "$(host_times)" | tee -a "$out/machine.txt"
echo
BENCH_INPUT=$out/runtime.txt scripts/bench-runtime.sh | sed -n '/^figure/,$p'
