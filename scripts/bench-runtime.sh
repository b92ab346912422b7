#!/usr/bin/env bash
# Runs the runtime benchmarks (supervisor/bench_test.go) and prints each
# figure as a ratio to the baseline measured in the same run: a raw
# Unix-socket ping-pong, a batched msgpack echo and a go-plugin net/rpc
# plugin, all between two processes. The targets printed are issue 14's
# (the dispatch path); the dispatch round trip's is the earlier one.
# Usage: scripts/bench-runtime.sh [iterations] [count]   (default 20000 3)
#        BENCH_INPUT=FILE scripts/bench-runtime.sh           (only the ratios, from
#        benchmark lines run elsewhere, e.g. a static test binary on another machine:
#        CGO_ENABLED=0 go test -c -o bin/supervisor.test ./supervisor)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/bench.sh
n=${1:-20000}
count=${2:-3}
out=$(mktemp)
trap 'rm -f "$out" "$out.test"' EXIT
if [ -n "${BENCH_INPUT:-}" ]; then
  grep '^Benchmark' "$BENCH_INPUT" > "$out"
else
  go test -c -o "$out.test" ./supervisor
  h0=$(host_times)
  (cd supervisor && "$out.test" -test.timeout 60m -test.run '^$' -test.bench 'RoundTrip|Calls|Pipelined|HotKey' -test.benchtime "${n}x" -test.count "$count") | grep '^Benchmark' | tee "$out"
  # (go-plugin's yamux logs a broken pipe on stderr when its plugin is killed: harmless)
  (cd supervisor && "$out.test" -test.timeout 60m -test.run '^$' -test.bench '^BenchmarkStart$' -test.benchtime 100x -test.count "$count" 2>/dev/null) | grep '^Benchmark' | tee -a "$out"
  host=$(host_share "$h0" "$(host_times)")
fi
echo
awk '
  /^Benchmark/ {
    name = $1; sub(/-[0-9]+$/, "", name); n[name]++
    for (i = 2; i < NF; i++) v[name, $(i+1)] += $i
  }
  function m(x, unit) { return v[x, unit] / n[x] }
  END {
    rt = "BenchmarkRoundTrip/impl="; c = "BenchmarkCalls/impl="; p = "BenchmarkPipelined/impl="; h = "BenchmarkHotKey/clients="; s = "BenchmarkStart/impl="
    printf "%-62s %9s %8s\n", "figure (means of the runs)", "ratio", "target"
    printf "%-62s %9.2f %8s\n", "dispatch round trip p50 / raw socket ping-pong p50", m(rt "dispatch", "p50-ns") / m(rt "raw-socket", "p50-ns"), "<= 2.5"
    printf "%-62s %9.2f %8s\n", "client round trip p50 (two hops) / raw ping-pong p50", m(rt "client", "p50-ns") / m(rt "raw-socket", "p50-ns"), "<= 3"
    printf "%-62s %9.2f %8s\n", "calls/s sequential, theus client / go-plugin net/rpc", m(c "theus/inflight=01", "calls/s") / m(c "goplugin/inflight=01", "calls/s"), ">= 1.5"
    printf "%-62s %9.2f %8s\n", "calls/s 16 in flight, theus client / go-plugin net/rpc", m(c "theus/inflight=16", "calls/s") / m(c "goplugin/inflight=16", "calls/s"), ">= 2"
    printf "%-62s %9.2f %8s\n", "pipelined (256 in flight) noop execs/s / msgpack echo msgs/s", m(p "theus-noop", "calls/s") / m(p "msgpack-echo", "calls/s"), ">= 0.7"
    printf "%-62s %9.2f %8s\n", "hot key commits/s, 8 clients / 1 client", m(h "08", "commits/s") / m(h "01", "commits/s"), ">= 0.8"
    printf "%-62s %9.3f %8s\n", "hot key retries per commit, 8 clients", m(h "08", "retries/commit"), "<= 1.0"
    printf "%-62s %9.0f %8s\n", "hot key max attempts, 8 clients (K=3)", m(h "08", "max-attempts"), "<= 4"
    printf "%-62s %9.2f %8s\n", "worker start to ready p50 / bare spawn to first byte p50", m(s "worker-ready", "p50-ns") / m(s "bare-spawn", "p50-ns"), "report"
    printf "%-62s %9.2f %8s\n", "worker start to ready p50 / go-plugin launch+handshake p50", m(s "worker-ready", "p50-ns") / m(s "goplugin-launch", "p50-ns"), "report"
    printf "\n%-62s %9.1f\n", "raw ping-pong p50, us", m(rt "raw-socket", "p50-ns") / 1000
    printf "%-62s %9.1f\n", "dispatch p50, us", m(rt "dispatch", "p50-ns") / 1000
    printf "%-62s %9.1f\n", "client round trip p50, us", m(rt "client", "p50-ns") / 1000
    printf "%-62s %9.0f\n", "go-plugin calls/s sequential", m(c "goplugin/inflight=01", "calls/s")
    printf "%-62s %9.0f\n", "theus calls/s sequential", m(c "theus/inflight=01", "calls/s")
    printf "%-62s %9.0f\n", "go-plugin calls/s 16 in flight", m(c "goplugin/inflight=16", "calls/s")
    printf "%-62s %9.0f\n", "theus calls/s 16 in flight", m(c "theus/inflight=16", "calls/s")
    printf "%-62s %9.0f\n", "theus calls/s 16 in flight, each with an op id", m(c "theus-opid/inflight=16", "calls/s")
    printf "%-62s %9.0f\n", "msgpack echo msgs/s, 256 in flight", m(p "msgpack-echo", "calls/s")
    printf "%-62s %9.0f\n", "theus noop execs/s, 256 in flight", m(p "theus-noop", "calls/s")
    printf "%-62s %9.0f\n", "hot key commits/s, 1 client", m(h "01", "commits/s")
    printf "%-62s %9.0f\n", "hot key commits/s, 8 clients", m(h "08", "commits/s")
    printf "%-62s %9.1f\n", "bare spawn p50, ms", m(s "bare-spawn", "p50-ns") / 1e6
    printf "%-62s %9.1f\n", "worker start to ready p50, ms", m(s "worker-ready", "p50-ns") / 1e6
    printf "%-62s %9.1f\n", "go-plugin launch + handshake + dispense p50, ms", m(s "goplugin-launch", "p50-ns") / 1e6
  }' "$out"
[ -n "${host:-}" ] && echo "$host"
exit 0
