package ring

import (
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"testing"
	"time"
)

// TestSharedManyProducers: goroutines appending at once each get their
// own record number, every record arrives once and whole, and a record
// appended while another goroutine commits is published by that commit.
func TestSharedManyProducers(t *testing.T) {
	sup, wrk := newTestPair(t, 64<<10)
	s := NewShared(sup.Writer())
	const goroutines, each = 8, 500
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	type got struct{ g, i uint32 }
	seen := make(chan map[got]bool, 1)
	go func() {
		m := map[got]bool{}
		r := wrk.Reader()
		var b Batch
		for len(m) < goroutines*each {
			if err := r.Wait(ctx); err != nil {
				t.Error(err)
				break
			}
			n, err := r.ReadBatch(&b, 0)
			if err != nil {
				t.Error(err)
				break
			}
			for k := range n {
				rec := b.Record(k)
				key := got{binary.LittleEndian.Uint32(rec), binary.LittleEndian.Uint32(rec[4:])}
				if m[key] {
					t.Errorf("record %v twice", key)
				}
				m[key] = true
			}
		}
		seen <- m
	}()

	var mu sync.Mutex
	numbers := map[uint64]bool{}
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			rec := make([]byte, 8+g*13)
			for i := range each {
				binary.LittleEndian.PutUint32(rec, uint32(g))
				binary.LittleEndian.PutUint32(rec[4:], uint32(i))
				for {
					n, err := s.Append(rec, i%2 == 0)
					if errors.Is(err, ErrFull) {
						time.Sleep(time.Millisecond)
						continue
					}
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					if numbers[n] {
						t.Errorf("record number %d twice", n)
					}
					numbers[n] = true
					mu.Unlock()
					break
				}
			}
		})
	}
	wg.Wait()
	if m := <-seen; len(m) != goroutines*each {
		t.Fatalf("%d records arrived, want %d", len(m), goroutines*each)
	}
	for n := uint64(1); n <= goroutines*each; n++ {
		if !numbers[n] {
			t.Fatalf("no record numbered %d", n)
		}
	}
	if w := sup.Writer().Wakes(); w > goroutines*each {
		t.Fatalf("%d wakes for %d records", w, goroutines*each)
	}
}

func TestSharedClosed(t *testing.T) {
	sup, _ := newTestPair(t, 16<<10)
	s := NewShared(sup.Writer())
	if n, err := s.Append([]byte("a"), false); err != nil || n != 1 {
		t.Fatalf("Append = %d, %v", n, err)
	}
	s.Close()
	if _, err := s.Append([]byte("b"), true); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close = %v, want ErrClosed", err)
	}
	if _, err := s.Append(make([]byte, s.MaxRecord()+1), false); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close = %v, want ErrClosed", err)
	}
}

// TestSharedWakeRacesClose: producers appending (and waking a consumer
// that parks on its doorbell) while the Shared and then the Pair close,
// the pool's order, neither crash nor write a closed doorbell: a wake
// that runs after Shared.Close returned holds the pair's lifetime. Run
// with -race.
func TestSharedWakeRacesClose(t *testing.T) {
	for range 20 {
		sup, wrk := newBellPair(t, 16<<10)
		s := NewShared(sup.Writer())
		ctx, cancel := context.WithCancel(context.Background())
		consumed := make(chan struct{})
		go func() { // a consumer that parks whenever the ring is empty
			defer close(consumed)
			r := wrk.Reader()
			var b Batch
			for r.Wait(ctx) == nil {
				if _, err := r.ReadBatch(&b, 0); err != nil {
					return
				}
			}
		}()
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for {
					_, err := s.Append([]byte("wake"), false)
					if errors.Is(err, ErrClosed) {
						return
					}
					if err != nil && !errors.Is(err, ErrFull) {
						t.Error(err)
						return
					}
				}
			})
		}
		time.Sleep(2 * time.Millisecond)
		s.Close()
		if err := sup.Close(); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		cancel()
		<-consumed
	}
}

// AppendNoWake publishes its record at once (the consumer can read it)
// but rings no doorbell: the caller's Wake does, once, for a parked
// consumer.
func TestAppendNoWakePublishesWithoutWaking(t *testing.T) {
	h := newHeapRing(t, MinCapacity)
	defer h.close()
	s := NewShared(h.w)
	done := parkConsumer(t, h)
	if _, err := s.AppendNoWake([]byte("a")); err != nil {
		t.Fatal(err)
	}
	if !h.r.ready() {
		t.Fatal("AppendNoWake did not publish its record")
	}
	if n := h.w.Wakes(); n != 0 {
		t.Errorf("AppendNoWake woke the consumer %d times, want 0", n)
	}
	// (The consumer's futex nap ends 100 ms after it parked; waitParked
	// saw it parked within a millisecond, so Wake comes long before.)
	s.Wake()
	awaitWoken(t, h, done, "Wake")
	if n := h.w.Wakes(); n != 1 {
		t.Errorf("Wake woke the consumer %d times, want 1", n)
	}
	if got, err := h.r.Read(nil); err != nil || string(got) != "a" {
		t.Fatalf("Read = %q, %v", got, err)
	}
}

