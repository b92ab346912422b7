#!/usr/bin/env bash
# Issue 14's many-core checks in one run, on a machine without Go (the
# 16-core device some sessions are lent), from binaries built here:
#
#   CGO_ENABLED=0 go build -ldflags='-s -w' -o bin/theus-bench ./cmd/theus-bench
#   CGO_ENABLED=0 go test -c -ldflags='-s -w' -o bin/supervisor.test ./supervisor
#   gzip -9 bin/theus-bench bin/supervisor.test
#     (the device takes at most 64 MiB with the working tree: 61 MiB of
#     binaries do not fit, 24 MiB gzipped do; carry bin/)
#   scripts/device.sh OUT          # there: about 4 minutes on 16 cores
#   BENCH_INPUT=OUT/runtime.txt scripts/bench-runtime.sh   # the ratios again, anywhere
#
# It writes few files, since few come back from the device: OUT/noop.txt,
# OUT/counter-spread.txt and OUT/scaling.txt (scripts/scaling.sh's tables:
# noop and counter-spread for 1 to 16 workers with where the cores went,
# then bench.spin's efficiency), OUT/runtime.txt (the benchmarks behind
# bench-runtime.sh's ratios, and the worker-count benchmark),
# OUT/machine.txt (the CPUs, and the host's steal over the benchmarks),
# OUT/raw.tgz (every result, profile and log). A phase that fails is
# said so, the others still run, and the exit status is 1.
# Env: DEVICE_ITERATIONS (default 20000), DEVICE_COUNT (default 3),
# DEVICE_PHASE_TIMEOUT (seconds, default 300), and scaling.sh's
# (SCALING_DURATION, SCALING_WORKERS).
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/bench.sh
out=${1:?usage: scripts/device.sh OUT}
n=${DEVICE_ITERATIONS:-20000}
count=${DEVICE_COUNT:-3}
limit=${DEVICE_PHASE_TIMEOUT:-300}
for b in theus-bench supervisor.test; do
  if [ -f "bin/$b.gz" ]; then gunzip -f "bin/$b.gz" || exit 2; fi
  [ -x "bin/$b" ] || { echo "device.sh: no bin/$b: build it first (see the top of this script)" >&2; exit 2; }
done
mkdir -p "$out"
raw=$(mktemp -d)
trap 'rm -rf "$raw"' EXIT
fail=0
{
  echo "cpus: $(nproc)"
  grep -m1 'model name' /proc/cpuinfo || true
  uname -r
  grep MemTotal /proc/meminfo || true
} > "$out/machine.txt"
cat "$out/machine.txt"

if ! THEUS_BENCH=$PWD/bin/theus-bench timeout "$limit" scripts/scaling.sh "$raw/scaling" 2>&1 | tee "$raw/scaling.log"; then
  echo "device.sh: scaling.sh failed: see raw.tgz, scaling.log" >&2
  fail=1
fi
cp "$raw"/scaling/*.txt "$out/" 2>/dev/null

echo
echo "runtime benchmarks (${n} iterations x ${count})"
test=$PWD/bin/supervisor.test
h0=$(host_times)
# bench ARGS...: the test binary's benchmarks, its output to raw/bench.log
# (stderr apart, in bench.err: go-plugin's yamux writes there, mid-line),
# the results to runtime.txt.
bench() {
  (cd supervisor && timeout "$limit" "$test" -test.run '^$' "$@" 2>>"$raw/bench.err") | tee -a "$raw/bench.log" |
    grep --line-buffered '^Benchmark' >> "$out/runtime.txt"
}
: > "$out/runtime.txt"
bench -test.bench 'RoundTrip|Calls|Pipelined|HotKey' -test.benchtime "${n}x" -test.count "$count" ||
  { echo "device.sh: the runtime benchmarks failed: see raw.tgz, bench.log and bench.err" >&2; fail=1; }
bench -test.bench '^BenchmarkWorkers$' -test.benchtime "${n}x" -test.count "$count" ||
  { echo "device.sh: the worker-count benchmark failed: see raw.tgz, bench.log and bench.err" >&2; fail=1; }
bench -test.bench '^BenchmarkStart$' -test.benchtime 100x -test.count "$count" ||
  { echo "device.sh: the start benchmark failed: see raw.tgz, bench.log and bench.err" >&2; fail=1; }
host_share "$h0" "$(host_times)" | tee -a "$out/machine.txt"
grep '^BenchmarkWorkers' "$out/runtime.txt"
echo
BENCH_INPUT=$out/runtime.txt scripts/bench-runtime.sh | sed -n '/^figure/,/^$/p'
tar czf "$out/raw.tgz" -C "$raw" .
exit "$fail"
