package ring

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func newBellPair(t testing.TB, capacity int) (sup, wrk *Pair) {
	t.Helper()
	sup, wrk = newTestPair(t, capacity)
	sb, wb, err := NewDoorbells()
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	defer wb.Close()
	if err := sup.SetDoorbells(sb.Req, sb.Rep); err != nil {
		t.Fatal(err)
	}
	if err := wrk.SetDoorbells(wb.Req, wb.Rep); err != nil {
		t.Fatal(err)
	}
	return sup, wrk
}

// TestDoorbellEcho: with doorbells, every record is echoed, the readers
// park (so the bells do wake them), and Close interrupts a parked Wait.
func TestDoorbellEcho(t *testing.T) {
	sup, wrk := newBellPair(t, 16<<10)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- echo(ctx, wrk) }()
	rng := rand.New(rand.NewPCG(3, 4))
	w, r := sup.Writer(), sup.Reader()
	for i := range 2000 {
		rec := randomRecord(rng, w.MaxRecord()/4)
		if err := w.Write(rec); err != nil {
			t.Fatal(err)
		}
		if err := r.Wait(ctx); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		got, err := r.Read(nil)
		if err != nil || !bytes.Equal(got, rec) {
			t.Fatalf("record %d: %v, %d bytes, want %d", i, err, len(got), len(rec))
		}
	}
	if sup.Reader().Parks() == 0 || w.Wakes() == 0 {
		t.Fatalf("parks %d, wakes %d: the bells were never used", sup.Reader().Parks(), w.Wakes())
	}
	wrk.Close()
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("echo ended with %v, want ErrClosed", err)
	}
}

// TestDoorbellWaitHoldsNoThread: readers parked on doorbells are parked
// goroutines, not threads blocked in a system call.
func TestDoorbellWaitHoldsNoThread(t *testing.T) {
	const n = 32
	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, n)
	for range n {
		sup, _ := newBellPair(t, MinCapacity)
		go func() { errs <- sup.Reader().Wait(ctx) }()
	}
	time.Sleep(100 * time.Millisecond)
	threads := threadCount(t)
	cancel()
	for range n {
		if err := <-errs; !errors.Is(err, context.Canceled) {
			t.Fatalf("Wait = %v, want context.Canceled", err)
		}
	}
	if threads >= n {
		t.Fatalf("%d threads with %d readers parked (GOMAXPROCS %d)", threads, n, runtime.GOMAXPROCS(0))
	}
}

func threadCount(t *testing.T) int {
	es, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Skip(err)
	}
	return len(es)
}

// TestDoorbellNotItsEnds: SetDoorbells takes only this side's ends of
// doorbell pipes: the read end of the ring it consumes, the write end of
// the one it produces.
func TestDoorbellNotItsEnds(t *testing.T) {
	sup, wrk := newTestPair(t, MinCapacity)
	f, err := os.CreateTemp(t.TempDir(), "x")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := sup.SetDoorbells(f, f); !errors.Is(err, ErrBadLayout) {
		t.Fatalf("SetDoorbells of a file = %v, want ErrBadLayout", err)
	}
	sb, wb, err := NewDoorbells()
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	defer wb.Close()
	if err := sup.SetDoorbells(wb.Req, wb.Rep); !errors.Is(err, ErrBadLayout) {
		t.Fatalf("the supervisor's SetDoorbells of the worker's ends = %v, want ErrBadLayout", err)
	}
	if err := wrk.SetDoorbells(sb.Req, sb.Rep); !errors.Is(err, ErrBadLayout) {
		t.Fatalf("the worker's SetDoorbells of the supervisor's ends = %v, want ErrBadLayout", err)
	}
	if err := sup.SetDoorbells(sb.Req, sb.Rep); err != nil {
		t.Fatal(err)
	}
	if err := wrk.SetDoorbells(wb.Req, wb.Rep); err != nil {
		t.Fatal(err)
	}
}

// TestDoorbellHungUp: once the peer closed its end of the bell (it died),
// nothing can ring it again and a read of it returns at once: a Wait
// sleeps on (it does not spin) until this process ends it.
func TestDoorbellHungUp(t *testing.T) {
	sup, wrk := newBellPair(t, MinCapacity)
	wrk.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sup.Reader().Wait(ctx) }()
	time.Sleep(200 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("Wait = %v with nothing published", err)
	default:
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait = %v, want context.Canceled", err)
	}
	if parks := sup.Reader().Parks(); parks > 3 {
		t.Fatalf("%d sleeps of a Wait on a hung-up bell: it spins", parks)
	}
	// A second Wait, ended by Close.
	go func() { done <- sup.Reader().Wait(context.Background()) }()
	time.Sleep(50 * time.Millisecond)
	sup.Close()
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("Wait = %v, want ErrClosed", err)
	}
}

