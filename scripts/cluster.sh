#!/usr/bin/env bash
# Several supervisors on one etcd cluster, on this machine: starts 3 etcd
# members (cmd/theus-etcd, the embedded server, in one process) and 2
# theus-supervisor --store etcd on them, runs CLUSTER_OPS counter.add
# through both at once (4 clients each, theusctl), checks through each
# supervisor that the counter holds every acknowledged one, and stops
# everything by pid (SIGTERM, then the members). See docs/DISTRIBUTED.md.
# Usage: scripts/cluster.sh [DIR]   (default: a temporary directory, removed)
# Env: CLUSTER_OPS (default 200), CLUSTER_KEEP=1 keeps DIR (logs).
set -euo pipefail
cd "$(dirname "$0")/.."
ops=${CLUSTER_OPS:-200}
keep=${CLUSTER_KEEP:-${1:-}}
dir=${1:-$(mktemp -d -t theus-cluster-XXXXXX)}
mkdir -p "$dir/bin" "$dir/run"
chmod 700 "$dir/run"
pids=()
cleanup() {
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill -TERM "${pids[$i]}" 2>/dev/null || true
    wait "${pids[$i]}" 2>/dev/null || true
  done
  if [ -z "$keep" ]; then rm -rf "$dir"; fi
}
trap 'cleanup' EXIT
go build -o "$dir/bin/" ./cmd/theus-etcd ./cmd/theus-supervisor ./cmd/theusctl
bin=$dir/bin
"$bin/theus-etcd" --dir "$dir/etcd" --endpoints-file "$dir/endpoints" >/dev/null 2>"$dir/etcd.log" &
pids+=($!)
for _ in $(seq 600); do [ -s "$dir/endpoints" ] && break; sleep 0.1; done
[ -s "$dir/endpoints" ] || { echo "cluster.sh: etcd did not start:" >&2; cat "$dir/etcd.log" >&2; exit 1; }
eps=$(cat "$dir/endpoints")
echo "etcd members: $eps"
for s in 1 2; do
  "$bin/theus-supervisor" --store etcd --etcd-endpoints "$eps" --etcd-prefix cluster/ \
    --workers 2 --socket "$dir/run/s$s.sock" --log-format json 2>"$dir/s$s.log" &
  pids+=($!)
done
for s in 1 2; do
  for _ in $(seq 600); do "$bin/theusctl" --socket "$dir/run/s$s.sock" status >/dev/null 2>&1 && break; sleep 0.1; done
  "$bin/theusctl" --socket "$dir/run/s$s.sock" status >/dev/null || { echo "cluster.sh: supervisor $s did not start:" >&2; cat "$dir/s$s.log" >&2; exit 1; }
done
echo "supervisors: $dir/run/s1.sock $dir/run/s2.sock (pids ${pids[*]:1})"
start=$(date +%s.%N)
per=$((ops / 8))
load=()
for c in $(seq 8); do
  s=$(( (c % 2) + 1 ))
  (
    n=0
    for _ in $(seq "$per"); do
      "$bin/theusctl" --socket "$dir/run/s$s.sock" exec counter.add >/dev/null && n=$((n + 1))
    done
    echo "$n" >"$dir/acked.$c"
  ) &
  load+=($!)
done
wait "${load[@]}"
end=$(date +%s.%N)
acked=$(awk '{n += $1} END {print n}' "$dir"/acked.*)
for s in 1 2; do
  got=$("$bin/theusctl" --socket "$dir/run/s$s.sock" get domain.counter)
  echo "supervisor $s reads domain.counter = $got"
  [ "$got" = "$acked" ] || { echo "cluster.sh: $acked acknowledged, supervisor $s reads $got" >&2; exit 1; }
done
awk -v a="$acked" -v n="$((per * 8))" -v s="$start" -v e="$end" \
  'BEGIN {printf "%d of %d counter.add acknowledged through 2 supervisors in %.1fs (a theusctl process each)\n", a, n, e - s}'
