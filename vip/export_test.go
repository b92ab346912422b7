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
