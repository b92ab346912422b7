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
	// ErrOpIDConflict: the op id was committed by another call (another
	// process, or other args): see OpDigest.
	ErrOpIDConflict = errors.New("cas: op id already used by another call")
	// ErrFenced: the commit's Options.Fence did not hold; nothing was
	// applied, and trying again cannot help.
	ErrFenced = errors.New("cas: fenced")
	// ErrWouldWait: with Options.NoWait, a VIP ticket not the caller's
	// overlaps the commit's keys, so it would wait for it; nothing was
	// applied.
	ErrWouldWait = errors.New("cas: the commit would wait for a VIP ticket")
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

// OpIDConflictError is a call refused because its op id, still in the
// window, was committed by another call (the digests differ). Nothing of
// it was applied.
type OpIDConflictError struct {
	OpID    string
	Version Version // the version the op id's first commit made
}

func (e *OpIDConflictError) Error() string {
	return fmt.Sprintf("cas: op id %q was committed at version %d by another call (another process or other args)", e.OpID, e.Version)
}

// Is makes errors.Is(err, ErrOpIDConflict) true.
func (e *OpIDConflictError) Is(target error) bool { return target == ErrOpIDConflict }
