#!/usr/bin/env bash
# Runs the durability benchmarks and prints each figure against its
# baseline from the same run:
#   - supervisor BenchmarkDurableCommits: counters.add on distinct keys, 64
#     and 8 in flight, in modes none, async, sync and sync-per-commit (group
#     commit off: one fsync per commit);
#   - durable BenchmarkRecovery: a start on a state file of 10^6 paths
#     (THEUS_RECOVERY_PATHS=N for another count).
# The state files go to $TMPDIR (default /tmp): put it on the disk you
# want to measure, not on a tmpfs.
# Usage: scripts/bench-durable.sh [count]   (default 3)
#        BENCH_INPUT=FILE scripts/bench-durable.sh   (only the table, from lines run elsewhere)
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-3}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
if [ -n "${BENCH_INPUT:-}" ]; then
  grep '^Benchmark' "$BENCH_INPUT" > "$out"
else
  echo "state on: $(df -T "${TMPDIR:-/tmp}" | awk 'NR==2 {print $2, $1}')"
  go test ./supervisor -run '^$' -bench 'DurableCommits' -benchtime 3s -count "$count" | grep '^Benchmark' | tee "$out"
  go test ./durable -run '^$' -bench 'Recovery' -benchtime 3x -count 1 | grep '^Benchmark' | tee -a "$out"
fi
echo
awk '
  /^Benchmark/ {
    name = $1; sub(/-[0-9]+$/, "", name); sub(/^Benchmark[A-Za-z]+\//, "", name)
    for (i = 2; i < NF; i++) if ($(i+1) == "commits/s") { sum[name] += $i; n[name]++ }
    if ($1 ~ /Recovery/) for (i = 2; i < NF; i++) {
      if ($(i+1) == "s/start") rec = $i
      if ($(i+1) == "file-MiB") mib = $i
    }
  }
  function m(x) { return n[x] ? sum[x] / n[x] : 0 }
  function ratio(a, b) { return m(b) ? sprintf("%.2fx", m(a) / m(b)) : "-" }
  END {
    printf "%-12s %12s %12s %12s %16s\n", "in flight", "none", "async", "sync", "sync-per-commit"
    for (k = 0; k < 2; k++) {
      f = k == 0 ? 64 : 8; p = "inflight=" f "/mode="
      printf "%-12s %12.0f %12.0f %12.0f %16.0f   commits/s (mean of the runs)\n", f, m(p "none"), m(p "async"), m(p "sync"), m(p "sync-per-commit")
    }
    printf "\n%-62s %8s %8s\n", "figure", "ratio", "target"
    printf "%-62s %8s %8s\n", "64 in flight: sync / none", ratio("inflight=64/mode=sync", "inflight=64/mode=none"), ">= 0.5"
    printf "%-62s %8s %8s\n", "64 in flight: sync / one fsync per commit", ratio("inflight=64/mode=sync", "inflight=64/mode=sync-per-commit"), ">= 10"
    printf "%-62s %8s %8s\n", "8 in flight: sync / one fsync per commit", ratio("inflight=8/mode=sync", "inflight=8/mode=sync-per-commit"), ""
    printf "%-62s %7.1fx %8s\n", "8 in flight: sync / etcd CAS, disjoint keys, 8 clients (2.6k/s on the dev machine)", m("inflight=8/mode=sync") / 2600, ">= 20"
    if (rec != "") printf "\nrecovery: %.2f s to start on 10^6 paths (%s MiB state file)\n", rec, mib
  }' "$out"
