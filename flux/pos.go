package flux

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Pos is a position in a Flux file. Line and Col count from 1.
type Pos struct {
	File      string
	Line, Col int
}

// String returns "file:line:col".
func (p Pos) String() string { return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col) }

func comparePos(a, b Pos) int {
	return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col))
}

// Problem is one thing wrong with a file, at the position where it was found.
type Problem struct {
	Pos Pos
	Msg string
}

func (p Problem) String() string { return p.Pos.String() + ": " + p.Msg }

// LoadError holds every problem found while loading one or more files,
// sorted by position.
type LoadError struct {
	Problems []Problem
}

// Error returns one "file:line:col: msg" per line.
func (e *LoadError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// newLoadError sorts problems by position (then message, for a stable
// order) and returns them as a *LoadError, or nil when there are none.
func newLoadError(problems []Problem) error {
	if len(problems) == 0 {
		return nil
	}
	slices.SortStableFunc(problems, func(a, b Problem) int {
		return cmp.Or(comparePos(a.Pos, b.Pos), cmp.Compare(a.Msg, b.Msg))
	})
	return &LoadError{Problems: problems}
}
