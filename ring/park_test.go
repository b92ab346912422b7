package ring

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// close ends a heap ring's life as Pair.Close does, without unmapping.
func (h *heapRing) close() {
	if h.life.closed.Swap(true) {
		return
	}
	h.r.w.interrupt()
	h.w.w.interrupt()
	h.life.mu.Lock()
	//lint:ignore SA2001 waits until every waiter has left, as Pair.Close does before it unmaps
	h.life.mu.Unlock()
}

// waitParked polls until word says its owner parks.
func waitParked(t *testing.T, h *heapRing, what string, word interface{ Load() uint32 }) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for word.Load() != parked {
		if time.Now().After(deadline) {
			t.Fatalf("%s never parked", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// A record published after the consumer found the ring empty but before
// it announced that it parks: the producer sees no parked flag and does
// not wake it, so only the re-check after the announcement finds the
// record. Without the re-check this Wait sleeps forever.
func TestNoLostWakeupBetweenCheckAndPark(t *testing.T) {
	h := newHeapRing(t, MinCapacity)
	defer h.close()
	published := false
	h.r.w.beforePark = func() {
		if !published {
			published = true
			if err := h.w.Write([]byte("racing")); err != nil {
				t.Error(err)
			}
		}
	}
	done := make(chan error, 1)
	go func() { done <- h.r.Wait(context.Background()) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		h.close()
		<-done
		t.Fatal("Wait slept through a record published just before it parked: a lost wakeup")
	}
	if h.w.Wakes() != 0 || h.r.Parks() != 0 {
		t.Fatalf("%d wakes, %d parks: want none (the re-check found the record)", h.w.Wakes(), h.r.Parks())
	}
}

// Many round trips between two goroutines, each parking whenever its ring
// is empty, with batches of random sizes: any lost wakeup hangs a round
// (caught by the timeout), and -race checks the record bytes are handed
// over through the tail.
func TestParkWakeManyRounds(t *testing.T) {
	req, rep := newHeapRing(t, MinCapacity), newHeapRing(t, MinCapacity)
	const rounds = 50000
	ctx := context.Background()
	errc := make(chan error, 2)
	go func() { // the worker: echo each batch with one Commit
		var b Batch
		for {
			if err := req.r.Wait(ctx); err != nil {
				errc <- nil // closed: done
				return
			}
			n, err := req.r.ReadBatch(&b, 0)
			if err != nil {
				errc <- err
				return
			}
			for i := range n {
				if err := rep.w.Append(b.Record(i)); err != nil {
					errc <- err
					return
				}
			}
			if err := rep.w.Commit(); err != nil {
				errc <- err
				return
			}
		}
	}()
	go func() { // the supervisor: batches of 1 to 4, then wait for them all
		var buf []byte
		for i := 0; i < rounds; {
			k := 1 + i%4
			for j := range k {
				if err := req.w.Append(fmt.Appendf(nil, "%d", i+j)); err != nil {
					errc <- err
					return
				}
			}
			if err := req.w.Commit(); err != nil {
				errc <- err
				return
			}
			for j := range k {
				if err := rep.r.Wait(ctx); err != nil {
					errc <- err
					return
				}
				got, err := rep.r.Read(buf)
				if err != nil {
					errc <- err
					return
				}
				if want := fmt.Sprint(i + j); string(got) != want {
					errc <- fmt.Errorf("round %d: %q, want %q", i+j, got, want)
					return
				}
				buf = got
			}
			i += k
		}
		errc <- nil
	}()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(3 * time.Minute):
		req.close()
		rep.close()
		<-errc
		<-errc
		t.Fatal("a round hung: lost wakeup")
	}
	req.close() // stops the worker
	rep.close()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d rounds: worker parked %d times, supervisor %d; %d and %d wakes",
		rounds, req.r.Parks(), rep.r.Parks(), req.w.Wakes(), rep.w.Wakes())
	if commits := uint64(rounds * 2 / 5); req.w.Wakes() > commits {
		t.Fatalf("%d wakes for %d commits: more than one per batch", req.w.Wakes(), commits)
	}
}

// One wake for a batch, none while the consumer is not parked.
func TestOneWakePerBatch(t *testing.T) {
	h := newHeapRing(t, MinCapacity)
	defer h.close()
	if err := h.w.Write([]byte("nobody waits")); err != nil {
		t.Fatal(err)
	}
	if h.w.Wakes() != 0 {
		t.Fatal("woke a consumer that does not park")
	}
	if _, err := h.r.Read(nil); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- h.r.Wait(context.Background()) }()
	waitParked(t, h, "the reader", h.r.m.consPark)
	for range 10 {
		if err := h.w.Append([]byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.w.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := h.w.Write([]byte("y")); err != nil {
		t.Fatal(err)
	}
	if h.w.Wakes() != 1 {
		t.Fatalf("%d wakes, want 1", h.w.Wakes())
	}
}

// A writer waiting for room is woken by the reader that frees it.
func TestWriterWaitsForRoom(t *testing.T) {
	h := newHeapRing(t, MinCapacity)
	defer h.close()
	rec := make([]byte, 1000)
	for h.w.Write(rec) == nil {
	}
	done := make(chan error, 1)
	go func() { done <- h.w.Wait(context.Background(), len(rec)) }()
	waitParked(t, h, "the writer", h.w.m.prodPark)
	if _, err := h.r.Read(nil); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the writer was not woken when room was freed")
	}
	if err := h.w.Write(rec); err != nil {
		t.Fatalf("after Wait: %v", err)
	}
}

// A context that ends and Close both interrupt a parked Wait.
func TestWaitInterrupted(t *testing.T) {
	h := newHeapRing(t, MinCapacity)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.r.Wait(ctx) }()
	waitParked(t, h, "the reader", h.r.m.consPark)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait after cancel: %v", err)
	}

	_, wrk := newTestPair(t, MinCapacity)
	go func() { done <- wrk.Reader().Wait(context.Background()) }()
	deadline := time.Now().Add(time.Minute)
	for wrk.Reader().m.consPark.Load() != parked && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if err := wrk.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("Wait after Close: %v", err)
	}
	if err := wrk.Writer().Write(nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after Close: %v", err)
	}
	if b, err := wrk.Writer().Reserve(8); !errors.Is(err, ErrClosed) || b != nil {
		t.Fatalf("Reserve after Close: %d bytes, %v", len(b), err)
	}
	if _, err := wrk.Reader().Read(nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Read after Close: %v", err)
	}
	h.close()
}

