package ipc

import (
	"container/list"
	"fmt"
	"sync"
	"time"
)

// Budget bounds the bytes that the Conns sharing it hold for frames they
// are reading: a Conn takes a frame's length from the budget before it
// allocates the body and gives it back once the frame is decoded or
// dropped. A frame that does not fit waits, first come first served,
// until others give bytes back or its deadline passes; meanwhile its
// bytes stay in the kernel's socket buffer and the sender is slowed.
type Budget struct {
	size int64

	mu      sync.Mutex
	used    int64
	waiters list.List // of *budgetWaiter, oldest first
}

type budgetWaiter struct {
	n     int64
	ready chan struct{} // closed when the bytes are granted
}

// NewBudget returns a budget of size bytes.
func NewBudget(size int64) *Budget { return &Budget{size: size} }

// Size returns the budget's size in bytes.
func (b *Budget) Size() int64 { return b.size }

// InUse returns the bytes taken now.
func (b *Budget) InUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// Waiting returns how many frames wait for bytes now.
func (b *Budget) Waiting() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.waiters.Len()
}

// acquire takes n bytes, waiting until deadline (zero: no deadline) or
// until done is closed. Its error wraps ErrFrameTimeout or ErrClosed.
func (b *Budget) acquire(n int64, deadline time.Time, done <-chan struct{}) error {
	if n > b.size {
		return fmt.Errorf("ipc: a %d-byte frame is larger than the whole buffer budget (%d bytes): %w", n, b.size, ErrFrameTimeout)
	}
	b.mu.Lock()
	if b.waiters.Len() == 0 && b.used+n <= b.size {
		b.used += n
		b.mu.Unlock()
		return nil
	}
	w := &budgetWaiter{n: n, ready: make(chan struct{})}
	e := b.waiters.PushBack(w)
	b.mu.Unlock()
	var expired <-chan time.Time
	if !deadline.IsZero() {
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		expired = t.C
	}
	var err error
	select {
	case <-w.ready:
		return nil
	case <-expired:
		err = fmt.Errorf("ipc: a %d-byte frame found no room in the buffer budget (%d bytes, shared by every connection) before its deadline: %w", n, b.size, ErrFrameTimeout)
	case <-done:
		err = ErrClosed
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-w.ready: // granted meanwhile: give it back
		b.used -= n
	default:
		b.waiters.Remove(e)
	}
	b.grant() // the head may have changed
	return err
}

// release gives back n bytes taken by acquire.
func (b *Budget) release(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
	b.grant()
}

// grant wakes the waiters at the head of the queue that now fit.
func (b *Budget) grant() {
	for e := b.waiters.Front(); e != nil; e = b.waiters.Front() {
		w := e.Value.(*budgetWaiter)
		if b.used+w.n > b.size {
			return
		}
		b.used += w.n
		b.waiters.Remove(e)
		close(w.ready)
	}
}
