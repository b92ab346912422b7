#!/usr/bin/env bash
# Measures the workers' poll (theus-supervisor --worker-poll) against no
# poll, with the supervisor in a process of its own, as clients meet it:
#   - a client that calls now and then (theus-bench --pause 1ms, one
#     request in flight): its latency, and the CPU the supervisor and its
#     workers spend per call (their /proc counters over the run);
#   - closed loops with one request in flight, noop and counter: req/s;
#   - noop with 16 in flight on one connection, where the load gate keeps
#     the workers from polling: req/s.
# Each run starts a supervisor (2 workers, --durability none) per poll
# value, the two alternated.
# Usage: scripts/bench-poll.sh [runs] [poll]   (default 3 and 100us)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
poll=${2:-100us}
tmp=$(mktemp -d)
sup=
trap 'if [ -n "$sup" ]; then kill "$sup" 2> /dev/null; wait "$sup" 2> /dev/null; fi; rm -rf "$tmp"' EXIT
go build -o "$tmp/theus-supervisor" ./cmd/theus-supervisor
go build -o "$tmp/theus-bench" ./cmd/theus-bench
mkdir -m 700 "$tmp/run"
sock=$tmp/run/theus.sock
hz=$(getconf CLK_TCK)
calls=2000 # resting 1ms each: CPU ticks (1/CLK_TCK s) resolve 5us a call at 100 Hz

# ticks sums the user and system CPU ticks of the processes in $pids.
ticks() {
  local t=0 p f
  for p in $pids; do
    read -r -a f < "/proc/$p/stat"
    t=$((t + f[13] + f[14]))
  done
  echo "$t"
}

# field NAME KEY... prints a number from theus-bench's NAME.json.
field() {
  python3 -c 'import json,sys; j=json.load(open(sys.argv[1]))
for k in sys.argv[2:]: j=j[k]
print(round(j))' "$tmp/out/$1.json" "${@:2}"
}

bench() { "$tmp/theus-bench" --socket "$sock" --out "$tmp/out" "$@" > /dev/null; }

: > "$tmp/table"
printf '%-8s %-4s %12s %12s %14s %12s %12s %12s\n' poll run 'pause p50us' 'pause p99us' 'CPU us/call' 'noop 1x1' 'counter 1x1' 'noop 1x16'
for i in $(seq "$runs"); do
  for p in 0 "$poll"; do
    "$tmp/theus-supervisor" --workers 2 --durability none --socket "$sock" --worker-poll "$p" --log-level error > "$tmp/sup.log" 2>&1 &
    sup=$!
    for _ in $(seq 100); do [ -S "$sock" ] && [ "$(pgrep -c -P "$sup" || true)" -ge 2 ] && break; sleep 0.1; done
    if ! kill -0 "$sup" 2> /dev/null || [ ! -S "$sock" ]; then
      echo "theus-supervisor --worker-poll $p did not start:" >&2
      cat "$tmp/sup.log" >&2
      exit 1
    fi
    pids="$sup $(pgrep -P "$sup" | tr '\n' ' ' || true)"
    a=$(ticks)
    bench --name "pause-$i" --workload noop --clients 1 --pause 1ms --requests "$calls" --duration 0
    b=$(ticks)
    bench --name "noop-$i" --workload noop --clients 1 --duration 4s
    bench --name "counter-$i" --workload counter --clients 1 --duration 4s
    bench --name "noop16-$i" --workload noop --clients 1 --depth 16 --duration 4s
    kill "$sup"
    wait "$sup" || true
    sup=
    rm -f "$sock"
    row=$(printf '%-8s %-4s %12s %12s %14s %12s %12s %12s' "$p" "$i" \
      "$(field "pause-$i" latency_us p50)" "$(field "pause-$i" latency_us p99)" \
      "$(( (b - a) * 1000000 / hz / calls ))" \
      "$(field "noop-$i" throughput_rps)" "$(field "counter-$i" throughput_rps)" "$(field "noop16-$i" throughput_rps)")
    echo "$row" | tee -a "$tmp/table"
  done
done
echo
awk -v poll="$poll" '{ for (c = 3; c <= 8; c++) s[$1, c] += $c; n[$1]++ }
  END {
    printf "means: %s against 0\n", poll
    split("pause p50us,pause p99us,CPU us/call,noop 1x1 req/s,counter 1x1 req/s,noop 1x16 req/s", h, ",")
    for (c = 3; c <= 8; c++) printf "  %-20s %10.0f %10.0f  %5.2fx\n", h[c - 2], s[poll, c] / n[poll], s["0", c] / n["0"], (s[poll, c] / n[poll]) / (s["0", c] / n["0"])
  }' "$tmp/table"
