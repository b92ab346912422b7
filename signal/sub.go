package signal

import (
	"context"
	"errors"
	"sync"

	"github.com/theus-run/theus/contract"
)

// ErrEnded is returned by Sub.Next once the subscription has ended and
// every item it held was taken.
var ErrEnded = errors.New("signal: subscription ended")

// Sub is one subscription. Its items wait in a bounded queue, in version
// order, until its reader takes them: Take takes all of them at once
// (after Ready), Next one at a time. The Hub fills the queue a batch of
// commits at a time and signals Ready once per batch, so a reader that
// takes everything wakes once per batch, not once per signal.
type Sub struct {
	h      *Hub
	prefix contract.Path
	buffer int           // the most items q holds
	ready  chan struct{} // size one: q has items, or the subscription ended

	mu struct {
		sync.Mutex
		q      []Item // waiting for the reader, in order
		missed uint64 // since the last item queued
		closed bool   // ended: nothing more is queued
	}
	// touched: items were queued since the publisher last signalled
	// ready (the publisher's, under the Hub's mu).
	touched bool
}

func newSub(h *Hub, prefix contract.Path, buffer int) *Sub {
	return &Sub{h: h, prefix: prefix, buffer: buffer, ready: make(chan struct{}, 1)}
}

// Ready has a value when items may be waiting or the subscription ended:
// after receiving from it, Take everything. (It may fire with nothing to
// take: Next took the items meanwhile.)
func (s *Sub) Ready() <-chan struct{} { return s.ready }

// Take returns every waiting item, in order, and ok false once the
// subscription has ended and nothing is left (the items returned with it
// are the last). buf, the slice a previous Take returned or nil, is
// reused to hold later items: the caller is done with it.
func (s *Sub) Take(buf []Item) (items []Item, ok bool) {
	clear(buf)
	s.mu.Lock()
	defer s.mu.Unlock()
	items, s.mu.q = s.mu.q, buf[:0]
	return items, !s.mu.closed || len(items) > 0
}

// Next returns the next item, waiting for one; ErrEnded once the
// subscription has ended and every item was taken, or ctx's error.
func (s *Sub) Next(ctx context.Context) (Item, error) {
	for {
		s.mu.Lock()
		if len(s.mu.q) > 0 {
			it := s.mu.q[0]
			s.mu.q[0] = Item{}
			s.mu.q = s.mu.q[1:]
			s.mu.Unlock()
			return it, nil
		}
		closed := s.mu.closed
		s.mu.Unlock()
		if closed {
			return Item{}, ErrEnded
		}
		select {
		case <-s.ready:
		case <-ctx.Done():
			return Item{}, ctx.Err()
		}
	}
}

// Close ends the subscription: the items already queued can still be
// taken, then Take reports the end. It is safe to call twice.
func (s *Sub) Close() {
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	if _, ok := s.h.mu.subs[s]; ok {
		delete(s.h.mu.subs, s)
		s.h.subs.Add(-1)
	}
	s.end()
}

// end marks the subscription ended and wakes its reader; the caller
// holds the Hub's mu.
func (s *Sub) end() {
	s.mu.Lock()
	s.mu.closed = true
	s.mu.Unlock()
	s.wake()
}

// wake signals Ready without waiting: a value already there will do.
func (s *Sub) wake() {
	s.touched = false
	select {
	case s.ready <- struct{}{}:
	default:
	}
}

// offer queues the signals of one commit that s's prefix covers, without
// waiting (the publisher, under the Hub's mu), and returns how many were
// queued and how many missed. After a gap the lagged item goes first, and
// only with room for both, so a subscriber reads the count exactly where
// the signals went missing. The reader is woken by wake, once per batch.
func (s *Sub) offer(version uint64, signals []Item) (queued, missed uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.closed {
		return 0, 0
	}
	for _, it := range signals {
		if s.prefix != "" && !contract.Covers(string(s.prefix), it.Path) {
			continue
		}
		need := 1
		if s.mu.missed > 0 {
			need = 2
		}
		if s.buffer-len(s.mu.q) < need {
			s.mu.missed++
			missed++
			continue
		}
		if s.mu.missed > 0 {
			s.mu.q = append(s.mu.q, Item{Lagged: s.mu.missed})
			s.mu.missed = 0
		}
		it.Version = version
		s.mu.q = append(s.mu.q, it)
		queued++
	}
	if queued > 0 {
		s.touched = true
	}
	return queued, missed
}