// echoing starts an echo of wrk's records on its own goroutine and
// returns a round trip through it (a record written, waited for, read)
// for sup, n times, and a stop that closes wrk and waits for the echo.
func echoing(t *testing.T, sup, wrk *Pair) (rounds func(n int), stop func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	done := make(chan error, 1)
	go func() { done <- echo(ctx, wrk) }()
	w, r := sup.Writer(), sup.Reader()
	rounds = func(n int) {
		t.Helper()
		for i := range n {
			if err := w.Write([]byte("ping")); err != nil {
				t.Fatal(err)
			}
			if err := r.Wait(ctx); err != nil {
				t.Fatalf("record %d: %v", i, err)
			}
			if _, err := r.Read(nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	return rounds, func() { wrk.Close(); <-done; cancel() }
}

// TestDoorbellOneReadPerPark: a park on a doorbell reads the bell once,
// when woken, not also before it sleeps (a read that finds nothing).
func TestDoorbellOneReadPerPark(t *testing.T) {
	sup, wrk := newBellPair(t, 16<<10)
	rounds, stop := echoing(t, sup, wrk)
	r := sup.Reader()
	// A Wait that finds the echo done does not park: on a busy machine
	// most do, so go on until enough have parked.
	n := 0
	for ; n < 100_000 && r.Parks() < 100; n += 500 {
		rounds(500)
	}
	stop()
	parks, reads := r.Parks(), r.w.reads
	if parks < 100 {
		t.Fatalf("%d parks in %d round trips: the test did not park", parks, n)
	}
	if reads > parks+parks/10+2 {
		t.Fatalf("%d reads of the bell for %d parks, want about one each", reads, parks)
	}
}

// TestDoorbellStaleRings: a ring for a park that did not sleep (the
// waker took the park, then the re-check found the record) is read off
// by the next park, so that such rings never fill the bell's pipe: a
// ring into a full pipe would wake nobody. Here every park but the last
// is such a park, more of them than the pipe holds; the last one sleeps
// and must be woken.
func TestDoorbellStaleRings(t *testing.T) {
	sup, wrk := newBellPair(t, 16<<10)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pipe, err := unix.FcntlInt(uintptr(wrk.w.m.bell), unix.F_GETPIPE_SZ, 0)
	if err != nil {
		t.Fatal(err)
	}
	r, w := sup.Reader(), wrk.Writer()
	r.w.afterPark = func() { // the word says parked: the write's wake rings
		if err := w.Write([]byte("x")); err != nil {
			t.Error(err)
		}
	}
	for i := range pipe + 100 {
		if err := r.Wait(ctx); err != nil {
			t.Fatalf("park %d: %v", i, err)
		}
		if _, err := r.Read(nil); err != nil {
			t.Fatal(err)
		}
	}
	if w.Wakes() < uint64(pipe) {
		t.Fatalf("%d wakes: the parks were not taken", w.Wakes())
	}
	held, err := unix.IoctlGetInt(r.w.bellFD, unix.TIOCINQ) // FIONREAD
	if err != nil {
		t.Fatal(err)
	}
	if held > 8 {
		t.Errorf("the bell holds %d rings after %d parks that did not sleep", held, pipe+100)
	}
	r.w.afterPark = nil
	go func() {
		time.Sleep(20 * time.Millisecond)
		if err := w.Write([]byte("y")); err != nil {
			t.Error(err)
		}
	}()
	if err := r.Wait(ctx); err != nil {
		t.Fatalf("a park after the stale rings: %v (a ring into a full bell was lost)", err)
	}
}

// TestDoorbellNudgeOwesNoRing: a Nudge with no Wait in progress leaves
// the bell's deadline passed, so the next park's read ends before the
// park begins; that park was never announced, so no waker took it and
// no ring is owed: the parks after it still read the bell once each.
func TestDoorbellNudgeOwesNoRing(t *testing.T) {
	sup, wrk := newBellPair(t, 16<<10)
	rounds, stop := echoing(t, sup, wrk)
	r := sup.Reader()
	rounds(50)
	r.Nudge()
	if err := r.Wait(context.Background()); err != nil { // takes the nudge, parking not
		t.Fatal(err)
	}
	rounds(1) // its park's read meets the passed deadline
	parks0, reads0 := r.Parks(), r.w.reads
	rounds(500)
	stop()
	parks, reads := r.Parks()-parks0, r.w.reads-reads0
	if r.w.owed != 0 || reads > parks+parks/10+2 {
		t.Fatalf("after a Nudge: %d reads of the bell for %d parks, %d rings owed; want one read a park", reads, parks, r.w.owed)
	}
}
