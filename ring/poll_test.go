package ring

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"
)

// waitDone waits for a Wait's error, failing the test if it takes a
// minute.
func waitDone(t *testing.T, h *heapRing, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(time.Minute):
		h.close()
		<-done
		t.Fatal("Wait did not return")
		return nil
	}
}

// A reader that follows the producer's advice polls instead of parking:
// a record published meanwhile costs no park and no wake.
func TestFollowPollSparesTheWake(t *testing.T) {
	h := newHeapRing(t, MinCapacity)
	defer h.close()
	h.r.FollowPoll(time.Minute)
	h.w.SetPoll(30 * time.Second)
	h.r.w.beforePark = func() { t.Error("the reader went to park while advised to poll") }
	done := make(chan error, 1)
	go func() { done <- h.r.Wait(context.Background()) }()
	time.Sleep(5 * time.Millisecond) // the reader polls meanwhile (or has not started: the same for the check)
	if err := h.w.Write([]byte("soon")); err != nil {
		t.Fatal(err)
	}
	if err := waitDone(t, h, done); err != nil {
		t.Fatal(err)
	}
	if h.w.Wakes() != 0 || h.r.Parks() != 0 {
		t.Fatalf("%d wakes, %d parks: want none", h.w.Wakes(), h.r.Parks())
	}
}

// A reader not told to follow the advice parks at once, whatever the
// producer writes there (a supervisor never polls for a worker).
func TestPollAdviceIsNotFollowedUnlessAsked(t *testing.T) {
	h := newHeapRing(t, MinCapacity)
	defer h.close()
	h.w.SetPoll(time.Hour)
	done := make(chan error, 1)
	go func() { done <- h.r.Wait(context.Background()) }()
	waitParked(t, h, "the reader", h.r.w.word)
	if err := h.w.Write([]byte("late")); err != nil {
		t.Fatal(err)
	}
	if err := waitDone(t, h, done); err != nil {
		t.Fatal(err)
	}
	if h.r.Parks() != 1 || h.w.Wakes() != 1 {
		t.Fatalf("%d parks, %d wakes: want 1 and 1", h.r.Parks(), h.w.Wakes())
	}
}

// The reader's own bound caps what the producer advises.
func TestFollowPollIsBounded(t *testing.T) {
	h := newHeapRing(t, MinCapacity)
	defer h.close()
	h.r.FollowPoll(2 * time.Millisecond)
	h.w.SetPoll(time.Hour)
	done := make(chan error, 1)
	go func() { done <- h.r.Wait(context.Background()) }()
	waitParked(t, h, "the reader advised an hour, bounded to 2ms,", h.r.w.word)
	if err := h.w.Write([]byte("late")); err != nil {
		t.Fatal(err)
	}
	if err := waitDone(t, h, done); err != nil {
		t.Fatal(err)
	}
	if h.r.Parks() != 1 {
		t.Fatalf("%d parks, want 1", h.r.Parks())
	}
}

// A poll ends when the wait's context does, or the pair closes, not when
// the advice runs out.
func TestPollEndsWithContextAndClose(t *testing.T) {
	t.Run("context", func(t *testing.T) {
		h := newHeapRing(t, MinCapacity)
		defer h.close()
		h.r.FollowPoll(time.Hour)
		h.w.SetPoll(time.Hour)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- h.r.Wait(ctx) }()
		time.Sleep(5 * time.Millisecond)
		cancel()
		if err := waitDone(t, h, done); !errors.Is(err, context.Canceled) {
			t.Fatalf("Wait = %v, want context.Canceled", err)
		}
	})
	t.Run("close", func(t *testing.T) {
		h := newHeapRing(t, MinCapacity)
		h.r.FollowPoll(time.Hour)
		h.w.SetPoll(time.Hour)
		done := make(chan error, 1)
		go func() { done <- h.r.Wait(context.Background()) }()
		time.Sleep(5 * time.Millisecond)
		go h.close() // waits for the waiter to leave
		if err := waitDone(t, h, done); !errors.Is(err, ErrClosed) {
			t.Fatalf("Wait = %v, want ErrClosed", err)
		}
	})
}

// The advice is whole microseconds, clamped to the word; nothing once the
// ring is closed.
func TestSetPollWord(t *testing.T) {
	h := newHeapRing(t, MinCapacity)
	for _, c := range []struct{ set, want time.Duration }{
		{-time.Second, 0},
		{1500 * time.Nanosecond, time.Microsecond},
		{999 * time.Nanosecond, 0},
		{50 * time.Microsecond, 50 * time.Microsecond},
		{math.MaxInt64, math.MaxUint32 * time.Microsecond},
	} {
		h.w.SetPoll(c.set)
		if got := h.w.Poll(); got != c.want {
			t.Errorf("SetPoll(%v): Poll() = %v, want %v", c.set, got, c.want)
		}
	}
	h.w.SetPoll(time.Millisecond)
	h.close()
	h.w.SetPoll(time.Second) // does nothing, and does not fault
	if got := h.w.Poll(); got != 0 {
		t.Errorf("Poll() after close = %v, want 0", got)
	}
}

// Shared.SetPoll reaches the ring with the next record, before the
// consumer can see it, and never after Close.
func TestSharedSetPoll(t *testing.T) {
	h := newHeapRing(t, MinCapacity)
	defer h.close()
	s := NewShared(h.w)
	s.SetPoll(70 * time.Microsecond)
	if got := h.w.Poll(); got != 0 {
		t.Fatalf("Poll() before a record = %v, want 0", got)
	}
	if _, err := s.AppendNoWake([]byte("a")); err != nil {
		t.Fatal(err)
	}
	if got := h.w.Poll(); got != 70*time.Microsecond {
		t.Fatalf("Poll() with the record = %v, want 70µs", got)
	}
	s.SetPoll(0)
	if _, err := s.Append([]byte("b"), false); err != nil {
		t.Fatal(err)
	}
	if got := h.w.Poll(); got != 0 {
		t.Fatalf("Poll() after SetPoll(0) and a record = %v, want 0", got)
	}
	s.Close()
	s.SetPoll(time.Second)
	if _, err := s.Append([]byte("c"), false); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close = %v, want ErrClosed", err)
	}
	if got := h.w.Poll(); got != 0 {
		t.Fatalf("Poll() after Close = %v, want 0 (unchanged)", got)
	}
}