// TestBacklog: what the consumer has not read of what was published, and
// whether it parks: nothing and parked for a consumer waiting on an
// empty ring, a record's bytes once one is published without a wake,
// nothing once it is read, and nothing at all once closed.
func TestBacklog(t *testing.T) {
	h := newHeapRing(t, MinCapacity)
	defer h.close()
	s := NewShared(h.w)
	if n, parks := s.Backlog(); n != 0 || parks {
		t.Fatalf("a new ring: Backlog = %d, %v", n, parks)
	}
	done := parkConsumer(t, h)
	if n, parks := s.Backlog(); n != 0 || !parks {
		t.Fatalf("a parked consumer of an empty ring: Backlog = %d, %v, want 0, true", n, parks)
	}
	if _, err := s.AppendNoWake([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	// (Whether it still parks depends on its futex nap, 100 ms: not checked.)
	if n, _ := s.Backlog(); n != padded(3) {
		t.Fatalf("a record unread: Backlog = %d bytes, want %d", n, padded(3))
	}
	s.Wake()
	awaitWoken(t, h, done, "Wake")
	if n, _ := s.Backlog(); n != padded(3) {
		t.Fatalf("woken, not read yet: Backlog = %d bytes, want %d", n, padded(3))
	}
	if _, err := h.r.Read(nil); err != nil {
		t.Fatal(err)
	}
	if n, parks := s.Backlog(); n != 0 || parks {
		t.Fatalf("read: Backlog = %d, %v, want 0, false", n, parks)
	}
	s.Close()
	if n, parks := s.Backlog(); n != 0 || parks {
		t.Fatalf("closed: Backlog = %d, %v", n, parks)
	}
}

// Owed names the first record AppendNoWake published since the last
// Wake: what a watchdog reads to find a producer that forgot its
// wake-up, and ClaimOwed hands that debt to one watchdog.
func TestOwed(t *testing.T) {
	h := newHeapRing(t, MinCapacity)
	defer h.close()
	s := NewShared(h.w)
	if o := s.Owed(); o != 0 {
		t.Fatalf("a new ring owes record %d", o)
	}
	if _, err := s.Append([]byte("a"), false); err != nil {
		t.Fatal(err)
	}
	if o := s.Owed(); o != 0 {
		t.Fatalf("Append, which wakes: Owed = %d, want 0", o)
	}
	for rec := uint64(2); rec <= 3; rec++ {
		if _, err := s.AppendNoWake([]byte("b")); err != nil {
			t.Fatal(err)
		}
		if o := s.Owed(); o != 2 {
			t.Fatalf("AppendNoWake of record %d: Owed = %d, want 2 (the first unpaid)", rec, o)
		}
	}
	if _, err := s.Append([]byte("c"), false); err != nil {
		t.Fatal(err)
	}
	if o := s.Owed(); o != 2 {
		t.Fatalf("an Append by another producer paid record 2's wake: Owed = %d, want 2 until its own Wake", o)
	}
	s.Wake()
	if o := s.Owed(); o != 0 {
		t.Fatalf("after Wake: Owed = %d, want 0", o)
	}
	if _, err := s.AppendNoWake([]byte("d")); err != nil { // record 5
		t.Fatal(err)
	}
	if s.ClaimOwed(4) || s.ClaimOwed(0) || s.Owed() != 5 {
		t.Fatalf("a claim of a debt that is not the one owed took it: Owed = %d", s.Owed())
	}
	if !s.ClaimOwed(5) || s.Owed() != 0 {
		t.Fatalf("ClaimOwed(5) did not take the debt: Owed = %d", s.Owed())
	}
	if s.ClaimOwed(5) {
		t.Fatal("a debt claimed twice")
	}
	if _, err := s.AppendNoWake(make([]byte, s.MaxRecord()+1)); err == nil {
		t.Fatal("an oversized record was appended")
	}
	if o := s.Owed(); o != 0 {
		t.Fatalf("a record refused: Owed = %d, want 0", o)
	}
	s.Close()
	s.Wake()
	if o := s.Owed(); o != 0 {
		t.Fatalf("closed: Owed = %d", o)
	}
}

// A claimed debt's Wake wakes a parked consumer that was never woken
// for its record.
func TestClaimOwedThenWake(t *testing.T) {
	h := newHeapRing(t, MinCapacity)
	defer h.close()
	s := NewShared(h.w)
	done := parkConsumer(t, h)
	n, err := s.AppendNoWake([]byte("abc"))
	if err != nil {
		t.Fatal(err)
	}
	if !s.ClaimOwed(n) {
		t.Fatal("the debt was not claimed")
	}
	s.Wake()
	awaitWoken(t, h, done, "Wake")
}

// Append wakes a parked consumer (the wake comes after the lock, through
// the mapping's lifetime check).
func TestSharedAppendWakesAParkedConsumer(t *testing.T) {
	h := newHeapRing(t, MinCapacity)
	defer h.close()
	s := NewShared(h.w)
	done := parkConsumer(t, h)
	if _, err := s.Append([]byte("a"), false); err != nil {
		t.Fatal(err)
	}
	awaitWoken(t, h, done, "Append")
	// The consumer would also find the record when its futex nap ends
	// (100 ms after it parked): the count says the Append rang.
	if n := h.w.Wakes(); n != 1 {
		t.Errorf("Append woke the parked consumer %d times, want 1", n)
	}
	if got, err := h.r.Read(nil); err != nil || string(got) != "a" {
		t.Fatalf("Read = %q, %v", got, err)
	}
}

// parkConsumer starts h's consumer waiting on an empty ring and returns
// once it parks; its Wait's result comes on the channel.
func parkConsumer(t *testing.T, h *heapRing) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- h.r.Wait(context.Background()) }()
	waitParked(t, h, "the consumer", h.r.m.consPark)
	return done
}

// awaitWoken fails t unless the consumer parked by parkConsumer returns
// from its Wait, without error, within 30 s of what woke it.
func awaitWoken(t *testing.T, h *heapRing, done <-chan error, what string) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		h.close()
		<-done
		t.Fatalf("%s did not wake the parked consumer", what)
	}
}
