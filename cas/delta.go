package cas

import (
	"fmt"

	"github.com/theus-run/theus/contract"
)

// Write is one change in a delta.
type Write struct {
	Path  contract.Path
	Op    contract.Op
	Value []byte // for OpSet and OpAppend; copied by Commit
}

// Delta is what a process returns: the writes to apply atomically, in order.
type Delta []Write

// Set adds a write of v at p.
func (d *Delta) Set(p contract.Path, v []byte) {
	*d = append(*d, Write{Path: p, Op: contract.OpSet, Value: v})
}

// Delete adds a delete of the value at p (p alone, not its subtree).
func (d *Delta) Delete(p contract.Path) {
	*d = append(*d, Write{Path: p, Op: contract.OpDelete})
}

// Append adds v as the next entry of the log rooted at p. The entry's path
// is p.<seq>, where seq is a 20-digit decimal (so entries sort in order);
// appends commute, so they never conflict with each other.
func (d *Delta) Append(p contract.Path, v []byte) {
	*d = append(*d, Write{Path: p, Op: contract.OpAppend, Value: v})
}

// EntryPath is the path of the seq-th entry appended to the log at root.
func EntryPath(root contract.Path, seq uint64) contract.Path { return entryPath(root, seq) }

// seqDigits is the width of an appended entry's last segment.
const seqDigits = 20

// MaxValueLen bounds one value: 64 MiB. Anything larger belongs in the
// HEAVY zone.
const MaxValueLen = 64 << 20

// check validates a delta before anything is applied: valid paths, known
// ops, bounded values, room for append entries, and no path both set and
// deleted (or set twice) in one delta. A write whose entry in nodes is
// not nil (the store's node for its path) has a valid path already.
func (d Delta) check(nodes []*node) error {
	firstDup := -1
	if len(d) > maxScan {
		firstDup = d.firstDuplicate()
	}
	for i, w := range d {
		if nodes == nil || nodes[i] == nil {
			if _, err := contract.Parse(string(w.Path)); err != nil {
				return fmt.Errorf("%w: write %d: %w", ErrInvalidDelta, i, err)
			}
		}
		switch w.Op {
		case contract.OpSet, contract.OpDelete:
		case contract.OpAppend:
			if len(w.Path)+1+seqDigits > contract.MaxPathLen {
				return fmt.Errorf("%w: append to %s: entry path would exceed %d bytes", ErrInvalidDelta, w.Path, contract.MaxPathLen)
			}
			if countDots(w.Path)+2 > contract.MaxPathDepth {
				return fmt.Errorf("%w: append to %s: entry path would exceed %d segments", ErrInvalidDelta, w.Path, contract.MaxPathDepth)
			}
		default:
			return fmt.Errorf("%w: write %d to %s: unknown op %v", ErrInvalidDelta, i, w.Path, w.Op)
		}
		if w.Op == contract.OpDelete && w.Value != nil {
			return fmt.Errorf("%w: delete of %s carries a value", ErrInvalidDelta, w.Path)
		}
		if len(w.Value) > MaxValueLen {
			return fmt.Errorf("%w: value at %s is %d bytes, over %d", ErrInvalidDelta, w.Path, len(w.Value), MaxValueLen)
		}
		if w.Op == contract.OpAppend {
			continue
		}
		dup := i == firstDup
		if len(d) <= maxScan {
			dup = d.writesBefore(i, w.Path)
		}
		if dup {
			return fmt.Errorf("%w: %s is written twice", ErrInvalidDelta, w.Path)
		}
	}
	return nil
}

// maxScan is the longest delta that is scanned write by write: past it,
// writes gives up (parsing a path again costs less than looking for it)
// and check finds duplicates with a map.
const maxScan = 16

// writes reports whether d, a delta that check accepted, names p (so p
// is a valid path). It looks only in a short delta.
func (d Delta) writes(p contract.Path) bool {
	if len(d) > maxScan {
		return false
	}
	for _, w := range d {
		if w.Path == p {
			return true
		}
	}
	return false
}

// firstDuplicate returns the index of the first set or delete whose path
// a set or delete before it targets, or -1: for a long delta, where
// scanning the writes before each one would be quadratic. (A function of
// its own: its map would make check's frame, which every commit zeroes,
// larger.)
func (d Delta) firstDuplicate() int {
	seen := make(map[contract.Path]struct{}, len(d))
	for i, w := range d {
		if w.Op == contract.OpAppend {
			continue
		}
		if _, ok := seen[w.Path]; ok {
			return i
		}
		seen[w.Path] = struct{}{}
	}
	return -1
}

// writesBefore reports whether a set or delete before index i targets p.
func (d Delta) writesBefore(i int, p contract.Path) bool {
	for _, w := range d[:i] {
		if w.Path == p && w.Op != contract.OpAppend {
			return true
		}
	}
	return false
}

func countDots(p contract.Path) int {
	n := 0
	for i := 0; i < len(p); i++ {
		if p[i] == '.' {
			n++
		}
	}
	return n
}
