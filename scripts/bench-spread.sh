#!/usr/bin/env bash
# Issue 14's counter-spread target, measured so that one noisy pair does
# not decide it: theus (--durability none, its supervisor started by
# theus-bench) and Redis WATCH/MULTI/EXEC (Debian redis-server, loopback,
# no persistence) run the same counter-spread workload, 8 clients with
# one request in flight each, alternated PAIRS times. It prints each
# pair's req/s, p50 and p99 and their ratio, then the median ratio
# against the target (>= 2x). On a machine shared with others one pair
# moves by 10% or more; the median of the alternated pairs is the
# figure docs/BENCHMARKS.md records.
# Installs redis-server with apt-get when missing, starts it on its own
# port and stops it (by pid) at the end.
# Usage: scripts/bench-spread.sh [PAIRS] [DURATION]   (default 7 5s)
# Env: SPREAD_CLIENTS (default 8), SPREAD_PORT (default 16389).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/bench.sh
pairs=${1:-7}
dur=${2:-5s}
clients=${SPREAD_CLIENTS:-8}
port=${SPREAD_PORT:-16389}
if ! [[ "$pairs" =~ ^[1-9][0-9]*$ ]]; then
  echo "bench-spread: PAIRS must be a positive number, not '$pairs'" >&2
  exit 2
fi
apt_install redis-server
work=$(mktemp -d)
trap 'stop_peers "$work"; rm -rf "$work"' EXIT
build_bench "$work/bin"
if port_open "$port"; then
  echo "bench-spread: 127.0.0.1:$port is taken; set SPREAD_PORT" >&2
  exit 1
fi
start_redis "$work/redis" "$port"  # stop_peers finds $work/redis/redis.pid

# field FILE NAME: a number from theus-bench's JSON result.
field() { grep -o "\"$2\": *[0-9.e+]*" "$1" | head -1 | sed 's/.*: *//'; }

run() { # run NAME ARGS...: one 8x1 counter-spread run, its JSON in $work/NAME.json
  "$bench" --out "$work/res" --name "$1" --duration "$dur" --workload counter-spread \
    --clients "$clients" --depth 1 "${@:2}" >"$work/$1.log" 2>&1 || {
    cat "$work/$1.log" >&2
    return 1
  }
  cp "$work/res/$1.json" "$work/$1.json"
}

h0=$(host_times)
printf '%-5s %12s %8s %8s %12s %8s %8s %7s\n' pair "theus req/s" p50 p99 "redis req/s" p50 p99 ratio
ratios=()
for i in $(seq "$pairs"); do
  run "theus-$i" --durability none
  run "redis-$i" --target redis --redis "127.0.0.1:$port"
  t="$work/theus-$i.json" r="$work/redis-$i.json"
  tr=$(field "$t" throughput_rps) rr=$(field "$r" throughput_rps)
  ratio=$(awk -v a="$tr" -v b="$rr" 'BEGIN { printf "%.2f", a / b }')
  ratios+=("$ratio")
  printf '%-5s %12.0f %6sus %6sus %12.0f %6sus %6sus %6sx\n' "$i" "$tr" "$(field "$t" p50)" "$(field "$t" p99)" \
    "$rr" "$(field "$r" p50)" "$(field "$r" p99)" "$ratio"
done
echo
printf '%s\n' "${ratios[@]}" | sort -n | awk -v n="$pairs" '
  { v[NR] = $1 }
  END {
    med = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
    printf "counter-spread %s x 1, theus / Redis WATCH/MULTI/EXEC: median %.2fx over %d alternated pairs (%.2f-%.2fx); target >= 2x: %s\n",
      "'"$clients"'", med, n, v[1], v[n], (med >= 2 ? "met" : "not met")
  }'
host_share "$h0" "$(host_times)"
