package ring

import (
	"errors"
	"fmt"

	"github.com/theus-run/theus/protocol"
)

var (
	// ErrFull: the ring has no room for the record now. Nothing was
	// written; the caller sends it another way or waits (Writer.Wait).
	ErrFull = errors.New("ring: full")
	// ErrEmpty: no record is published now.
	ErrEmpty = errors.New("ring: empty")
	// ErrClosed: the pair was closed in this process.
	ErrClosed = errors.New("ring: closed")
	// ErrTooLarge: a record larger than MaxRecord of the ring.
	ErrTooLarge = errors.New("ring: record too large")
	// ErrBadLayout: a memfd that is not a ring pair this version made.
	ErrBadLayout = errors.New("ring: not a ring pair")
	// ErrCorrupt matches every *CorruptError.
	ErrCorrupt = errors.New("ring: corrupt")
)

// CorruptError says that the peer broke the ring's rules: a counter out
// of bounds, a header that is not a record or a wrap marker, a record
// that runs past the published tail or the end of the buffer. The ring
// is unusable from then on (the error is sticky); the caller kills the
// peer. errors.Is matches ErrCorrupt and protocol.ErrBadFrame, so the
// error keeps a protocol code if it is relayed.
type CorruptError struct {
	Ring   string // "request" or "reply"
	At     uint64 // the consumer's head (byte count) where it was found
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("ring: %s ring corrupt at byte %d: %s", e.Ring, e.At, e.Reason)
}

// Is reports whether target is ErrCorrupt.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// Unwrap returns protocol.ErrBadFrame: a corrupt ring is bytes that are
// not a valid frame.
func (e *CorruptError) Unwrap() error { return protocol.ErrBadFrame }

func corrupt(m *ringMem, at uint64, format string, args ...any) error {
	return &CorruptError{Ring: m.name, At: at, Reason: fmt.Sprintf(format, args...)}
}
