package vip

// Held returns the key sets of the tickets held now (tests only).
func (a *Arbiter) Held() [][]string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([][]string, len(a.mu.held))
	for i, t := range a.mu.held {
		out[i] = t.keys
	}
	return out
}

// Queued returns how many requests wait (tests only).
func (a *Arbiter) Queued() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.mu.queue)
}

// IndexEmpty reports whether the index of held keys holds nothing: no
// key, no prefix count, no depth (tests only).
func (a *Arbiter) IndexEmpty() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	k := &a.mu.keys
	return len(k.exact) == 0 && len(k.below) == 0 && k.depths == 0 && k.depth == [maxDepth + 1]int{}
}
