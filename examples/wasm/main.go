// Command wasm serves a page where an agent loop runs as a Flux workflow
// over processes written in JavaScript, in theus compiled to WebAssembly
// (docs/WASM.md). It builds cmd/theus-wasm for GOOS=js GOARCH=wasm, copies
// Go's wasm_exec.js and theus.js beside it, and serves them with
// index.html on a loopback address until interrupted:
//
//	go run ./examples/wasm        # then open http://127.0.0.1:8418/
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "examples/wasm:", err)
		os.Exit(1)
	}
}
