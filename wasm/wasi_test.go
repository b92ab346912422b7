//go:build !wasm

package wasm

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestEngineUnderWASM runs the engine's own tests compiled to
// WebAssembly, through scripts/test-wasm.sh: contract, vip, cas, signal,
// flux and this package for GOOS=wasip1 under wazero (pinned as a tool in
// go.mod: nothing is installed), and this package for GOOS=js under Node
// where node is on PATH. It is here so that `go test ./...`, the README's
// test command, runs them (about a minute and a half on two cores).
func TestEngineUnderWASM(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: compiles and runs six packages' tests as WebAssembly (about 90 s)")
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", filepath.Join(root, "scripts", "test-wasm.sh"), "-count=1")
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("scripts/test-wasm.sh: %v (its output is above)", err)
	}
}
