package importgraph

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The table of docs/ARCHITECTURE.md between these markers is Allowed.
const (
	tableBegin = "<!-- importgraph:begin -->"
	tableEnd   = "<!-- importgraph:end -->"
)

var codeName = regexp.MustCompile("`([^`]+)`")

// docTable reads the import table of a Markdown page: one row per
// package, "| `pkg` | `dep`, `dep` |" or "| `pkg` | nothing |".
func docTable(page string) (map[string][]string, error) {
	_, rest, ok := strings.Cut(page, tableBegin)
	if !ok {
		return nil, fmt.Errorf("no %s marker", tableBegin)
	}
	table, _, ok := strings.Cut(rest, tableEnd)
	if !ok {
		return nil, fmt.Errorf("no %s marker", tableEnd)
	}
	out := map[string][]string{}
	for line := range strings.Lines(table) {
		cells := strings.Split(strings.TrimSpace(line), "|")
		if len(cells) < 4 || cells[0] != "" {
			continue
		}
		pkg := codeName.FindStringSubmatch(cells[1])
		if pkg == nil {
			continue // the header and its rule
		}
		if _, dup := out[pkg[1]]; dup {
			return nil, fmt.Errorf("%s has two rows", pkg[1])
		}
		deps := []string{}
		for _, m := range codeName.FindAllStringSubmatch(cells[2], -1) {
			deps = append(deps, m[1])
		}
		if len(deps) == 0 && strings.TrimSpace(cells[2]) != "nothing" {
			return nil, fmt.Errorf("%s: %q is neither a list of packages nor \"nothing\"", pkg[1], strings.TrimSpace(cells[2]))
		}
		out[pkg[1]] = deps
	}
	return out, nil
}

// graphDiff returns one message per package whose allowed imports differ
// between the page and the code.
func graphDiff(page, code map[string][]string) []string {
	var bad []string
	for _, pkg := range slices.Sorted(maps.Keys(code)) {
		d, ok := page[pkg]
		if !ok {
			bad = append(bad, fmt.Sprintf("%s is in importgraph.Allowed but not in the page's table", pkg))
			continue
		}
		if !slices.Equal(slices.Sorted(slices.Values(d)), slices.Sorted(slices.Values(code[pkg]))) {
			bad = append(bad, fmt.Sprintf("%s: the page allows %v, importgraph.Allowed %v", pkg, d, code[pkg]))
		}
	}
	for _, pkg := range slices.Sorted(maps.Keys(page)) {
		if _, ok := code[pkg]; !ok {
			bad = append(bad, fmt.Sprintf("%s is in the page's table but not in importgraph.Allowed", pkg))
		}
	}
	return bad
}

func TestArchitectureDocMatchesGraph(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "ARCHITECTURE.md"))
	if err != nil {
		t.Fatal(err)
	}
	page, err := docTable(string(b))
	if err != nil {
		t.Fatalf("docs/ARCHITECTURE.md: %v", err)
	}
	for _, msg := range graphDiff(page, Allowed) {
		t.Errorf("docs/ARCHITECTURE.md: %s", msg)
	}
}

// The comparison itself must catch a page that drifted.
func TestGraphDiffCatchesDrift(t *testing.T) {
	page, err := docTable("text\n" + tableBegin + "\n| package | may import |\n|---|---|\n" +
		"| `cas` | `vip`, `contract` |\n| `vip` | `cas` |\n| `old` | nothing |\n" + tableEnd + "\n")
	if err != nil {
		t.Fatal(err)
	}
	bad := graphDiff(page, map[string][]string{
		"cas":      {"contract", "vip"}, // same, in another order
		"vip":      {},
		"protocol": {},
	})
	want := []string{
		"protocol is in importgraph.Allowed but not in the page's table",
		"vip: the page allows [cas], importgraph.Allowed []",
		"old is in the page's table but not in importgraph.Allowed",
	}
	if strings.Join(bad, "\n") != strings.Join(want, "\n") {
		t.Fatalf("graphDiff =\n%s\nwant\n%s", strings.Join(bad, "\n"), strings.Join(want, "\n"))
	}
	if _, err := docTable("| `cas` | `vip` |"); err == nil {
		t.Error("a page without the markers: no error")
	}
	if _, err := docTable(tableBegin + "\n| `cas` | vip |\n" + tableEnd); err == nil {
		t.Error("a row whose imports are not code names: no error")
	}
}
