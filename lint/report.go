package lint

import (
	"fmt"
	"go/token"
	"slices"
	"strings"

	"golang.org/x/tools/go/analysis"
)

// IgnoreDirective starts a comment that silences findings on its line
// and the next: "//theus-lint:ignore POP-E07[,POP-C01] reason". The
// reason is required; without one the directive silences nothing.
const IgnoreDirective = "//theus-lint:ignore"

// reporter reports one rule's findings in one pass, each position and
// message once (a function shared by processes is checked for each),
// skipping those an ignore directive covers.
type reporter struct {
	pass    *analysis.Pass
	rule    string
	seen    map[string]bool
	ignored map[lineKey]bool
}

type lineKey struct {
	file string
	line int
}

func newReporter(pass *analysis.Pass, rule string) *reporter {
	r := &reporter{pass: pass, rule: rule, seen: map[string]bool{}, ignored: map[lineKey]bool{}}
	for _, f := range pass.Files {
		for _, cg := range f.Comments {
			for _, c := range cg.List {
				rest, ok := strings.CutPrefix(c.Text, IgnoreDirective+" ")
				fields := strings.Fields(rest)
				if !ok || len(fields) < 2 || !slices.Contains(strings.Split(fields[0], ","), rule) {
					continue
				}
				pos := pass.Fset.Position(c.Slash)
				r.ignored[lineKey{pos.Filename, pos.Line}] = true
				r.ignored[lineKey{pos.Filename, pos.Line + 1}] = true
			}
		}
	}
	return r
}

func (r *reporter) report(pos token.Pos, format string, args ...any) {
	msg := r.rule + " " + fmt.Sprintf(format, args...)
	p := r.pass.Fset.Position(pos)
	key := fmt.Sprintf("%s:%d:%d %s", p.Filename, p.Line, p.Column, msg)
	if r.seen[key] || r.ignored[lineKey{p.Filename, p.Line}] {
		return
	}
	r.seen[key] = true
	r.pass.Report(analysis.Diagnostic{Pos: pos, Category: r.rule, Message: msg})
}

// found returns the result of Processes in pass.
func found(pass *analysis.Pass) *Found {
	return pass.ResultOf[Processes].(*Found)
}

// newRule returns the analyzer of one rule.
func newRule(id, doc string, run func(*analysis.Pass, *reporter)) *analysis.Analyzer {
	return &analysis.Analyzer{
		Name:     "pop_" + strings.ToLower(strings.TrimPrefix(id, "POP-")),
		Doc:      id + ": " + doc,
		Requires: []*analysis.Analyzer{Processes},
		Run: func(pass *analysis.Pass) (any, error) {
			if len(found(pass).Processes) > 0 {
				run(pass, newReporter(pass, id))
			}
			return nil, nil
		},
	}
}
