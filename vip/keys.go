package vip

import "strings"

// overlaps reports whether two key sets share a subtree: some key of one is
// equal to, a prefix of, or inside some key of the other.
func overlaps(a, b []string) bool {
	for _, x := range a {
		for _, y := range b {
			if covers(x, y) || covers(y, x) {
				return true
			}
		}
	}
	return false
}

// covers reports whether q is root or lies under root at a dot boundary.
func covers(root, q string) bool {
	if len(q) < len(root) || q[:len(root)] != root {
		return false
	}
	return len(q) == len(root) || q[len(root)] == '.'
}

// heldKeys indexes the keys of the held tickets, so that finding the
// held ticket over a key costs a map lookup or two, not a look at every
// held ticket: the store asks it (Blocker) inside its commit critical
// section, for every commit while any ticket is held. Held tickets never
// overlap one another (a ticket is granted only when it overlaps none
// held), so a key is held by one ticket at most.
type heldKeys struct {
	exact map[string]*Ticket // a held key, to the ticket holding it
	below map[string]int     // a strict dot-prefix of held keys, to how many
	// depth counts the held keys by their dots (the last counts every
	// deeper one too), and depths has bit d set while depth[d] > 0: a
	// prefix of k is looked up only at a depth where a key is held, and
	// below only when a key deeper than k is.
	depth  [maxDepth + 1]int
	depths uint16
}

// maxDepth is the deepest key depth counts apart.
const maxDepth = 15

// dots returns how many dots k has, at most maxDepth.
func dots(k string) int { return min(strings.Count(k, "."), maxDepth) }

// count adds n to the keys held at k's depth.
func (h *heldKeys) count(k string, n int) {
	d := dots(k)
	h.depth[d] += n
	if h.depth[d] > 0 {
		h.depths |= 1 << d
	} else {
		h.depths &^= 1 << d
	}
}

// add indexes t's keys.
func (h *heldKeys) add(t *Ticket) {
	if h.exact == nil {
		h.exact, h.below = map[string]*Ticket{}, map[string]int{}
	}
	for _, k := range t.keys {
		h.exact[k] = t
		h.count(k, 1)
		for i := range len(k) {
			if k[i] == '.' {
				h.below[k[:i]]++
			}
		}
	}
}

// remove drops what add indexed for t.
func (h *heldKeys) remove(t *Ticket) {
	for _, k := range t.keys {
		delete(h.exact, k)
		h.count(k, -1)
		for i := range len(k) {
			if k[i] == '.' {
				if h.below[k[:i]]--; h.below[k[:i]] == 0 {
					delete(h.below, k[:i])
				}
			}
		}
	}
}

// holder returns the held ticket with a key that covers k (k itself or a
// dot-prefix of k), or nil. dk is dots(k).
func (h *heldKeys) holder(k string, dk int) *Ticket {
	if t := h.exact[k]; t != nil {
		return t
	}
	shallower := uint16(1)<<dk - 1 // the depths of k's prefixes
	if dk == maxDepth {
		shallower = ^uint16(0) // k may be deeper: prefixes that deep are counted together
	}
	if h.depths&shallower == 0 {
		return nil // no held key is a prefix of k: none is that short
	}
	d := 0 // the dots of k[:i]
	for i := range len(k) {
		if k[i] != '.' {
			continue
		}
		if h.depths&(1<<min(d, maxDepth)) != 0 {
			if t := h.exact[k[:i]]; t != nil {
				return t
			}
		}
		d++
	}
	return nil
}

// under reports whether a held key lies strictly under k. dk is dots(k).
func (h *heldKeys) under(k string, dk int) bool {
	// Keys maxDepth deep or deeper are counted together: look then.
	deeper := dk == maxDepth || h.depths>>(dk+1) != 0
	return deeper && h.below[k] > 0
}
