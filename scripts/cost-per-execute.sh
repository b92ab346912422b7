#!/usr/bin/env bash
# CPU and system calls per noop execute at 256 in flight, all processes
# (the client and supervisor in the benchmark's process, and its two
# workers), next to the same figures per message of the batched msgpack
# echo between two processes: issue 14's "CPU per execute" and "writes
# per execute". Counted by perf stat (Debian linux-perf; root, or
# kernel.perf_event_paranoid <= -1 for the syscall tracepoints) over
# BenchmarkPipelined at 1 and N iterations: the difference is N
# executes, without the start-up of the supervisor and its workers.
# (Until 2026-12-02 it took N and 2N: the difference of two long runs
# carried the noise of both, and one build's figure swung by 50% between
# runs on the 2-vCPU VM; the run of 1 is a start-up of 40-80 ms whose
# noise is a few ms, 0.05 us an execute at N = 200000.)
# Usage: scripts/cost-per-execute.sh [N] [runs]   (default 200000 3)
# N must be large enough for the garbage collector to reach its steady
# state: at 20000 a run ends before most of its collections, and the
# CPU per execute comes out about half of what it is under sustained load.
# theus-noop runs twice: with Go's default collector (what a program that
# embeds the supervisor package gets) and with theus-supervisor's default
# GC floor (--gc-floor 64MiB, internal/gcfloor), which the binary and
# theus-bench run with: the figure of the product as shipped.
# Env: SUPERVISOR_TEST (a prebuilt test binary of ./supervisor, e.g.
#      CGO_ENABLED=0 go test -c -o bin/supervisor.test ./supervisor);
#      GC_FLOOR (default 64MiB, theus-supervisor's --gc-floor default).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/bench.sh
n=${1:-200000}
runs=${2:-3}
command -v perf >/dev/null || { echo "cost-per-execute.sh: needs perf (apt-get install linux-perf)" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bin=${SUPERVISOR_TEST:-}
if [ -z "$bin" ]; then
  go test -c -o "$tmp/supervisor.test" ./supervisor
  bin=$tmp/supervisor.test
fi
bin=$(realpath "$bin")
events=task-clock,context-switches,syscalls:sys_enter_write,syscalls:sys_enter_writev,syscalls:sys_enter_sendmsg,syscalls:sys_enter_sendto,syscalls:sys_enter_read,syscalls:sys_enter_recvmsg,syscalls:sys_enter_recvfrom,syscalls:sys_enter_futex
perf stat -e syscalls:sys_enter_write -- true >/dev/null 2>&1 || { echo "cost-per-execute.sh: perf cannot count syscall tracepoints here (run as root, or lower kernel.perf_event_paranoid)" >&2; exit 2; }
floor=${GC_FLOOR:-64MiB}
# count ROW ITERATIONS: one perf stat of the benchmark, as "event value"
# lines. ROW is an impl of BenchmarkPipelined, with "+floor" for the run
# under the GC floor.
count() {
  local impl=${1%+floor} gc=
  [ "$impl" = "$1" ] || gc=$floor
  (cd supervisor && THEUS_BENCH_GC_FLOOR=$gc perf stat -x, -e "$events" -- "$bin" -test.run '^$' \
    -test.bench "BenchmarkPipelined/impl=$impl\$" -test.benchtime "${2}x" 2>&1 >/dev/null) |
    awk -F, '$3 ~ /^[a-z]/ { print $3, $1 }'
}
printf '%-18s %4s %12s %10s %10s %10s %10s\n' impl run "cpu-us/op" "writes/op" "reads/op" "futex/op" "cs/op"
h0=$(host_times)
for impl in msgpack-echo theus-noop theus-noop+floor; do
  for r in $(seq "$runs"); do
    count "$impl" 1 > "$tmp/a"
    count "$impl" "$n" > "$tmp/b"
    awk -v n="$n" -v impl="$impl" -v r="$r" '
      FNR == NR { a[$1] = $2; next }
      { d[$1] = $2 - a[$1] }
      END {
        w = d["syscalls:sys_enter_write"] + d["syscalls:sys_enter_writev"] + d["syscalls:sys_enter_sendmsg"] + d["syscalls:sys_enter_sendto"]
        rd = d["syscalls:sys_enter_read"] + d["syscalls:sys_enter_recvmsg"] + d["syscalls:sys_enter_recvfrom"]
        printf "%-18s %4d %12.2f %10.3f %10.3f %10.3f %10.3f\n", impl, r, d["task-clock"] * 1000 / n, w / n, rd / n, d["syscalls:sys_enter_futex"] / n, d["context-switches"] / n
      }' "$tmp/a" "$tmp/b"
  done
done
host_share "$h0" "$(host_times)"
echo "(msgpack-echo: per message round trip between two processes; theus-noop: per execute, client -> supervisor -> worker and back, with Go's default collector; theus-noop+floor: the same under --gc-floor $floor, theus-supervisor's default. Targets, issue 14: theus-noop cpu-us/op <= 8, writes/op <= 0.5.)"
