package lint_test

import (
	"path/filepath"
	"testing"

	"golang.org/x/tools/go/analysis"
	"golang.org/x/tools/go/analysis/analysistest"

	"github.com/theus-run/theus/lint"
)

// Each rule has a package under testdata (a module that replaces this
// one with the working tree, so the real worker package is analyzed)
// with processes the rule must flag, marked "// want", and processes it
// must pass.
func TestRules(t *testing.T) {
	dir, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		pkg string
		a   *analysis.Analyzer
	}{
		{"e01", lint.E01}, {"e02", lint.E02}, {"e03", lint.E03}, {"e04", lint.E04},
		{"e05", lint.E05}, {"e06", lint.E06}, {"e07", lint.E07}, {"e08", lint.E08},
		{"c01", lint.C01}, {"w01", lint.W01},
	} {
		t.Run(tt.pkg, func(t *testing.T) {
			analysistest.Run(t, dir, tt.a, "example.com/pop/"+tt.pkg)
		})
	}
}

func TestAnalyzersValid(t *testing.T) {
	if err := analysis.Validate(lint.Analyzers()); err != nil {
		t.Fatal(err)
	}
}
