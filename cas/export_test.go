package cas

// Len returns how many paths hold a value now (tests only).
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.live
}

// len counts the index's entries by walking its segments (tests only).
func (x *pathIndex) len() int {
	d := x.dir.Load()
	k := 0
	var last *segment
	for i := range d.segs {
		if s := d.segs[i].Load(); s != last {
			k += s.live
			last = s
		}
	}
	return k
}

// IndexDepth returns the index's directory depth and its entries (tests
// only).
func (s *Store) IndexDepth() (uint, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.index.dir.Load().depth, s.index.len()
}
