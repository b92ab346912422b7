package signal

import (
	"sync"

	"github.com/theus-run/theus/contract"
)

// Sub is one subscription. Its items arrive on C in version order; C is
// closed once the subscription ends (Close, or the Hub's Close).
type Sub struct {
	h      *Hub
	prefix contract.Path
	out    chan Item
	wake   chan struct{} // size one: the pump has something to send
	quit   chan struct{} // closed by end
	done   chan struct{} // closed when the pump has returned
	once   sync.Once

	// mu guards the buffer, shared by the Hub's publisher (offer) and the
	// pump. A lagged marker is queued in the buffer where the signals went
	// missing, so it reaches the subscriber in order.
	mu struct {
		sync.Mutex
		buf    []Item // a ring of cap items
		head   int
		n      int
		missed uint64 // missed since the last item queued
	}
}

func newSub(h *Hub, prefix contract.Path, buffer int) *Sub {
	s := &Sub{h: h, prefix: prefix, out: make(chan Item), wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	// One slot more than asked: room for the lagged marker that precedes
	// the first signal after a gap.
	s.mu.buf = make([]Item, buffer+1)
	go s.pump()
	return s
}

// C delivers the subscription's items.
func (s *Sub) C() <-chan Item { return s.out }

// Close ends the subscription; C is closed once its pump has stopped.
// It is safe to call twice.
func (s *Sub) Close() {
	if s.h.remove(s) {
		s.end()
	}
	<-s.done
}

// end stops the pump (once).
func (s *Sub) end() {
	s.once.Do(func() { close(s.quit) })
}

// offer queues it without waiting; false when the buffer was full and it
// was counted as missed.
func (s *Sub) offer(it Item) bool {
	s.mu.Lock()
	// At most buffer items wait; the ring has one slot more, so that a
	// marker and the signal after it fit whenever a signal does.
	if s.mu.n >= len(s.mu.buf)-1 {
		s.mu.missed++
		s.mu.Unlock()
		return false
	}
	if s.mu.missed > 0 {
		s.push(Item{Lagged: s.mu.missed})
		s.mu.missed = 0
	}
	s.push(it)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return true
}

// push appends to the ring; the caller holds mu and has checked room.
func (s *Sub) push(it Item) {
	s.mu.buf[(s.mu.head+s.mu.n)%len(s.mu.buf)] = it
	s.mu.n++
}

// next takes the oldest item, or, with the buffer empty and signals
// missed, the lagged marker for them.
func (s *Sub) next() (Item, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.n > 0 {
		it := s.mu.buf[s.mu.head]
		s.mu.buf[s.mu.head] = Item{}
		s.mu.head = (s.mu.head + 1) % len(s.mu.buf)
		s.mu.n--
		return it, true
	}
	if s.mu.missed > 0 {
		it := Item{Lagged: s.mu.missed}
		s.mu.missed = 0
		return it, true
	}
	return Item{}, false
}

// pump moves the buffer to C, one item at a time, until the
// subscription ends; it owns C and closes it.
func (s *Sub) pump() {
	defer close(s.done)
	defer close(s.out)
	for {
		it, ok := s.next()
		if !ok {
			select {
			case <-s.wake:
				continue
			case <-s.quit:
				return
			}
		}
		select {
		case s.out <- it:
		case <-s.quit:
			return
		}
	}
}
