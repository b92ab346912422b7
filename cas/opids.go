package cas

import (
	"crypto/sha256"
	"fmt"
)

// MaxOpIDLen bounds an op id.
const MaxOpIDLen = 128

// OpDigest identifies the call an op id was first committed for, so that
// the id cannot be reused for another one: the supervisor's is the
// SHA-256 of the process name, a zero byte and the canonical JSON args.
// The zero OpDigest is unknown (a caller that gives none, an op id
// restored from a file written before digests were kept): it matches
// every digest, as op ids did before.
type OpDigest [sha256.Size]byte

// Known reports whether d is a digest rather than unknown.
func (d OpDigest) Known() bool { return d != OpDigest{} }

// outcome is what the first commit of an op id returned.
type outcome struct {
	ver    Version
	result []byte
	digest OpDigest
}

// opIDs remembers the outcome of the last max committed op ids, oldest
// evicted first. Guarded by Store.mu.
type opIDs struct {
	max  int
	byID map[string]outcome
	ring []string // insertion order; ring[next] is the oldest once full
	next int
}

func (o *opIDs) init(max int) {
	if max == 0 {
		max = DefaultOpIDWindow
	}
	if max < 0 {
		max = 0
	}
	o.max = max
	o.byID = make(map[string]outcome)
}

// find returns the outcome of id's first commit, if id is in the window
// and that commit's digest matches d; an *OpIDConflictError if the id was
// committed for another call (both digests known and different).
func (o *opIDs) find(id string, d OpDigest) (outcome, bool, error) {
	r, ok := o.byID[id]
	if !ok {
		return outcome{}, false, nil
	}
	if d.Known() && r.digest.Known() && d != r.digest {
		return outcome{}, false, &OpIDConflictError{OpID: id, Version: r.ver}
	}
	return r, true, nil
}

func (o *opIDs) put(id string, r outcome) {
	if o.max == 0 {
		return
	}
	if len(o.ring) < o.max {
		o.ring = append(o.ring, id)
	} else {
		delete(o.byID, o.ring[o.next])
		o.ring[o.next] = id
		o.next = (o.next + 1) % o.max
	}
	o.byID[id] = r
}

func checkOpID(id string) error {
	if len(id) > MaxOpIDLen {
		return fmt.Errorf("%w: op id is %d bytes, over %d", ErrInvalidDelta, len(id), MaxOpIDLen)
	}
	return nil
}

// Lookup returns the outcome recorded for op id, if it committed within the
// window: the version and the result stored with it. It does not compare
// digests; LookupOp does.
func (s *Store) Lookup(id string) (Version, []byte, bool) {
	v, res, ok, _ := s.LookupOp(id, OpDigest{})
	return v, res, ok
}

// LookupOp is Lookup for a call with digest d: an op id committed for
// another call is an *OpIDConflictError (errors.Is ErrOpIDConflict).
func (s *Store) LookupOp(id string, d OpDigest) (Version, []byte, bool, error) {
	if id == "" {
		return 0, nil, false, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok, err := s.ids.find(id, d)
	return r.ver, r.result, ok, err
}
