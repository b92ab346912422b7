package testcache

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// Touch finds the module from a package directory and reads its sources;
// readSources reads what it must and skips hidden directories.
func TestTouch(t *testing.T) {
	Touch(t) // this package's directory, two below go.mod

	root := t.TempDir()
	for name, body := range map[string]string{
		"go.mod":                  "module m\n",
		"a/a.go":                  "package a\n",
		"a/b.py":                  "x = 1\n",
		".git/ignored.go":         "not read\n",
		"a/node_modules/x/dep.js": "not read\n",
		"a/__pycache__/b.py":      "not read\n",
		"a/notes.txt":             "not a source\n",
		"a/deep/c/main.js":        "1\n",
	} {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	read, err := readSources(root)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range read {
		read[i], _ = filepath.Rel(root, p)
	}
	if want := []string{"a/a.go", "a/b.py", "a/deep/c/main.js", "go.mod"}; !slices.Equal(read, want) {
		t.Fatalf("read %q, want %q", read, want)
	}
	// An unreadable source fails it (root can read anything: skip there).
	if os.Geteuid() != 0 {
		if err := os.Chmod(filepath.Join(root, "a", "a.go"), 0); err != nil {
			t.Fatal(err)
		}
		if _, err := readSources(root); err == nil {
			t.Fatal("an unreadable source was not an error")
		}
	}
	t.Chdir(t.TempDir())
	if _, err := moduleRoot(); err == nil {
		t.Fatal("found a module above a temporary directory")
	}
}
