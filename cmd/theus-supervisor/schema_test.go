package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBadSchemaStopsStart: a --schema file that does not compile stops
// the start with ExitSchema and the file, the pattern and the reason on
// stderr; so does a missing one.
func TestBadSchemaStopsStart(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("domain.accounts.*: {type: integr}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ file, want string }{
		{bad, `bad.yaml: pattern "domain.accounts.*"`},
		{filepath.Join(dir, "missing.json"), "missing.json"},
	} {
		cmd := dieWithTest(exec.Command(exe, "--workers", "1", "--durability", "none", "--socket", filepath.Join(dir, "s.sock"), "--schema", tt.file))
		cmd.Env = append(os.Environ(), "THEUS_TEST_MAIN=1")
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != ExitSchema || !strings.Contains(string(out), tt.want) {
			t.Fatalf("--schema %s: %v, output %s; want exit status %d and %q", tt.file, err, out, ExitSchema, tt.want)
		}
	}
}

// TestSchemaFlag: a good file becomes the supervisor's gate.
func TestSchemaFlag(t *testing.T) {
	f := filepath.Join(t.TempDir(), "s.json")
	if err := os.WriteFile(f, []byte(`{"domain.accounts.*": {"type": "integer", "minimum": 0}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	var fl flags
	if err := command(&fl).ParseFlags([]string{"--schema", f, "--durability", "none"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := fl.config()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Schema.Len() != 1 || cfg.Schema.Check("domain.accounts.a", []byte("-1")) == nil {
		t.Fatalf("the gate from %s: %d patterns, or -1 passes", f, cfg.Schema.Len())
	}
}
