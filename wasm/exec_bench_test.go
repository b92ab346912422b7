package wasm

import (
	"context"
	"testing"
)

// BenchmarkExec is one exec of counter.add, a Go process that reads and
// writes one path: the Runtime's whole path (contract bound, snapshot,
// the process, the checks, the commit). scripts/bench-wasm.sh runs it
// natively, under Node (js/wasm) and under wazero (wasip1).
func BenchmarkExec(b *testing.B) {
	r := newRuntime(b, Config{})
	register(b, r, "counter.add", counterDecl, counterAdd(nil))
	ctx := context.Background()
	req := Request{Process: "counter.add"}
	for b.Loop() {
		if _, err := r.Exec(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}
