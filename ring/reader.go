package ring

import (
	"context"
	"encoding/binary"
	"time"
)

// Reader is the consuming side of one ring. It keeps its own head, checks
// every tail the producer publishes, reads each record header once and
// copies the payload out before handing it over: nothing it returns
// aliases shared memory.
type Reader struct {
	m    ringMem
	w    waiter // parks on the consumer's word, while the ring is empty
	head uint64 // bytes consumed
	pos  uint64 // head % m.size
	tail uint64 // the producer's tail, as last read and checked
	err  error  // sticky: the ring is corrupt
}

// SetSpin makes Wait poll the ring for up to d before it parks. The
// default, 0, parks at once: on cores shared with the peer, spinning
// takes the CPU the peer needs to produce (see docs/RINGS.md).
func (r *Reader) SetSpin(d time.Duration) { r.w.spin = d }

// PollAdvised polls the ring for as long as the producer advises
// (Writer.SetPoll), up to max, and reports whether a record is ready.
// It yields the processor every 64 looks, and the CPU (sched_yield)
// after each 4µs of looking, or every 64 looks in a process whose
// affinity mask allows one CPU (see pollYieldGap). It returns false at
// once when nothing is advised, and early when ctx ends or the pair
// closes (Wait then says which). Call it before Wait, where the next
// record is worth a CPU busy meanwhile: the advice is shared memory
// that the producer writes, so poll only for a producer trusted with
// this side's CPU time (a worker for its supervisor; a supervisor never
// polls for a worker).
func (r *Reader) PollAdvised(ctx context.Context, max time.Duration) bool {
	if r.usable() != nil {
		return false
	}
	l := r.w.life
	l.mu.RLock() // Close unmaps only once the poll is over
	defer l.mu.RUnlock()
	if l.closed.Load() {
		return false
	}
	d := min(pollDuration(r.m.poll.Load()), max)
	return d > 0 && pollUntil(ctx, l, r, d, pollGap) && r.ready()
}

// Nudge makes the Wait in progress, or else the next one, return nil
// with no record, so that its caller looks again (a worker whose last
// process ended, to poll now that it is idle). A nudge is consumed by
// the Wait it ends; one that comes as a Wait returns for another reason
// ends the next Wait at once, a look too many. It goes through this
// process's memory only (no peer can nudge), and is safe for use
// concurrent with Wait.
func (r *Reader) Nudge() {
	r.w.nudged.Store(true)
	r.w.life.interrupt(&r.w)
}

// Advice is the producer's advice to poll now (Writer.SetPoll); 0 once
// the pair is closed.
func (r *Reader) Advice() time.Duration { return r.m.advice(r.w.life) }

// Parks is how many times Wait went to sleep on the futex.
func (r *Reader) Parks() uint64 { return r.w.parks }

// Read copies the next record into buf[:0] (growing it if needed) and
// returns it, or returns ErrEmpty when none is published.
func (r *Reader) Read(buf []byte) ([]byte, error) {
	if err := r.usable(); err != nil {
		return nil, err
	}
	out, ok, err := r.next(buf[:0])
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrEmpty
	}
	r.release()
	return out, nil
}

// Batch holds the records of one ReadBatch, in one buffer it reuses.
type Batch struct {
	buf  []byte
	ends []int
}

// Len is the number of records in b.
func (b *Batch) Len() int { return len(b.ends) }

// Record returns record i; it is valid until the next ReadBatch into b.
func (b *Batch) Record(i int) []byte {
	start := 0
	if i > 0 {
		start = b.ends[i-1]
	}
	return b.buf[start:b.ends[i]:b.ends[i]]
}

// ReadBatch replaces b's records with every record published now, at
// most max of them when max > 0, and frees their room in one store of the
// head. It returns how many it read (0 and no error when the ring is
// empty). On a corrupt ring b keeps the records before the bad one.
func (r *Reader) ReadBatch(b *Batch, max int) (int, error) {
	b.buf, b.ends = b.buf[:0], b.ends[:0]
	if err := r.usable(); err != nil {
		return 0, err
	}
	for max <= 0 || len(b.ends) < max {
		var ok bool
		var err error
		b.buf, ok, err = r.next(b.buf)
		if err != nil {
			r.release()
			return len(b.ends), err
		}
		if !ok {
			break
		}
		b.ends = append(b.ends, len(b.buf))
	}
	if len(b.ends) > 0 {
		r.release()
	}
	return len(b.ends), nil
}

// Wait blocks until a record is published, ctx is done or the pair is
// closed. It parks on the futex unless SetSpin says to poll first. A
// producer that never publishes, or never wakes it, keeps it waiting
// until ctx is done: cancel ctx when the peer is known dead.
func (r *Reader) Wait(ctx context.Context) error {
	if err := r.usable(); err != nil {
		return err
	}
	return r.w.wait(ctx, r)
}

func (r *Reader) usable() error {
	if r.err != nil {
		return r.err
	}
	if r.w.life.closed.Load() {
		return ErrClosed
	}
	return nil
}

// ready reports whether the producer published past our head (checked
// later, by next).
func (r *Reader) ready() bool { return r.m.tail.Load() != r.head }

// release publishes the head and wakes a producer that waits for room.
func (r *Reader) release() {
	r.m.head.Store(r.head)
	wake(r.m.prodPark)
}

// loadTail reads the producer's tail and checks it: 8-byte aligned, not
// behind the last one read and at most a ring ahead of the head.
func (r *Reader) loadTail() error {
	t := r.m.tail.Load()
	if t%8 != 0 || t < r.tail || t-r.head > r.m.size {
		return r.fail("the producer's tail %d is unaligned, behind %d or more than %d bytes ahead of the head", t, r.tail, r.m.size)
	}
	r.tail = t
	return nil
}

func (r *Reader) fail(format string, args ...any) error {
	r.err = corrupt(&r.m, r.head, format, args...)
	return r.err
}

// next appends the next record's payload to dst. It reports false when
// none is published.
func (r *Reader) next(dst []byte) ([]byte, bool, error) {
	for {
		if r.head == r.tail {
			if err := r.loadTail(); err != nil {
				return dst, false, err
			}
			if r.head == r.tail {
				return dst, false, nil
			}
		}
		// pos is 8-aligned and below size, a multiple of 8: the header fits.
		h := binary.NativeEndian.Uint64(r.m.data[r.pos:])
		n, kind := uint64(uint32(h)), h>>32
		avail := r.tail - r.head
		switch kind {
		case kindWrap:
			skip := r.m.size - r.pos
			if skip > avail {
				return dst, false, r.fail("a wrap marker of %d bytes with %d published", skip, avail)
			}
			r.head += skip
			r.pos = 0
		case kindRecord:
			if n > r.m.max {
				return dst, false, r.fail("a record of %d bytes, at most %d", n, r.m.max)
			}
			rec := padded(n)
			if rec > r.m.size-r.pos {
				return dst, false, r.fail("a record of %d bytes at %d runs past the end of the buffer", n, r.pos)
			}
			if rec > avail {
				return dst, false, r.fail("a record of %d bytes with %d published", n, avail)
			}
			p := r.pos + headerSize
			dst = append(dst, r.m.data[p:p+n]...)
			r.head += rec
			if r.pos += rec; r.pos == r.m.size {
				r.pos = 0
			}
			return dst, true, nil
		default:
			return dst, false, r.fail("a header of kind %d", kind)
		}
	}
}
