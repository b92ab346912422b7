#!/usr/bin/env bash
# Measures theus compiled to WebAssembly against itself native, in one
# run, and prints ratios (docs/BENCHMARKS.md, "theus in WebAssembly"):
# the engine's one-path commit and Runner loop (cas/commit_bench_test.go)
# and one Runtime exec of a Go process (wasm/exec_bench_test.go), native
# (-cpu 1: WebAssembly has one thread), for js/wasm under Node (Go's
# go_js_wasm_exec) and for wasip1 under wazero; one exec of a JavaScript
# process from JavaScript (cmd/theus-wasm/testdata/bench.js, in Node);
# and the size of theus.wasm, plain, stripped and compressed, with what
# dominates it (scripts/lib/wasmsize.py: go tool nm does not read wasm).
# The three targets alternate, count rounds.
# Medians, not means, and each ratio within a round: on a shared machine
# a round in a few is slowed down many times over.
# Usage: scripts/bench-wasm.sh [benchtime] [count]   (default 1s 5)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/bench.sh
benchtime=${1:-1s}
count=${2:-5}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/wazero" github.com/tetratelabs/wazero/cmd/wazero
node_exec="$(go env GOROOT)/lib/wasm/go_js_wasm_exec"
wasi_exec="$tmp/wazero run -mount=/:/ -env-inherit -cachedir=$tmp/cache"
GOOS=js GOARCH=wasm go build -o "$tmp/theus.wasm" ./cmd/theus-wasm
GOOS=js GOARCH=wasm go build -ldflags='-s -w' -o "$tmp/theus-stripped.wasm" ./cmd/theus-wasm
cas='BenchmarkCommit/paths=1/|BenchmarkRunner$'
for target in native node wasi; do
  case $target in
  native) env=() ;;
  node) env=(GOOS=js GOARCH=wasm) ;;
  wasi) env=(GOOS=wasip1 GOARCH=wasm) ;;
  esac
  env "${env[@]}" go test -c -o "$tmp/cas-$target.test" ./cas
  env "${env[@]}" go test -c -o "$tmp/wasm-$target.test" ./wasm
done
run() { # target package bench
  local t=$1 pkg=$2 bench=$3 dir
  dir=$(go list -f '{{.Dir}}' "./$pkg")
  case $t in
  native) (cd "$dir" && "$tmp/$pkg-native.test" -test.run '^$' -test.bench "$bench" -test.benchtime "$benchtime" -test.cpu 1) ;;
  node) (cd "$dir" && "$node_exec" "$tmp/$pkg-node.test" -test.run '^$' -test.bench "$bench" -test.benchtime "$benchtime") ;;
  wasi) (cd "$dir" && $wasi_exec "$tmp/$pkg-wasi.test" -test.run '^$' -test.bench "$bench" -test.benchtime "$benchtime") ;;
  esac | sed -n "s/^\(Benchmark[^ 	]*\)/$t \1/p"
}
out="$tmp/out"
for _ in $(seq "$count"); do
  for t in native node wasi; do
    run "$t" cas "$cas"
    run "$t" wasm 'BenchmarkExec$'
  done
  node cmd/theus-wasm/testdata/bench.js "$tmp/theus.wasm" "$(go env GOROOT)/lib/wasm/wasm_exec.js" cmd/theus-wasm/theus.js "${benchtime%s}" | sed 's/^/node /'
done | tee "$out"
echo
awk "$awk_median"'
  # v[name, k]: the k-th round'"'"'s figure. A ratio is taken within each
  # round (the two sides ran a few seconds apart) and the median of the
  # rounds'"'"' ratios is printed, beside the medians of each side.
  { name = $1 " " $2; sub(/-[0-9]+$/, "", name)
    for (i = 3; i < NF; i++) if ($(i+1) == "ns/op") v[name, ++n[name]] = $i }
  function med(x,   a, i) { for (i = 1; i <= n[x]; i++) a[i] = v[x, i]; return median(a, n[x]) }
  function row(what, x, y,   r, i, k) {
    k = n[x] < n[y] ? n[x] : n[y]
    for (i = 1; i <= k; i++) r[i] = v[y, i] / v[x, i]
    printf "%-62s %10.0f %10.0f %8.2f\n", what, med(x), med(y), median(r, k) }
  END {
    printf "%-62s %10s %10s %8s\n", "figure (medians of the rounds, ns/op)", "native", "wasm", "ratio"
    row("one-path commit (cas), js/wasm in Node", "native BenchmarkCommit/paths=1/impl=cas", "node BenchmarkCommit/paths=1/impl=cas")
    row("one-path commit (cas), wasip1 in wazero", "native BenchmarkCommit/paths=1/impl=cas", "wasi BenchmarkCommit/paths=1/impl=cas")
    row("baseline: mutex map read-compare-write, Node", "native BenchmarkCommit/paths=1/impl=mutexmap", "node BenchmarkCommit/paths=1/impl=mutexmap")
    row("Runner loop, 1 path (cas), js/wasm in Node", "native BenchmarkRunner", "node BenchmarkRunner")
    row("Runner loop, 1 path (cas), wasip1 in wazero", "native BenchmarkRunner", "wasi BenchmarkRunner")
    row("Runtime exec of a Go process (wasm), js/wasm in Node", "native BenchmarkExec", "node BenchmarkExec")
    row("Runtime exec of a Go process (wasm), wasip1 in wazero", "native BenchmarkExec", "wasi BenchmarkExec")
    row("exec of a sync JS process from JS vs Go process, Node", "node BenchmarkExec", "node BenchmarkJSExec/process=sync")
    row("exec of an async JS process from JS vs Go process, Node", "node BenchmarkExec", "node BenchmarkJSExec/process=async")
  }' "$out"
echo
size() { stat -c %s "$1"; }
gz() { gzip -9 -c "$1" | wc -c; }
printf "%-40s %12s %12s\n" "theus.wasm (GOOS=js GOARCH=wasm)" "bytes" "gzip -9"
printf "%-40s %12d %12d\n" "plain" "$(size "$tmp/theus.wasm")" "$(gz "$tmp/theus.wasm")"
printf "%-40s %12d %12d\n" "-ldflags=-s -w" "$(size "$tmp/theus-stripped.wasm")" "$(gz "$tmp/theus-stripped.wasm")"
if command -v brotli >/dev/null; then
  printf "%-40s %12s %12d\n" "-ldflags=-s -w, brotli -q 11" "" "$(brotli -q 11 -c "$tmp/theus-stripped.wasm" | wc -c)"
fi
echo
python3 scripts/lib/wasmsize.py "$tmp/theus.wasm" 15
