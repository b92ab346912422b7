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
)

func newBellPair(t testing.TB, capacity int) (sup, wrk *Pair) {
	t.Helper()
	sup, wrk = newTestPair(t, capacity)
	req, rep, err := NewDoorbells()
	if err != nil {
		t.Fatal(err)
	}
	defer req.Close()
	defer rep.Close()
	if err := sup.SetDoorbells(req, rep); err != nil {
		t.Fatal(err)
	}
	if err := wrk.SetDoorbells(req, rep); err != nil {
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

func TestDoorbellNotAnEventfd(t *testing.T) {
	sup, _ := newTestPair(t, MinCapacity)
	f, err := os.CreateTemp(t.TempDir(), "x")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := sup.SetDoorbells(f, f); !errors.Is(err, ErrBadLayout) {
		t.Fatalf("SetDoorbells of a file = %v, want ErrBadLayout", err)
	}
}
