//go:build js && wasm

// Command theus-wasm is theus for a web page or Node: the Context, its
// processes written in JavaScript and Flux, in one WebAssembly module.
// theus.js, beside it, loads the module and gives the API (docs/WASM.md):
//
//	GOOS=js GOARCH=wasm go build -o theus.wasm ./cmd/theus-wasm
//	cp "$(go env GOROOT)/lib/wasm/wasm_exec.js" cmd/theus-wasm/theus.js .
//
// Its one argument names the global under which it installs the raw API
// (theus.js picks one and takes it away); it then waits for calls until
// the page goes.
package main

import (
	"os"
	"syscall/js"

	"github.com/theus-run/theus/wasm"
)

func main() {
	name := "theus"
	if len(os.Args) > 1 {
		name = os.Args[1]
	}
	wasm.Install(js.Global(), name)
	select {} // the API's calls run on their own goroutines
}
