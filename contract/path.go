package contract

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Limits on a path. They bound every structure keyed by paths and every
// decoder that reads one from another process.
const (
	MaxPathLen   = 256 // bytes, dots included
	MaxPathDepth = 32  // segments
)

// Path is a validated context path. The zero Path is invalid; obtain one
// from Parse or MustParse. A Path is a string underneath, so it is cheap to
// copy, compare and use as a map key.
type Path string

// Parse validates s and returns it as a Path. The error is a *PathError
// naming s and what is wrong with it.
func Parse(s string) (Path, error) {
	if err := validate(s); err != nil {
		return "", err
	}
	return Path(s), nil
}

// MustParse is Parse for constants in code; it panics on an invalid path.
func MustParse(s string) Path {
	p, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return p
}

// PathError reports an invalid path.
type PathError struct {
	Path   string // the offending input, truncated to MaxPathLen+16 bytes
	Reason string
}

func (e *PathError) Error() string {
	return fmt.Sprintf("contract: invalid path %q: %s", e.Path, e.Reason)
}

// Is makes errors.Is(err, ErrInvalidPath) true for every *PathError.
func (e *PathError) Is(target error) bool { return target == ErrInvalidPath }

// segmentByte marks each byte a segment allows, [A-Za-z0-9_-]: one load
// per byte where five ranges took up to ten tests.
var segmentByte = [256]bool{
	'-': true, '0': true, '1': true, '2': true, '3': true, '4': true, '5': true, '6': true, '7': true, '8': true, '9': true,
	'A': true, 'B': true, 'C': true, 'D': true, 'E': true, 'F': true, 'G': true, 'H': true, 'I': true, 'J': true, 'K': true, 'L': true, 'M': true,
	'N': true, 'O': true, 'P': true, 'Q': true, 'R': true, 'S': true, 'T': true, 'U': true, 'V': true, 'W': true, 'X': true, 'Y': true, 'Z': true,
	'_': true, 'a': true, 'b': true, 'c': true, 'd': true, 'e': true, 'f': true, 'g': true, 'h': true, 'i': true, 'j': true, 'k': true, 'l': true, 'm': true,
	'n': true, 'o': true, 'p': true, 'q': true, 'r': true, 's': true, 't': true, 'u': true, 'v': true, 'w': true, 'x': true, 'y': true, 'z': true,
}

func validate(s string) error {
	bad := func(reason string) error {
		shown := s
		if len(shown) > MaxPathLen+16 {
			shown = shown[:MaxPathLen+16] + "..."
		}
		return &PathError{Path: shown, Reason: reason}
	}
	if s == "" {
		return bad("empty")
	}
	if len(s) > MaxPathLen {
		return bad(fmt.Sprintf("longer than %d bytes", MaxPathLen))
	}
	depth, segLen := 1, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case segmentByte[c]:
			segLen++
		case c == '.':
			if segLen == 0 {
				return bad(fmt.Sprintf("empty segment at byte %d", i))
			}
			depth++
			segLen = 0
		default:
			r, _ := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError {
				return bad(fmt.Sprintf("byte %d is 0x%02x, not UTF-8; segments allow only [A-Za-z0-9_-]", i, c))
			}
			return bad(fmt.Sprintf("byte %d is %q; segments allow only [A-Za-z0-9_-]", i, r))
		}
	}
	if segLen == 0 {
		return bad("empty last segment")
	}
	if depth > MaxPathDepth {
		return bad(fmt.Sprintf("deeper than %d segments", MaxPathDepth))
	}
	return nil
}

// String returns the path as text.
func (p Path) String() string { return string(p) }

// Segments returns the path's segments. It allocates; prefer Covers and
// Zone, which do not.
func (p Path) Segments() []string { return strings.Split(string(p), ".") }

// Parent returns the path without its last segment, and false for a path of
// one segment.
func (p Path) Parent() (Path, bool) {
	i := strings.LastIndexByte(string(p), '.')
	if i < 0 {
		return "", false
	}
	return p[:i], true
}

// Child returns p.seg. seg must be a valid single segment.
func (p Path) Child(seg string) (Path, error) {
	return Parse(string(p) + "." + seg)
}

// Covers reports whether q lies in the subtree rooted at p: q equals p or
// starts with p followed by a dot.
func (p Path) Covers(q Path) bool {
	return Covers(string(p), string(q))
}

// Overlaps reports whether one of p and q covers the other: a write to one
// can change what a subtree read of the other returns.
func (p Path) Overlaps(q Path) bool {
	return Covers(string(p), string(q)) || Covers(string(q), string(p))
}

// Covers is Path.Covers on plain strings, for callers that hold paths as
// strings (the VIP arbiter, decoders).
func Covers(root, q string) bool {
	if len(q) < len(root) || q[:len(root)] != root {
		return false
	}
	return len(q) == len(root) || q[len(root)] == '.'
}
