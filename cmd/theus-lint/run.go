package main

import (
	"cmp"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/tools/go/analysis/checker"
	"golang.org/x/tools/go/packages"

	"github.com/theus-run/theus/lint"
)

// Finding is one diagnostic, as -json prints it.
type Finding struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Column  int    `json:"column"`
	Rule    string `json:"rule"`
	Message string `json:"message"`
}

// Exit statuses of the standalone driver.
const (
	exitClean    = 0
	exitFindings = 1
	exitError    = 2
)

// run is the standalone driver: it loads the packages args name, runs
// every rule on them and prints what they find.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("theus-lint", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print the findings as a JSON array")
	tests := fs.Bool("test", true, "also check the packages' test files")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: theus-lint [-json] [-test=false] packages...")
		fmt.Fprintln(stderr, "       go vet -vettool=$(which theus-lint) packages...")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitError
	}
	patterns := fs.Args()
	if len(patterns) == 0 {
		patterns = []string{"."}
	}
	findings, err := check(patterns, *tests)
	if err != nil {
		fmt.Fprintf(stderr, "theus-lint: %v\n", err)
		return exitError
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "\t")
		if err := enc.Encode(findings); err != nil {
			fmt.Fprintf(stderr, "theus-lint: %v\n", err)
			return exitError
		}
	} else {
		for _, f := range findings {
			fmt.Fprintf(stdout, "%s:%d:%d: %s\n", f.File, f.Line, f.Column, f.Message)
		}
	}
	if len(findings) > 0 {
		return exitFindings
	}
	return exitClean
}

// check loads the packages and returns the findings, sorted, each once
// (a file is in a package and in its test variant).
func check(patterns []string, tests bool) ([]Finding, error) {
	cfg := &packages.Config{Mode: packages.LoadSyntax, Tests: tests}
	pkgs, err := packages.Load(cfg, patterns...)
	if err != nil {
		return nil, err
	}
	var errs []string
	packages.Visit(pkgs, nil, func(p *packages.Package) {
		for _, e := range p.Errors {
			errs = append(errs, e.Error())
		}
	})
	if len(errs) > 0 {
		return nil, fmt.Errorf("the packages do not load:\n\t%s", strings.Join(errs, "\n\t"))
	}
	graph, err := checker.Analyze(lint.Analyzers(), pkgs, nil)
	if err != nil {
		return nil, err
	}
	wd, _ := os.Getwd()
	seen := map[Finding]bool{}
	findings := []Finding{}
	for act := range graph.All() {
		if act.Err != nil {
			return nil, fmt.Errorf("%s: %w", act, act.Err)
		}
		if !act.IsRoot {
			continue
		}
		for _, d := range act.Diagnostics {
			pos := act.Package.Fset.Position(d.Pos)
			f := Finding{File: relative(wd, pos.Filename), Line: pos.Line, Column: pos.Column, Rule: d.Category, Message: d.Message}
			if !seen[f] {
				seen[f] = true
				findings = append(findings, f)
			}
		}
	}
	slices.SortFunc(findings, func(a, b Finding) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column), cmp.Compare(a.Message, b.Message))
	})
	return findings, nil
}

// relative returns name relative to dir when it lies under it.
func relative(dir, name string) string {
	if rel, err := filepath.Rel(dir, name); err == nil && !strings.HasPrefix(rel, "..") {
		return rel
	}
	return name
}
