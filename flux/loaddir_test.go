package flux

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, src := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadDir(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"b.yml":     "steps: [a]\n",
		"a.yaml":    "initial: s\nstates: {s: {}}\n",
		"notes.txt": "not flux",
		"c.yaml~":   "not flux either",
	})
	if err := os.Mkdir(filepath.Join(dir, "sub.yaml"), 0o700); err != nil {
		t.Fatal(err)
	}
	files, err := LoadDir(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 || files[0].Name != "a" || files[0].Kind != KindMachine || files[1].Name != "b" || files[1].Kind != KindWorkflow {
		t.Fatalf("LoadDir = %+v", files)
	}
	if files[1].Path != filepath.Join(dir, "b.yml") {
		t.Errorf("Path = %q", files[1].Path)
	}
}

func TestLoadDirErrors(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"a.yaml": "steps: [a]\n",
		"a.yml":  "steps: [a]\n",
		"b.yaml": "steps: [nope]\n",
		"c.yaml": "steps: []\n",
	})
	_, err := LoadDir(dir, func(p string) bool { return p != "nope" })
	var le *LoadError
	if !errors.As(err, &le) {
		t.Fatalf("LoadDir = %v; want a *LoadError", err)
	}
	want := strings.Join([]string{
		filepath.Join(dir, "a.yml") + `:1:1: the name "a" is also used by ` + filepath.Join(dir, "a.yaml"),
		filepath.Join(dir, "b.yaml") + `:1:9: unknown process "nope"`,
		filepath.Join(dir, "c.yaml") + `:1:1: steps: is empty: a block needs at least one step`,
	}, "\n")
	if err.Error() != want {
		t.Errorf("error:\n%s\nwant:\n%s", err, want)
	}
	if _, err := LoadDir(filepath.Join(dir, "missing"), nil); err == nil || errors.As(err, &le) {
		t.Errorf("LoadDir of a missing dir = %v; want a plain error", err)
	}
}

func TestLimits(t *testing.T) {
	nested := func(depth int) string {
		var b strings.Builder
		b.WriteString("steps:\n")
		indent := "  "
		for range depth - 1 {
			b.WriteString(indent + "- flux: run\n" + indent + "  steps:\n")
			indent += "    "
		}
		b.WriteString(indent + "- a\n")
		return b.String()
	}
	tests := []struct {
		name string
		src  string
		want string // "" for a file that loads
	}{
		{"file at the size limit", "steps: [a]\n#" + strings.Repeat("x", MaxFileSize-13) + "\n", ""},
		{"file over the size limit", "steps: [a]\n#" + strings.Repeat("x", MaxFileSize-12) + "\n",
			"w.yaml:1:1: the file is over the limit of 1048576 bytes"},
		{"nesting at the limit", nested(MaxDepth), ""},
		{"nesting over the limit", nested(MaxDepth + 1),
			"w.yaml:129:257: steps: blocks are nested deeper than 64"},
		{"instructions at the limit", "steps:\n" + strings.Repeat("- a\n", MaxInstrs), ""},
		{"instructions over the limit", "steps:\n" + strings.Repeat("- a\n", MaxInstrs+1),
			"w.yaml:100002:3: the program has more than 100000 instructions"},
		{"unclosed flow nesting is refused before parsing", "steps: " + strings.Repeat("[", 100000),
			"w.yaml:1:263: the YAML is nested deeper than 256 levels"},
		{"block nesting is refused before parsing", "steps:\n" + strings.Repeat("- ", 20000) + "a\n",
			"w.yaml:2:513: the YAML is nested deeper than 256 levels"},
		{"condition at the limit", "steps:\n- flux: if\n  condition: \"len('" + strings.Repeat("x", MaxExprLen-11) + "') > 0\"\n  then: [a]\n", ""},
		{"condition over the limit", "steps:\n- flux: if\n  condition: \"len('" + strings.Repeat("x", MaxExprLen-10) + "') > 0\"\n  then: [a]\n",
			"w.yaml:3:14: condition: expression is 4097 bytes, over the limit of 4096"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load("w.yaml", []byte(tt.src), nil)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Load: %.300v", err)
				}
				return
			}
			if err == nil || err.Error() != tt.want {
				t.Fatalf("Load = %.300v; want %s", err, tt.want)
			}
		})
	}
}
