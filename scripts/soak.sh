#!/usr/bin/env bash
# A soak of the dispatch path: one supervisor (ring workers, durability
# none) and, until the time is up, bursts of random shape from every
# kind of client: theus-bench (the Go client: noop, counter or mix,
# 1-8 connections, 1-64 in flight, with or without a pause between
# requests), the Python client's exec_many and theus.aio's (half the
# bursts with op ids of random lengths: frames of any size). Between
# bursts the workers go idle, park and poll, which is where a lost
# wake-up hides: a request that waits for one times out (30 s) and its
# worker is logged as hung. The script fails, naming the burst, on the
# first client that fails or the first worker logged down, and keeps
# the supervisor's log.
# Usage: scripts/soak.sh [DURATION_SECONDS]   (default 300)
# Env: SOAK_WORKERS (default 1), SOAK_WORKER_POLL (default 100us, as the
# supervisor's), SOAK_SEED (default: the time; printed).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/bench.sh
secs=${1:-300}
workers=${SOAK_WORKERS:-1}
poll=${SOAK_WORKER_POLL:-100us}
seed=${SOAK_SEED:-$(date +%s)}
RANDOM=$seed
py=/usr/bin/python3
dir=$(mktemp -d)
chmod 700 "$dir"
sup_pid=
cleanup() {
  [ -n "$sup_pid" ] && kill -TERM "$sup_pid" 2>/dev/null && wait "$sup_pid" || true
  rm -rf "$dir"
}
trap cleanup EXIT
go build -o "$dir/" ./cmd/theus-supervisor ./cmd/theus-worker ./cmd/theus-bench
sock=$dir/sock/theus.sock
"$dir/theus-supervisor" --socket "$sock" --state-dir "$dir/state" --durability none \
  --workers "$workers" --worker-poll "$poll" --log-format json \
  --plugin "$dir/theus-worker" >"$dir/supervisor.log" 2>&1 &
sup_pid=$!
await_socket "$sock" "$sup_pid" "$dir/supervisor.log" 300
pyok=0
"$py" -c 'import msgpack' 2>/dev/null && pyok=1 || echo "soak: no python3-msgpack: Go clients only" >&2

fail() {
  echo "soak: FAILED at burst $n (seed $seed): $1" >&2
  grep -v '"level":"info"' "$dir/supervisor.log" | tail -20 >&2 || true
  cp "$dir/supervisor.log" "soak-supervisor.log" && echo "soak: the supervisor's log is in soak-supervisor.log" >&2
  exit 1
}

echo "soak: ${secs}s, $workers workers, worker poll $poll, seed $seed"
end=$((SECONDS + secs))
n=0
while [ $SECONDS -lt $end ]; do
  n=$((n + 1))
  kinds=3
  [ $pyok = 1 ] || kinds=1
  case $((RANDOM % kinds)) in
  0)
    workloads=(noop noop counter mix)
    w=${workloads[$((RANDOM % 4))]}
    clients=$((1 + RANDOM % 8))
    depth=$((1 + RANDOM % 64))
    reqs=$((100 + RANDOM % 20000))
    pause=0s
    [ $((RANDOM % 3)) = 0 ] && pause=$((RANDOM % 1000))us
    what="theus-bench $w, $clients clients, $depth in flight, $reqs requests, pause $pause"
    "$dir/theus-bench" --socket "$sock" --workload "$w" --clients "$clients" --depth "$depth" \
      --requests "$reqs" --duration 0 --pause "$pause" --out "$dir/bench" --name soak \
      >"$dir/burst.out" 2>&1 || { cat "$dir/burst.out" >&2; fail "$what"; }
    ;;
  *)
    api=sync
    [ $((RANDOM % 2)) = 0 ] && api=aio
    window=$((1 + RANDOM % 256))
    reqs=$((1 + RANDOM % 20000))
    what="python $api exec_many, window $window, $reqs requests"
    PYTHONPATH=$PWD/python "$py" - "$sock" "$api" "$window" "$reqs" >"$dir/burst.out" 2>&1 <<'EOF' || { cat "$dir/burst.out" >&2; fail "$what"; }
import asyncio, random, sys
import theus, theus.aio
sock, api, window, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
calls = ["noop"] * n
if random.random() < 0.5:  # frames of any size: op ids of random lengths
    calls = [{"process": "noop", "op_id": theus.new_op_id() + "x" * random.randrange(64)} for _ in range(n)]
if api == "sync":
    with theus.Client(sock) as c:
        c.exec_many(calls, window=window)
else:
    async def main():
        async with await theus.aio.connect(sock) as c:
            await c.exec_many(calls, window=window)
    asyncio.run(main())
EOF
    ;;
  esac
  if grep -q '"message":"worker down"' "$dir/supervisor.log"; then
    fail "a worker went down after: $what"
  fi
  sleep "0.$((RANDOM % 3))"
done
echo "soak: $n bursts, no failure (seed $seed)"
