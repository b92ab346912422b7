package contract

import (
	"errors"
	"fmt"
)

// Sentinels for errors.Is. Every check returns a *Violation (or a
// *PathError) that matches exactly one of them.
var (
	ErrInvalidPath     = errors.New("contract: invalid path")
	ErrUndeclaredRead  = errors.New("contract: read of an undeclared path")
	ErrUndeclaredWrite = errors.New("contract: write of an undeclared path")
	ErrConstWrite      = errors.New("contract: write of a CONST path")
	ErrPrivateRead     = errors.New("contract: read of a PRIVATE path")
	ErrPrivateWrite    = errors.New("contract: write of a PRIVATE path (the supervisor's own records live there)")
	ErrLogNotAppend    = errors.New("contract: LOG paths only accept appends")
	ErrAppendNotLog    = errors.New("contract: append outside the root of a LOG")
	ErrSignalInPure    = errors.New("contract: PURE process reads a SIGNAL path")
	ErrInvalidContract = errors.New("contract: invalid contract")
)

// Violation is a contract rule broken by one path.
type Violation struct {
	Process string // the process name, when known
	Path    Path
	Rule    error // one of the sentinels above
}

func (v *Violation) Error() string {
	if v.Process != "" {
		return fmt.Sprintf("%v: %s (process %s)", v.Rule, v.Path, v.Process)
	}
	return fmt.Sprintf("%v: %s", v.Rule, v.Path)
}

// Unwrap returns the rule, so errors.Is(err, ErrConstWrite) works.
func (v *Violation) Unwrap() error { return v.Rule }
