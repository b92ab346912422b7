#!/usr/bin/env bash
# Runs the engine benchmarks (cas/commit_bench_test.go) and prints each
# figure as a ratio to the baseline measured in the same run. The set
# runs count times in turn (not each benchmark count times in a row), so
# each round's ratios compare runs a second apart; the script prints the
# means of the rounds, and the median and range of the rounds' ratios.
# Usage: scripts/bench-engine.sh [benchtime] [count]   (default 1s 3)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/bench.sh
benchtime=${1:-1s}
count=${2:-3}
out=$(mktemp)
trap 'rm -f "$out" "$out.test"' EXIT
go test -c -o "$out.test" ./cas
h0=$(host_times)
case $count in '' | *[!0-9]* | 0) echo "bench-engine: count must be a positive integer, not '$count'" >&2; exit 2 ;; esac
for _ in $(seq "$count"); do
  (cd cas && "$out.test" -test.timeout 60m -test.run '^$' -test.bench . -test.benchtime "$benchtime" -test.benchmem) | tee -a "$out"
done
host=$(host_share "$h0" "$(host_times)")
echo
awk "$awk_median"'
  /^Benchmark/ {
    name = $1; sub(/-[0-9]+$/, "", name)
    for (i = 2; i < NF; i++) {
      if ($(i+1) == "ns/op") { ns[name] += $i; n[name]++; one[name, n[name]] = $i }
      if ($(i+1) == "commits/s") cps[name] += $i
      if ($(i+1) == "retries/commit") rpc[name] += $i
    }
  }
  function m(x) { return ns[x] / n[x] }
  function c(x) { return cps[x] / n[x] }
  # rounds(a, b): the median and range of a / b, round by round.
  function rounds(a, b,   k, i, r, med) {
    k = n[a] < n[b] ? n[a] : n[b]
    for (i = 1; i <= k; i++) r[i] = one[a, i] / one[b, i]
    med = median(r, k) # sorts r
    return sprintf("median %.2f (%.2f-%.2f) of %d rounds", med, r[1], r[k], k)
  }
  END {
    printf "%-58s %8s %8s\n", "figure (means of the runs)", "ratio", "target"
    printf "%-58s %8.2f %8s\n", "one-path commit, cas / mutex map", m("BenchmarkCommit/paths=1/impl=cas") / m("BenchmarkCommit/paths=1/impl=mutexmap"), "<= 3"
    printf "%-58s %8.2f %8s\n", "4-path commit, cas / mutex map", m("BenchmarkCommit/paths=4/impl=cas") / m("BenchmarkCommit/paths=4/impl=mutexmap"), "<= 3"
    printf "%-58s %8.2f %8s\n", "snapshot, 10^6 paths / 10^3 paths", m("BenchmarkSnapshot/paths=1000000/op=new") / m("BenchmarkSnapshot/paths=1000/op=new"), "<= 2"
    printf "%-58s %8.2f %8s\n", "hot key commits/s, 8 goroutines / 1 (cas)", c("BenchmarkHotKey/goroutines=8") / c("BenchmarkHotKey/goroutines=1"), ">= 0.8"
    printf "%-58s %8.2f %8s\n", "hot key commits/s, 8 goroutines / 1 (mutex map)", c("BenchmarkHotKeyMutexMap/goroutines=8") / c("BenchmarkHotKeyMutexMap/goroutines=1"), "-"
    printf "%-58s %8.3f %8s\n", "hot key retries per commit, 8 goroutines (cas)", rpc["BenchmarkHotKey/goroutines=8"] / n["BenchmarkHotKey/goroutines=8"], "<= 1.0"
    print ""
    print "one-path commit, cas / mutex map, by round: " rounds("BenchmarkCommit/paths=1/impl=cas", "BenchmarkCommit/paths=1/impl=mutexmap")
    print "4-path commit, cas / mutex map, by round:   " rounds("BenchmarkCommit/paths=4/impl=cas", "BenchmarkCommit/paths=4/impl=mutexmap")
  }' "$out"
echo "$host"
