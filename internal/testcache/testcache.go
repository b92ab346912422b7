// Package testcache keeps Go's test cache honest for a test that reaches
// the module's sources through another program: go build, go list, go
// vet with a vettool, pytest, node. The cache keys a result on the test
// binary and on the files the test itself opens, so a change to a file
// that only the other program reads (a package the test binary does not
// import, a Python module, theus.js) reused a stale pass: an import added
// to flux once passed cmd/theus-wasm's check from the cache, in a clean
// clone, on a machine whose cache was warm. Such a test calls Touch,
// which reads the module's sources in the test's own process, and any
// change to them runs it again.
//
// It only reads files. It never builds, runs or writes anything.
package testcache

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sourceExts are the files Touch reads: what the module's programs are
// built or run from.
var sourceExts = []string{".go", ".py", ".js", ".mod", ".sum"}

// Touch reads every source file of the module that holds the test's
// working directory (its package directory), below the directory with
// go.mod, skipping hidden directories. It fails tb if it finds no module
// or cannot read a file.
func Touch(tb testing.TB) {
	tb.Helper()
	root, err := moduleRoot()
	if err != nil {
		tb.Fatalf("testcache: %v", err)
	}
	if _, err := readSources(root); err != nil {
		tb.Fatalf("testcache: %v", err)
	}
}

// moduleRoot is the nearest directory at or above the working directory
// that has a go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		up := filepath.Dir(dir)
		if up == dir {
			return "", errors.New("no go.mod at or above the working directory")
		}
		dir = up
	}
}

// readSources reads the source files under root and returns their paths.
func readSources(root string) ([]string, error) {
	var read []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules" || d.Name() == "__pycache__") {
				return filepath.SkipDir
			}
			return nil
		}
		for _, ext := range sourceExts {
			if strings.HasSuffix(path, ext) {
				read = append(read, path)
				_, err := os.ReadFile(path)
				return err
			}
		}
		return nil
	})
	return read, err
}
