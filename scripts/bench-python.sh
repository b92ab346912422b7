#!/usr/bin/env bash
# The Python SDK beside the Go SDK, in one run against one supervisor
# (docs/BENCHMARKS.md, "Python SDK"): noop p50 through a Python worker and
# a Go worker; numpy.sum of an F32 tensor a Go worker wrote, in a Python
# worker and in one process; pipelined noop calls from the Python client
# and from theus-bench's Go client. Installs python3-msgpack and
# python3-numpy with apt-get when missing.
# Usage: scripts/bench-python.sh [tensor bytes]   (default 1073741824)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/bench.sh
size=${1:-1073741824}
py=/usr/bin/python3
"$py" -c 'import msgpack, numpy' 2>/dev/null || apt_install python3-msgpack python3-numpy
dir=$(mktemp -d)
sup_pid=
cleanup() {
  [ -n "$sup_pid" ] && kill -TERM "$sup_pid" 2>/dev/null && wait "$sup_pid" || true
  rm -rf "$dir"
}
trap cleanup EXIT
go build -o "$dir/" ./cmd/theus-supervisor ./cmd/theus-worker ./cmd/theus-bench
# One Go worker and one Python worker; each slab must hold the tensor
# (a block starts at offset 64), so the zone is twice the tensor and some.
heavy=$(( (size + (64 << 20)) * 2 ))
PYTHONPATH=$PWD/python "$dir/theus-supervisor" --socket "$dir/sock/theus.sock" --state-dir "$dir/state" \
  --durability none --workers 1 --heavy-size "$heavy" --log-format json \
  --plugin "$dir/theus-worker" --plugin python/bench/bench_worker.py >"$dir/supervisor.log" 2>&1 &
sup_pid=$!
await_socket "$dir/sock/theus.sock" "$sup_pid" "$dir/supervisor.log"
PYTHONPATH=$PWD/python "$py" python/bench/bench.py --socket "$dir/sock/theus.sock" \
  --bench "$dir/theus-bench" --tensor-bytes "$size"
