#!/usr/bin/env bash
# Times linting the whole repository with theus-lint against go vet ./...,
# one run each, on the same warm build cache and a cold vet cache: a
# fresh GOCACHE, filled first with the export data both need (go list
# -export, which compiles every package and test of the module and their
# dependencies), so each tool then analyzes every package rather than
# replaying cached results. Rows: go vet ./... (its default analyzers),
# theus-lint ./... (standalone: go/packages and every POP rule), and
# go vet -vettool=theus-lint ./... (the POP rules through go vet).
# theus-lint exits 1 here: the repository's tests hold processes that
# break the rules on purpose (internal/testprocs).
# Usage: scripts/bench-lint.sh
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'chmod -R u+w "$tmp"; rm -rf "$tmp"' EXIT
export GOCACHE="$tmp/cache"
go build -o "$tmp/theus-lint" ./cmd/theus-lint
echo "warming $GOCACHE (go list -export -deps -test ./...)"
go list -export -deps -test ./... >/dev/null
secs() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null 2>&1 || true; t1=$(date +%s.%N); echo "$t1 - $t0" | bc; }
vet=$(secs go vet ./...)
lint=$(secs "$tmp/theus-lint" ./...)
vettool=$(secs go vet -vettool="$tmp/theus-lint" ./...)
printf '%-40s %8s %8s\n' command seconds "/ go vet"
printf '%-40s %8.1f %8s\n' "go vet ./..." "$vet" 1x
printf '%-40s %8.1f %7.2fx\n' "theus-lint ./..." "$lint" "$(echo "$lint / $vet" | bc -l)"
printf '%-40s %8.1f %7.2fx\n' "go vet -vettool=theus-lint ./..." "$vettool" "$(echo "$vettool / $vet" | bc -l)"
