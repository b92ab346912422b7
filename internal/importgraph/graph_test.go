package importgraph

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// moduleImports parses every non-test Go file of the module and returns
// each package's imports of other module packages.
func moduleImports(t *testing.T, root string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		pkg := filepath.ToSlash(rel)
		if _, ok := out[pkg]; !ok {
			out[pkg] = nil
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if dep, ok := strings.CutPrefix(p, Module+"/"); ok {
				out[pkg] = append(out[pkg], dep)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestModuleFollowsDesignGraph(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found: %v", err)
	}
	imports := moduleImports(t, root)
	if _, ok := imports["cas"]; !ok {
		t.Fatal("the walk did not find package cas: the test is looking in the wrong place")
	}
	for _, msg := range Check(imports) {
		t.Error(msg)
	}
}

// The check itself must catch what the design forbids.
func TestCheckCatchesForbiddenEdges(t *testing.T) {
	bad := Check(map[string][]string{
		"vip":        {"cas"},        // vip never imports cas
		"protocol":   {"contract"},   // leaves import nothing
		"client":     {"supervisor"}, // nothing imports supervisor
		"newpackage": nil,            // unknown packages must be placed
		"cas":        {"contract", "vip"},
		"durable":    {"cas"},
	})
	want := []string{
		"client must not import supervisor",
		"newpackage is not in the import graph (add it to importgraph.Allowed and docs/ARCHITECTURE.md)",
		"protocol must not import contract",
		"vip must not import cas",
	}
	if strings.Join(bad, "\n") != strings.Join(want, "\n") {
		t.Fatalf("Check =\n%s\nwant\n%s", strings.Join(bad, "\n"), strings.Join(want, "\n"))
	}
}
