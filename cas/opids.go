package cas

import "fmt"

// MaxOpIDLen bounds an op id.
const MaxOpIDLen = 128

// outcome is what the first commit of an op id returned.
type outcome struct {
	ver    Version
	result []byte
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

func (o *opIDs) get(id string) (outcome, bool) {
	r, ok := o.byID[id]
	return r, ok
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
// window: the version and the result stored with it.
func (s *Store) Lookup(id string) (Version, []byte, bool) {
	if id == "" {
		return 0, nil, false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	r, ok := s.ids.get(id)
	return r.ver, r.result, ok
}
