package signal

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
)

// DefaultBuffer is the number of items a subscriber holds when Subscribe
// is given no buffer.
const DefaultBuffer = 1024

// Item is one delivery to a subscriber: a signal (Lagged is 0), or the
// number of signals it missed since its last delivery (Lagged > 0, the
// other fields empty).
type Item struct {
	Version uint64
	Path    string
	Value   json.RawMessage
	Lagged  uint64
}

// Config tunes a Hub.
type Config struct {
	// Wait returns once version v is durable (the journal's Wait), or
	// with an error when it never will be; nil when every commit is
	// durable as it is applied (no journal). A commit whose Wait fails
	// is never published.
	Wait func(ctx context.Context, v cas.Version) error
	// Durable, when set with Wait, returns the highest version durable
	// now (the journal's Durable): the commits up to it are published
	// without calling Wait, and the subscribers are woken only before a
	// Wait that may block, not before each commit.
	Durable func() cas.Version
}

// Stats counts what a Hub did.
type Stats struct {
	Published   uint64 // signals handed to subscribers' buffers (once per subscriber)
	Missed      uint64 // signals that found a subscriber's buffer full
	Undelivered uint64 // signals of commits that never became durable
	Subscribers int64  // subscribers now
	// Lagging is the subscribers that missed signals they have not been
	// told of yet (their next item is a lagged count).
	Lagging int64
}

// Hub publishes committed signals. Make one with New; Close stops it.
type Hub struct {
	cfg  Config
	kick chan struct{} // size one: the publisher has work
	stop context.CancelFunc
	done chan struct{}
	subs atomic.Int64 // subscribers, read by Committed without the lock

	// q is taken by Committed, under the store's lock: held only to
	// append or to take the whole queue, never while delivering.
	q struct {
		sync.Mutex
		queue  []cas.Commit // committed, not yet published, in version order
		closed bool
	}
	mu struct {
		sync.Mutex
		subs   map[*Sub]struct{}
		closed bool
	}
	published, missed, undelivered atomic.Uint64
}

// New starts a Hub's publisher.
func New(cfg Config) *Hub {
	ctx, cancel := context.WithCancel(context.Background())
	h := &Hub{cfg: cfg, kick: make(chan struct{}, 1), stop: cancel, done: make(chan struct{})}
	h.mu.subs = map[*Sub]struct{}{}
	go h.publish(ctx)
	return h
}

// Committed queues c's signals for publication (cas.Config.Committed: it
// is called under the store's lock, in version order). It never blocks:
// a commit without signals, or made while no one subscribes, costs an
// atomic load.
func (h *Hub) Committed(c cas.Commit) {
	if len(c.Signals) == 0 || h.subs.Load() == 0 {
		return
	}
	h.q.Lock()
	if !h.q.closed {
		h.q.queue = append(h.q.queue, cas.Commit{Version: c.Version, Signals: c.Signals})
	}
	h.q.Unlock()
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

// Stats returns the Hub's counters. It takes every subscriber's lock in
// turn (for Lagging): call it once in a while, not per signal.
func (h *Hub) Stats() Stats {
	st := Stats{Published: h.published.Load(), Missed: h.missed.Load(), Undelivered: h.undelivered.Load(), Subscribers: h.subs.Load()}
	h.mu.Lock()
	for s := range h.mu.subs {
		s.mu.Lock()
		if s.mu.missed > 0 {
			st.Lagging++
		}
		s.mu.Unlock()
	}
	h.mu.Unlock()
	return st
}

// Close stops the publisher, drops what it had not published, and ends
// every subscription (their readers take what they hold, then the end). It is safe to call twice.
func (h *Hub) Close() {
	h.mu.Lock()
	if h.mu.closed {
		h.mu.Unlock()
		<-h.done
		return
	}
	h.mu.closed = true
	for s := range h.mu.subs {
		s.end()
	}
	h.mu.subs = map[*Sub]struct{}{}
	h.mu.Unlock()
	h.q.Lock()
	h.q.closed, h.q.queue = true, nil
	h.q.Unlock()
	h.stop()
	<-h.done
}

// publish is the Hub's goroutine: it takes the queue in version order, a
// batch at a time, queues each commit's signals to the subscribers once
// that commit is durable, and wakes each subscriber that got any once
// per batch, or before waiting for a commit to become durable.
func (h *Hub) publish(ctx context.Context) {
	defer close(h.done)
	var items []Item // one commit's signals, reused
	for {
		select {
		case <-h.kick:
		case <-ctx.Done():
			return
		}
		for {
			h.q.Lock()
			batch := h.q.queue
			h.q.queue = nil
			h.q.Unlock()
			if len(batch) == 0 {
				break
			}
			for i, c := range batch {
				if h.cfg.Wait != nil && (h.cfg.Durable == nil || c.Version > h.cfg.Durable()) {
					h.wake() // what is durable goes out before the wait
					if err := h.cfg.Wait(ctx, c.Version); err != nil {
						if ctx.Err() != nil {
							return
						}
						// Not durable, and never will be (the journal failed):
						// such a commit is never published.
						for _, c := range batch[i:] {
							h.undelivered.Add(uint64(len(c.Signals)))
						}
						break
					}
				}
				items = items[:0]
				for _, w := range c.Signals {
					items = append(items, Item{Path: string(w.Path), Value: json.RawMessage(w.Value)})
				}
				h.deliver(uint64(c.Version), items)
			}
			h.wake()
		}
	}
}

// deliver queues one commit's signals to the subscribers whose prefix
// covers them.
func (h *Hub) deliver(version uint64, items []Item) {
	var published, missed uint64
	h.mu.Lock()
	for s := range h.mu.subs {
		p, m := s.offer(version, items)
		published += p
		missed += m
	}
	h.mu.Unlock()
	h.published.Add(published)
	h.missed.Add(missed)
}

// wake wakes the subscribers that were given items since the last wake.
func (h *Hub) wake() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.mu.subs {
		if s.touched {
			s.wake()
		}
	}
}

// Subscribe opens a subscription to the signals at or under prefix (""
// for every signal) with a buffer of that many items (DefaultBuffer when
// buffer < 2: a lagged item and the signal after it must fit). After
// Close the subscription is ended at once.
func (h *Hub) Subscribe(prefix contract.Path, buffer int) *Sub {
	if buffer < 2 {
		buffer = DefaultBuffer
	}
	s := newSub(h, prefix, buffer)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.mu.closed {
		s.end()
		return s
	}
	h.mu.subs[s] = struct{}{}
	h.subs.Add(1)
	return s
}
