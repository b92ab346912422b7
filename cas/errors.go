package cas

import (
	"errors"
	"fmt"
	"strings"

	"github.com/theus-run/theus/contract"
)

// Sentinel errors; match with errors.Is.
var (
	ErrConflict     = errors.New("cas: conflict")
	ErrInvalidDelta = errors.New("cas: invalid delta")
	ErrFutureSnap   = errors.New("cas: snapshot version is ahead of the store")
	ErrClosed       = errors.New("cas: store closed")
)

// ConflictError is a commit refused because what it depended on changed.
// Nothing of the delta was applied.
type ConflictError struct {
	Snapshot Version         // the version the commit was based on
	Current  Version         // the store's version when it was refused
	Paths    []contract.Path // read or written paths that changed; may be empty in strict mode
	Reason   string          // "", "strict", or "snapshot too old"
}

func (e *ConflictError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "cas: conflict: snapshot %d, store at %d", e.Snapshot, e.Current)
	if e.Reason != "" {
		b.WriteString(" (" + e.Reason + ")")
	}
	if len(e.Paths) > 0 {
		b.WriteString(": changed ")
		for i, p := range e.Paths {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(string(p))
		}
	}
	return b.String()
}

// Is makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }
