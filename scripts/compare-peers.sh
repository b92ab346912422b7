#!/usr/bin/env bash
# theus side by side with what a Go engineer would use instead, in one
# run on this machine: the same workloads against
#   - a hashicorp/go-plugin plugin (built from this repo: theus-bench
#     re-executed) holding the state in memory, over net/rpc and gRPC;
#   - Redis (Debian redis-server, loopback, no persistence), WATCH/MULTI/EXEC;
#   - etcd (Debian etcd-server, loopback, data on disk), Txn on mod revision;
#   - for tensors, Python multiprocessing.shared_memory (python3-numpy),
#     through scripts/heavy-vs-python.sh.
# theus runs twice where it matters: --durability none (against the
# in-memory peers) and sync (against etcd, which fsyncs every commit).
# Installs what is missing with apt-get, starts the servers on their own
# ports and stops them (by pid) at the end. Writes JSON, PNG plots and
# table.txt under a directory of its own.
# Usage: scripts/compare-peers.sh [DIR]   (default bench-results/peers-<time>)
# Env: COMPARE_DURATION (default 5s per run), COMPARE_TENSOR (bytes, default 1GiB).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/bench.sh
out=${1:-bench-results/peers-$(date +%Y%m%d-%H%M%S)}
dur=${COMPARE_DURATION:-5s}
mkdir -p "$out"
apt_install redis-server etcd-server python3-numpy
build_bench "$out/bin"
peers=$(mktemp -d)
trap 'stop_peers "$peers"; rm -rf "$peers"' EXIT
start_redis "$peers/redis" 16379
start_etcd "$peers/etcd" 23790 23800
redis=(--target redis --redis 127.0.0.1:16379)
etcd=(--target etcd --etcd 127.0.0.1:23790)
run() { "$bench" --out "$out" --duration "$dur" "$@"; }
n=0
runas() { n=$((n + 1)); run --name "$(printf '%02d' $n)-$1" "${@:2}"; }

# no-op calls: sequential, and 16 in flight on one connection
for flight in "1 1" "1 16"; do
  set -- $flight
  c=(--clients "$1" --depth "$2")
  runas theus-none --workload noop "${c[@]}" --durability none
  runas goplugin-rpc --workload noop "${c[@]}" --target goplugin-rpc
  runas goplugin-grpc --workload noop "${c[@]}" --target goplugin-grpc
  runas redis --workload noop "${c[@]}" "${redis[@]}"
done
# state: 8 clients, one request in flight each
for w in counter counter-spread bank; do
  c=(--clients 8 --depth 1)
  runas theus-none --workload "$w" "${c[@]}" --durability none
  runas theus-sync --workload "$w" "${c[@]}" --durability sync
  runas goplugin-rpc --workload "$w" "${c[@]}" --target goplugin-rpc
  runas redis --workload "$w" "${c[@]}" "${redis[@]}"
  runas etcd --workload "$w" "${c[@]}" "${etcd[@]}"
done
echo
"$bench" report "$out" | tee "$out/table.txt"

echo
echo "tensor handoff, ${COMPARE_TENSOR:-1073741824} bytes: theus against Python shared_memory and a socket copy"
scripts/heavy-vs-python.sh "${COMPARE_TENSOR:-1073741824}" | tee "$out/tensor.txt"
echo "results: $out"
