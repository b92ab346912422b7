package vip

// HotKeys is a set of keys heated (they lost a commit) until a time
// each, indexed so that Contended looks a key set up in time
// proportional to the keys' depth, not to the number of heated keys:
// with many keys heated (a workload spread over many counters that
// conflict now and then) a walk of them all, under the lock every
// invocation takes, was a cost that grew with the store. The zero
// value is empty and remembers up to 1024 keys; it is not safe for
// concurrent use (the Arbiter and etcdstore's tickets guard theirs).
type HotKeys struct {
	// Max bounds the keys remembered (0: 1024). Past it, Add forgets
	// those cooled, and if that is not enough, all of them.
	Max   int
	at    map[string]int64 // heated key -> when it cools (Unix ns)
	below map[string]int64 // a dot-boundary ancestor of heated keys -> when the last of them cools
	until int64            // when the last heated key cools
}

// Len is the number of keys remembered, cooled or not.
func (h *HotKeys) Len() int { return len(h.at) }

// Add heats keys until cools (times in Unix ns, now the current one).
// A key heated again keeps the later of its two times.
func (h *HotKeys) Add(keys []string, now, cools int64) {
	if h.at == nil {
		h.at, h.below = map[string]int64{}, map[string]int64{}
	}
	bound := h.Max
	if bound <= 0 {
		bound = maxHot
	}
	if len(keys) > bound {
		keys = keys[:bound] // a conflict this wide: its first keys stand for it
	}
	if len(h.at)+len(keys) > bound {
		for k, c := range h.at {
			if c <= now {
				delete(h.at, k)
			}
		}
		for k, c := range h.below {
			if c <= now {
				delete(h.below, k)
			}
		}
		if len(h.at)+len(keys) > bound {
			clear(h.at) // many keys conflicting at once: forget the old ones
			clear(h.below)
			h.until = 0
		}
	}
	for _, k := range keys {
		h.at[k] = max(h.at[k], cools) // a clock that steps back does not cool a key early
		for i := len(k) - 1; i > 0; i-- {
			if k[i] == '.' && h.below[k[:i]] < cools {
				h.below[k[:i]] = cools
			}
		}
	}
	h.until = max(h.until, cools)
}

// Contended reports whether a key heated and not cooled by now overlaps
// keys (one is the other, or lies under it at a dot); with strict,
// whether any key is heated.
func (h *HotKeys) Contended(keys []string, now int64, strict bool) bool {
	if len(h.at) == 0 || h.until <= now {
		return false
	}
	if strict {
		return true
	}
	for _, k := range keys {
		if h.at[k] > now || h.below[k] > now {
			return true // k itself, or a key under it
		}
		for i := len(k) - 1; i > 0; i-- {
			if k[i] == '.' && h.at[k[:i]] > now {
				return true // a key k lies under
			}
		}
	}
	return false
}
