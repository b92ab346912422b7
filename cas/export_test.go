package cas

// Len returns how many paths hold a value now (tests only).
func (s *Store) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.live
}
