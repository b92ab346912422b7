package cas

// Stats describes what the store holds for its snapshots.
type Stats struct {
	Version Version
	// Snapshots are the snapshots held now; Epochs the versions older
	// than the newest that some of them hold (each keeps the history
	// that version needs).
	Snapshots int64
	Epochs    int
	// History is the paths whose replaced values are kept for held
	// snapshots, or until the next collect (every eighth commit),
	// waiting to be dropped (a path counts once however many values it
	// keeps).
	History int
	// Paths holding a value now.
	Paths int
	// GateWaits counts the commits that waited for a VIP ticket held by
	// another invocation.
	GateWaits uint64
}

// Stats returns the store's figures. It takes the store's lock: commits
// wait for it, snapshots do not.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := &s.hist
	st := Stats{Version: h.version(), History: len(h.pending), Paths: s.live, GateWaits: s.gateWaits.Load()}
	st.Snapshots = h.cur.Load().holds.Load()
	for _, e := range h.old { // released epochs stay here until the next trim
		if n := e.holds.Load(); n > 0 {
			st.Snapshots += n
			st.Epochs++
		}
	}
	return st
}
