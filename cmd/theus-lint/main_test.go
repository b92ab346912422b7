package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/theus-run/theus/internal/testcache"
)

// build builds theus-lint into a temporary directory and returns its path.
func build(t *testing.T) string {
	t.Helper()
	testcache.Touch(t) // the linter runs over the module's demo and examples
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("no go command: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "theus-lint")
	if out, err := exec.Command(goBin, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// runIn runs name with args in dir, offline, and returns its output and
// exit status.
func runIn(t *testing.T, dir, name string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOPROXY=off", "GOFLAGS=")
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("%s %v: %v", name, args, err)
	}
	return o.String(), e.String(), code
}

// The two ways to run it, on a module with a package that breaks two
// rules (bad) and one that keeps them (good).
func TestModes(t *testing.T) {
	bin := build(t)
	mod := filepath.Join("testdata", "mod")
	want := []*regexp.Regexp{
		regexp.MustCompile(`bad/bad\.go:15:6: POP-E01 fmt\.Println writes to stdout`),
		regexp.MustCompile(`bad/bad\.go:16:32: POP-C01 ctx\.Set writes domain\.b, which the contract of process "bad" does not declare`),
	}

	t.Run("standalone", func(t *testing.T) {
		out, errOut, code := runIn(t, mod, bin, "./...")
		if code != 1 {
			t.Fatalf("exit %d, want 1; stdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != len(want) {
			t.Fatalf("%d findings, want %d:\n%s", len(lines), len(want), out)
		}
		for i, re := range want {
			if !re.MatchString(lines[i]) {
				t.Errorf("finding %d = %q, want %v", i, lines[i], re)
			}
		}
	})
	t.Run("standalone clean", func(t *testing.T) {
		out, errOut, code := runIn(t, mod, bin, "./good")
		if code != 0 || out != "" {
			t.Fatalf("exit %d, stdout %q, stderr %q; want 0 and nothing", code, out, errOut)
		}
	})
	t.Run("json", func(t *testing.T) {
		out, errOut, code := runIn(t, mod, bin, "-json", "./...")
		if code != 1 {
			t.Fatalf("exit %d, want 1; stderr:\n%s", code, errOut)
		}
		var got []Finding
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, out)
		}
		if len(got) != 2 || got[0].Rule != "POP-E01" || got[1].Rule != "POP-C01" || got[0].File != "bad/bad.go" || got[0].Line != 15 || got[0].Column != 6 {
			t.Fatalf("findings %+v", got)
		}
	})
	t.Run("load error", func(t *testing.T) {
		_, errOut, code := runIn(t, mod, bin, "./nosuch")
		if code != 2 || !strings.Contains(errOut, "theus-lint:") {
			t.Fatalf("exit %d, stderr %q; want 2 and an error", code, errOut)
		}
	})
	t.Run("vettool", func(t *testing.T) {
		_, errOut, code := runIn(t, mod, "go", "vet", "-vettool="+bin, "./...")
		if code == 0 {
			t.Fatalf("go vet exited 0 on bad; stderr:\n%s", errOut)
		}
		for _, re := range want {
			if !re.MatchString(errOut) {
				t.Errorf("go vet output lacks %v:\n%s", re, errOut)
			}
		}
		if _, errOut, code := runIn(t, mod, "go", "vet", "-vettool="+bin, "./good"); code != 0 {
			t.Fatalf("go vet ./good: exit %d\n%s", code, errOut)
		}
	})
}

// The repository's own processes keep the rules (the CI runs the same).
func TestRepositoryClean(t *testing.T) {
	bin := build(t)
	out, errOut, code := runIn(t, filepath.Join("..", ".."), bin, "./demo/...", "./examples/...")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
}
