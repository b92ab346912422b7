package ring

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Shared lets many goroutines produce into one Writer, which it owns: one
// at a time appends under its lock, and records appended while another
// goroutine is about to commit join that commit, so that a burst of n
// records costs one store of the tail and at most one wake, not n.
type Shared struct {
	mu         sync.Mutex
	w          *Writer
	committing bool   // a goroutine will commit what is reserved
	records    uint64 // records appended through s
	closed     bool
	// poll is the advice SetPoll gave, in microseconds; the next append
	// writes it to the ring (where pollSet is what it wrote last), under
	// mu and only while s is open: the ring may be unmapped after Close.
	poll    atomic.Uint32
	pollSet uint32
	// owed is the number of the first record AppendNoWake published
	// since the last Wake (0: none): a wake-up the producers still owe
	// the consumer (Owed).
	owed atomic.Uint64
}

// NewShared returns a Shared that owns w from then on.
func NewShared(w *Writer) *Shared { return &Shared{w: w} }

// MaxRecord is the largest payload the ring carries.
func (s *Shared) MaxRecord() int { return s.w.MaxRecord() }

// Append copies p into the ring as one record and returns its number (1
// for the first record appended through s). Unless another goroutine is
// about to commit, which then publishes p too, Append commits before it
// returns. With linger, the caller expects other goroutines to append at
// once (its peer pipelines): it yields once before it commits, so what
// they append meanwhile shares its commit and its wake. A lone record
// does not linger.
//
// Errors: ErrFull and ErrTooLarge (nothing was written: send p another
// way), ErrClosed, or a *CorruptError (the consumer broke the ring: kill
// it).
func (s *Shared) Append(p []byte, linger bool) (uint64, error) {
	n, err := s.reserve(p)
	if err != nil {
		return 0, err
	}
	if s.committing {
		s.mu.Unlock()
		return n, nil
	}
	if linger {
		s.committing = true
		s.mu.Unlock()
		runtime.Gosched()
		s.mu.Lock()
		s.committing = false
		if s.closed {
			s.mu.Unlock()
			return n, ErrClosed
		}
	}
	// Publish under the lock, wake outside it: the wake is a system
	// call (the doorbell's write, and the peer's wake-up in the kernel),
	// which other producers need not wait for. A mutex profile of the
	// supervisor under 16 clients had 77% of its lock waiting here when
	// the wake was inside (docs/BENCHMARKS.md, "Where the supervisor
	// waits").
	published, err := s.w.publish()
	s.mu.Unlock()
	if published {
		s.w.wakeShared()
	}
	return n, err
}

// AppendNoWake is Append, without linger, that publishes p but never
// wakes the consumer: the caller calls Wake, once for all the records it
// appended so, before it may block (a consumer parked meanwhile sleeps
// until then).
func (s *Shared) AppendNoWake(p []byte) (uint64, error) {
	n, err := s.reserve(p)
	if err != nil {
		return 0, err
	}
	if !s.committing {
		_, err := s.w.publish()
		if err == nil {
			s.owed.CompareAndSwap(0, n) // an older debt stays the one named
		}
		s.mu.Unlock()
		return n, err
	}
	s.mu.Unlock() // the goroutine that commits publishes p and wakes for it
	return n, nil
}

// reserve copies p into the ring, unpublished, and returns its number,
// with s.mu held; on error s.mu is free and nothing was written.
func (s *Shared) reserve(p []byte) (uint64, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return 0, ErrClosed
	}
	if err := s.w.Append(p); err != nil {
		s.mu.Unlock()
		return 0, err
	}
	if us := s.poll.Load(); us != s.pollSet {
		s.w.m.poll.Store(us) // before the commit that publishes p: the consumer sees it when p is done
		s.pollSet = us
	}
	s.records++
	return s.records, nil
}

// Wake wakes the consumer if it parks: for records published by
// AppendNoWake.
func (s *Shared) Wake() {
	// Cleared before the wake, so that a record published after this
	// wake's look at the park word sets it again.
	s.owed.Store(0)
	s.w.wakeShared()
}

// Owed reports the number of the first record that AppendNoWake
// published since the last Wake, or 0. The same number at two looks some
// time apart is a wake-up that a producer forgot (it blocked, or went on,
// with the wake still owed), however many records followed: a bug in the
// producer, which a watchdog can mend with ClaimOwed and Wake. Safe for
// concurrent use, and after Close.
func (s *Shared) Owed() uint64 { return s.owed.Load() }

// ClaimOwed takes over the debt that Owed reported as n, if record n is
// still the first one owed, so that of two watchdogs that found the same
// debt one pays it; the one that gets true must call Wake.
func (s *Shared) ClaimOwed(n uint64) bool {
	return n != 0 && s.owed.CompareAndSwap(n, 0)
}

// SetPoll is Writer.SetPoll for the records appended from now on: the
// advice reaches the ring with the next record (Append, AppendNoWake),
// before the consumer can see that record. It touches no shared memory
// itself, so it is safe for concurrent use, and after Close.
func (s *Shared) SetPoll(d time.Duration) {
	us := pollMicros(d)
	if s.poll.Load() != us {
		s.poll.Store(us)
	}
}

// Records is how many records were appended through s.
func (s *Shared) Records() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.records
}

// Backlog reports how many published bytes the consumer has not read
// yet (records and their headers), and whether it says it parks: one
// that parks with a backlog was not woken for it (a wake flips the park
// word before it rings), unless it parked a moment ago and is about to
// look again (Owed says whether a producer still owes the wake). For
// a diagnosis (a worker that seems hung), not for decisions: the head and
// the park word are shared memory that the consumer writes, read once,
// unchecked but bounded (a head outside what was published reads as no
// backlog). 0 and false once s is closed.
func (s *Shared) Backlog() (unread uint64, parks bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, false
	}
	h := s.w.m.head.Load()
	if h <= s.w.tail {
		unread = s.w.tail - h
	}
	return unread, s.w.m.consPark.Load() == parked
}

// Close makes every later Append fail with ErrClosed. Once it returns,
// no Append writes the ring again, and a wake still in progress holds
// the pair's lifetime (Writer.wakeShared): the Pair may be closed.
func (s *Shared) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
}
