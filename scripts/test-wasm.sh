#!/usr/bin/env bash
# Runs the engine's own tests compiled to WebAssembly (GOOS=wasip1
# GOARCH=wasm), each test binary run by wazero, the WASM runtime pinned as
# a tool in go.mod (github.com/tetratelabs/wazero/cmd/wazero). Its `run`
# is what go test -exec needs, the command line Go's own
# lib/wasm/go_wasip1_wasm_exec gives it: the host's / mounted at / (the
# package directory and testdata resolve) and the environment inherited
# (PWD is the package directory). Then, with Node, package wasm's tests
# for GOOS=js in Node, as Go's go_js_wasm_exec runs them. Extra arguments
# go to go test.
# Usage: scripts/test-wasm.sh [go test flags]      (.ci/run calls it)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/wazero" github.com/tetratelabs/wazero/cmd/wazero
GOOS=wasip1 GOARCH=wasm go test -timeout 20m \
  -exec "$bin/wazero run -mount=/:/ -env-inherit -cachedir=$bin/cache" \
  "$@" ./contract ./vip ./cas ./signal ./flux ./wasm
if command -v node >/dev/null; then
  GOOS=js GOARCH=wasm go test -exec "$(go env GOROOT)/lib/wasm/go_js_wasm_exec" "$@" ./wasm
fi
