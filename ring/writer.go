package ring

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"sync/atomic"
	"time"
)

// Writer is the producing side of one ring. It keeps its own tail and
// checks every head the consumer publishes before it trusts it.
type Writer struct {
	m     ringMem
	w     waiter // parks on the producer's word, while the ring is full
	tail  uint64 // bytes published
	next  uint64 // bytes reserved (>= tail): where the next record goes
	pos   uint64 // next % m.size
	head  uint64 // the consumer's head, as last read and checked
	want  uint64 // bytes Wait waits for
	err   error  // sticky: a corrupt head
	wakes atomic.Uint64
}

// MaxRecord is the largest payload this ring carries.
func (w *Writer) MaxRecord() int { return int(w.m.max) }

// Wakes is how many times this writer woke its consumer: at most once per
// Commit, and only when the consumer had announced it parks.
func (w *Writer) Wakes() uint64 { return w.wakes.Load() }

// SetPoll advises the consumer to poll the ring for up to d before it
// parks, once it has nothing to read; 0 (or less) advises parking at
// once, as a new ring does. Polling spares a consumer the wake-up (a
// system call on each side, and on a virtual machine the wake-up of a
// halted CPU) when the next record comes soon, at the price of a CPU
// busy meanwhile: advise it only when the consumer has a CPU to itself.
// The advice is in whole microseconds, and the consumer follows it only
// where it chooses to (Reader.PollAdvised), up to its own bound. It
// writes shared memory only when the advice changes, and nothing once
// the pair is closed; safe for concurrent use, with Close too.
func (w *Writer) SetPoll(d time.Duration) {
	l := w.w.life
	l.mu.RLock() // Close unmaps only once this is done
	defer l.mu.RUnlock()
	if l.closed.Load() {
		return
	}
	if us := pollMicros(d); w.m.poll.Load() != us {
		w.m.poll.Store(us)
	}
}

// Poll is the advice in the ring now (0 once the pair is closed).
func (w *Writer) Poll() time.Duration { return w.m.advice(w.w.life) }

// advice reads m's poll word under the mapping's lifetime l: 0 once the
// pair is closed (its memory may be gone).
func (m *ringMem) advice(l *life) time.Duration {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed.Load() {
		return 0
	}
	return pollDuration(m.poll.Load())
}

// pollMicros is d as a poll word: whole microseconds, 0 for d <= 0.
func pollMicros(d time.Duration) uint32 {
	return uint32(min(max(d, 0)/time.Microsecond, math.MaxUint32))
}

// pollDuration is a poll word's microseconds as a duration.
func pollDuration(us uint32) time.Duration { return time.Duration(us) * time.Microsecond }

// need returns the bytes a record of n payload bytes takes at the current
// position, counting the unused end of the buffer when it must wrap, and
// that end.
func (w *Writer) need(n int) (need, skip uint64, err error) {
	if n < 0 || uint64(n) > w.m.max {
		return 0, 0, fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, n, w.MaxRecord())
	}
	rec := padded(uint64(n))
	if rest := w.m.size - w.pos; rec > rest {
		return rest + rec, rest, nil
	}
	return rec, 0, nil
}

// loadHead reads the consumer's head and checks it: 8-byte aligned, not
// behind the last one read and not past what was published.
func (w *Writer) loadHead() error {
	h := w.m.head.Load()
	if h%8 != 0 || h < w.head || h > w.tail {
		w.err = corrupt(&w.m, h, "the consumer's head %d is outside [%d, %d] or unaligned", h, w.head, w.tail)
		return w.err
	}
	w.head = h
	return nil
}

// Reserve adds a record of n bytes after the records reserved since the
// last Commit and returns its payload, to be filled in place; the consumer
// sees it after Commit. It returns ErrFull, changing nothing, when the
// ring has no room for it now.
func (w *Writer) Reserve(n int) ([]byte, error) {
	if w.err != nil {
		return nil, w.err
	}
	if w.w.life.closed.Load() {
		return nil, ErrClosed
	}
	need, skip, err := w.need(n)
	if err != nil {
		return nil, err
	}
	if w.next+need-w.head > w.m.size {
		if err := w.loadHead(); err != nil {
			return nil, err
		}
		if w.next+need-w.head > w.m.size {
			return nil, ErrFull
		}
	}
	if skip > 0 {
		w.putHeader(0, kindWrap)
		w.next += skip
		w.pos = 0
	}
	w.putHeader(uint32(n), kindRecord)
	p := w.pos + headerSize
	buf := w.m.data[p : p+uint64(n) : p+uint64(n)]
	rec := padded(uint64(n))
	w.next += rec
	if w.pos += rec; w.pos == w.m.size {
		w.pos = 0
	}
	return buf, nil
}

func (w *Writer) putHeader(n uint32, kind uint64) {
	binary.NativeEndian.PutUint64(w.m.data[w.pos:], kind<<32|uint64(n))
}

// Append reserves a record for p and copies p into it; Commit publishes it.
func (w *Writer) Append(p []byte) error {
	buf, err := w.Reserve(len(p))
	if err != nil {
		return err
	}
	copy(buf, p)
	return nil
}

// Commit publishes every record reserved since the last Commit, in one
// store of the tail made after their bytes, and wakes the consumer if it
// announced that it parks: one wake for the whole batch.
func (w *Writer) Commit() error {
	published, err := w.publish()
	if published {
		w.wake()
	}
	return err
}

// publish is Commit without the wake, and reports whether it published
// anything: the caller then wakes (wakeShared) once it no longer holds
// what other producers wait for.
func (w *Writer) publish() (bool, error) {
	if w.err != nil {
		return false, w.err
	}
	if w.w.life.closed.Load() {
		return false, ErrClosed
	}
	if w.next == w.tail {
		return false, nil
	}
	w.m.tail.Store(w.next)
	w.tail = w.next
	return true, nil
}

// wake wakes the consumer if it announced that it parks.
func (w *Writer) wake() {
	if wakeBell(w.m.consPark, w.m.bell) {
		w.wakes.Add(1)
	}
}

// wakeShared is wake for a Writer that other goroutines may be
// publishing into (Shared) and that may be closed meanwhile: it holds
// the mapping's lifetime for reading, so that the pair, its memory and
// its doorbell stay open while it looks and rings.
func (w *Writer) wakeShared() {
	l := w.w.life
	l.mu.RLock()
	defer l.mu.RUnlock()
	if !l.closed.Load() {
		w.wake()
	}
}

// Write publishes one record holding p: Append and Commit.
func (w *Writer) Write(p []byte) error {
	if err := w.Append(p); err != nil {
		return err
	}
	return w.Commit()
}

// Wait blocks until a record of n bytes fits (the consumer woke it after
// freeing room), ctx is done or the pair is closed. A consumer that
// never consumes keeps it waiting until ctx is done.
func (w *Writer) Wait(ctx context.Context, n int) error {
	if w.err != nil {
		return w.err
	}
	need, _, err := w.need(n)
	if err != nil {
		return err
	}
	w.want = need
	return w.w.wait(ctx, w)
}

// ready reports whether w.want bytes fit; a head out of bounds counts as
// ready, so that the next Reserve reports it.
func (w *Writer) ready() bool {
	h := w.m.head.Load()
	if h < w.head || h > w.tail {
		return true
	}
	return w.next+w.want-h <= w.m.size
}
