//go:build !wasm

package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/theus-run/theus/internal/testcache"
)

// goEnv returns `go env NAME`.
func goEnv(t *testing.T, name string) string {
	t.Helper()
	out, err := exec.Command("go", "env", name).Output()
	if err != nil {
		t.Fatalf("go env %s: %v", name, err)
	}
	return strings.TrimSpace(string(out))
}

// buildWASM builds this program for GOOS=js GOARCH=wasm into dir.
func buildWASM(t *testing.T, dir string) string {
	t.Helper()
	testcache.Touch(t) // go build reads the module, node theus.js
	out := filepath.Join(dir, "theus.wasm")
	cmd := exec.Command("go", "build", "-o", out, ".")
	cmd.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("GOOS=js GOARCH=wasm go build: %v\n%s", err, b)
	}
	return out
}

// The JavaScript API, through theus.js, against the module built for
// js/wasm, in Node: testdata/api_test.js.
func TestAPIUnderNode(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: the JavaScript API is not tested here")
	}
	wasm := buildWASM(t, t.TempDir())
	loader := filepath.Join(goEnv(t, "GOROOT"), "lib", "wasm", "wasm_exec.js")
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join("testdata", "api_test.js"), wasm, loader, "theus.js")
	out, err := cmd.CombinedOutput()
	t.Logf("node testdata/api_test.js:\n%s", out)
	if err != nil {
		t.Fatalf("node: %v", err)
	}
	if !bytes.Contains(out, []byte(" passed, 0 failed\n")) {
		t.Fatal("the script did not report its tests")
	}
}

// moduleDeps lists the module's packages that pkgs depend on, built for
// goos/goarch, each with its directory.
func moduleDeps(t *testing.T, goos, goarch string, pkgs ...string) map[string]string {
	t.Helper()
	testcache.Touch(t) // go list reads the module
	args := append([]string{"list", "-deps", "-f", "{{if .Module}}{{if .Module.Main}}{{.ImportPath}} {{.Dir}}{{end}}{{end}}"}, pkgs...)
	cmd := exec.Command("go", args...)
	cmd.Env = append(os.Environ(), "GOOS="+goos, "GOARCH="+goarch)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("GOOS=%s GOARCH=%s go list: %v", goos, goarch, err)
	}
	deps := map[string]string{}
	for line := range strings.Lines(string(out)) {
		if pkg, dir, ok := strings.Cut(strings.TrimSpace(line), " "); ok {
			deps[strings.TrimPrefix(pkg, "github.com/theus-run/theus/")] = dir
		}
	}
	return deps
}

// The module built for the browser and for WASI runs the supervisor's
// engine packages themselves, not a fork: each is the same package, from
// the same directory, in the server's build and in both WASM builds, and
// the browser build holds nothing of the module besides them and the glue
// (wasm, internal/gopool, and internal/golabel: the pprof labels that
// flux and gopool put on their goroutines, which runtime/pprof keeps on
// js/wasm too).
func TestServerAndWASMShareTheEnginePackages(t *testing.T) {
	server := moduleDeps(t, goEnv(t, "GOHOSTOS"), goEnv(t, "GOHOSTARCH"), "github.com/theus-run/theus/cmd/theus-supervisor")
	browser := moduleDeps(t, "js", "wasm", "github.com/theus-run/theus/cmd/theus-wasm")
	wasi := moduleDeps(t, "wasip1", "wasm", "github.com/theus-run/theus/cas", "github.com/theus-run/theus/contract", "github.com/theus-run/theus/vip", "github.com/theus-run/theus/flux", "github.com/theus-run/theus/signal", "github.com/theus-run/theus/wasm")
	engine := []string{"cas", "contract", "vip", "flux", "signal", "protocol"}
	for _, pkg := range engine {
		dir, ok := server[pkg]
		if !ok {
			t.Fatalf("the supervisor does not build %s: the list is out of date (%v)", pkg, server)
		}
		if browser[pkg] != dir || wasi[pkg] != dir {
			t.Errorf("%s: the server builds %s, js/wasm %q, wasip1 %q", pkg, dir, browser[pkg], wasi[pkg])
		}
	}
	glue := []string{"cmd/theus-wasm", "wasm", "internal/gopool", "internal/golabel"}
	for pkg := range browser {
		if !slices.Contains(engine, pkg) && !slices.Contains(glue, pkg) {
			t.Errorf("the js/wasm build holds %s, which is neither an engine package nor the glue", pkg)
		}
	}
}
