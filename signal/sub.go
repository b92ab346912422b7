package signal

import (
	"github.com/theus-run/theus/contract"
)

// Sub is one subscription. Its items arrive on C in version order; C is
// closed once the subscription ends (Close, or the Hub's Close).
type Sub struct {
	h      *Hub
	prefix contract.Path
	// ch is sent to by the Hub's publisher only, and closed by end, both
	// under the Hub's mu: a send never meets a closed channel.
	ch     chan Item
	missed uint64 // since the last item sent; the publisher's, under the Hub's mu
	closed bool   // under the Hub's mu
}

func newSub(h *Hub, prefix contract.Path, buffer int) *Sub {
	return &Sub{h: h, prefix: prefix, ch: make(chan Item, buffer)}
}

// C delivers the subscription's items.
func (s *Sub) C() <-chan Item { return s.ch }

// Close ends the subscription and closes C (after the items already in
// it). It is safe to call twice.
func (s *Sub) Close() {
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	if _, ok := s.h.mu.subs[s]; ok {
		delete(s.h.mu.subs, s)
		s.h.subs.Add(-1)
	}
	s.end()
}

// end closes C once; the caller holds the Hub's mu.
func (s *Sub) end() {
	if !s.closed {
		s.closed = true
		close(s.ch)
	}
}

// offer puts it in the buffer without waiting (the publisher, under the
// Hub's mu); false when there was no room and it was counted as missed.
// After a gap the lagged item goes first, and only with room for both,
// so a subscriber reads the count exactly where the signals went missing.
func (s *Sub) offer(it Item) bool {
	need := 1
	if s.missed > 0 {
		need = 2
	}
	if cap(s.ch)-len(s.ch) < need { // only the subscriber changes len meanwhile, downwards
		s.missed++
		return false
	}
	if s.missed > 0 {
		s.ch <- Item{Lagged: s.missed}
		s.missed = 0
	}
	s.ch <- it
	return true
}