// A peer that turns the reader's park word back to running without
// waking it (a worker killed between its compare-and-swap and its wake,
// or a hostile one) must not keep a Wait asleep once this process ends
// it: a done context and Close wake the reader whatever the shared word
// says. With the word trusted, both Waits sleep forever (the supervisor
// then hangs in Shutdown, waiting for its ring reader).
func TestInterruptIgnoresTheSharedWord(t *testing.T) {
	for _, bells := range []bool{false, true} {
		t.Run(fmt.Sprintf("bells=%v", bells), func(t *testing.T) {
			sup, _ := newTestPair(t, MinCapacity)
			if bells {
				sup, _ = newBellPair(t, MinCapacity)
			}
			word := sup.Reader().m.consPark
			wait := func(ctx context.Context) chan error {
				done := make(chan error, 1)
				go func() { done <- sup.Reader().Wait(ctx) }()
				deadline := time.Now().Add(time.Minute)
				for word.Load() != parked {
					if time.Now().After(deadline) {
						t.Fatal("the reader never parked")
					}
					time.Sleep(time.Millisecond)
				}
				time.Sleep(10 * time.Millisecond) // into its sleep
				word.Store(running)               // the peer's CAS, and no wake
				return done
			}
			ended := func(done chan error, want error) {
				t.Helper()
				select {
				case err := <-done:
					if !errors.Is(err, want) {
						t.Fatalf("Wait = %v, want %v", err, want)
					}
				case <-time.After(30 * time.Second):
					// Free it by hand, so that the cleanup's Close returns.
					if w := &sup.Reader().w; w.bell != nil {
						w.bell.SetReadDeadline(aLongTimeAgo)
					} else {
						futexWake(word)
					}
					<-done
					t.Fatalf("Wait still asleep 30 s after it was ended (want %v)", want)
				}
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := wait(ctx)
			cancel()
			ended(done, context.Canceled)

			done = wait(context.Background())
			closed := make(chan error, 1)
			go func() { closed <- sup.Close() }()
			ended(done, ErrClosed)
			if err := <-closed; err != nil {
				t.Fatal(err)
			}
		})
	}
}

// An interrupt that comes after the waiter's last look, but before its
// futex_wait, from a peer that then sets the shared word back to parked:
// the futex_wait does not see the interrupt's wake. The sleep is
// bounded, so that the loop sees the interrupt's reason; with an
// unbounded futex_wait this Wait slept for ever.
func TestFutexInterruptBeforeSleepAndWordReparked(t *testing.T) {
	h := newHeapRing(t, MinCapacity)
	first := true
	h.r.w.beforeSleep = func() {
		if first {
			first = false
			h.life.closed.Store(true) // Close, as far as the waiter sees it
			h.r.w.interrupt()
			h.r.m.consPark.Store(parked) // the peer
		}
	}
	done := make(chan error, 1)
	go func() { done <- h.r.Wait(context.Background()) }()
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Wait = %v, want ErrClosed", err)
		}
	case <-time.After(30 * time.Second):
		h.r.m.consPark.Store(running)
		futexWake(h.r.m.consPark)
		<-done
		t.Fatal("Wait slept through an interrupt whose wake the peer undid")
	}
}
