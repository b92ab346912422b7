package vip_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/theus-run/theus/vip"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var bg = context.Background()

func TestBackoffSequence(t *testing.T) {
	seq := vip.Backoff{Initial: 10 * time.Microsecond, Max: 80 * time.Microsecond, Multiplier: 2, NoJitter: true}.Start()
	want := []time.Duration{10, 20, 40, 80, 80, 80}
	for i, w := range want {
		if got := seq.Next(); got != w*time.Microsecond {
			t.Fatalf("delay %d = %v, want %v", i, got, w*time.Microsecond)
		}
	}
}

func TestBackoffJitterInjected(t *testing.T) {
	for _, r := range []float64{0, 0.5, 0.999} {
		seq := vip.Backoff{Initial: 100 * time.Microsecond, Jitter: 0.5, Rand: func() float64 { return r }}.Start()
		got := seq.Next()
		want := time.Duration(float64(100*time.Microsecond) * (0.5 + r))
		if got != want {
			t.Fatalf("rand %v: delay %v, want %v", r, got, want)
		}
	}
	d := vip.Backoff{}.Start().Next() // defaults: 20µs ± 50%
	if d < 10*time.Microsecond || d > 30*time.Microsecond {
		t.Fatalf("default first delay %v is not in [10µs, 30µs]", d)
	}
}

func TestDisjointTicketsHeldTogether(t *testing.T) {
	a := vip.New(vip.Config{})
	t1, err := a.Acquire(bg, "w1", []string{"domain.a"})
	if err != nil {
		t.Fatal(err)
	}
	t2, err := a.Acquire(bg, "w2", []string{"domain.ab", "domain.b.x"})
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Held()) != 2 {
		t.Fatal("disjoint tickets must be held together")
	}
	if a.Blocker([]string{"domain.a.deep"}, nil) != t1.Done() {
		t.Fatal("a key inside a ticket's subtree must be blocked by it")
	}
	if a.Blocker([]string{"domain.a.deep"}, t1) != nil {
		t.Fatal("a holder is not blocked by its own ticket")
	}
	if a.Blocker([]string{"domain"}, t1) != t2.Done() {
		t.Fatal("a key above a ticket's keys must be blocked")
	}
	if a.Blocker([]string{"domain.c"}, nil) != nil {
		t.Fatal("a disjoint key must not be blocked")
	}
	t1.Release()
	t1.Release() // twice is fine
	t2.Release()
	if a.Active() || t1.Valid() {
		t.Fatal("released tickets still held")
	}
}

// Requests over overlapping keys are granted in FIFO order, and a later
// request never overtakes an earlier overlapping one even when it could.
func TestFIFO(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := vip.New(vip.Config{Lease: time.Hour})
		first, _ := a.Acquire(bg, "w0", []string{"domain.x"})
		order := make(chan string, 3)
		var wg sync.WaitGroup
		defer wg.Wait()
		start := func(owner string, keys ...string) {
			wg.Go(func() {
				tk, err := a.Acquire(bg, owner, keys)
				if err != nil {
					t.Error(err)
					return
				}
				order <- owner
				time.Sleep(time.Millisecond)
				tk.Release()
			})
			synctest.Wait() // queued, in this order
		}
		start("w1", "domain.x")
		start("w2", "domain") // overlaps w1's request: waits behind it
		start("w3", "domain.x.y")
		first.Release()
		for _, want := range []string{"w1", "w2", "w3"} {
			if got := <-order; got != want {
				t.Fatalf("granted %s, want %s", got, want)
			}
		}
	})
}

// A request whose context ends leaves the queue, and those behind it go.
func TestAcquireCancelled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := vip.New(vip.Config{Lease: time.Hour})
		held, _ := a.Acquire(bg, "w0", []string{"domain.x"})
		ctx, cancel := context.WithTimeout(bg, time.Second)
		defer cancel()
		if _, err := a.Acquire(ctx, "w1", []string{"domain.x", "domain.y"}); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v", err)
		}
		// w1 is gone from the queue: a request on domain.y alone is free now.
		tk, err := a.Acquire(bg, "w2", []string{"domain.y"})
		if err != nil {
			t.Fatal(err)
		}
		tk.Release()
		held.Release()
	})
}

func TestLeaseExpires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var events []vip.EventKind
		a := vip.New(vip.Config{Lease: 50 * time.Millisecond, Trace: func(e vip.Event) { events = append(events, e.Kind) }})
		tk, _ := a.Acquire(bg, "w0", []string{"domain.x"})
		start := time.Now()
		<-tk.Done()
		if el := time.Since(start); el != 50*time.Millisecond {
			t.Fatalf("lease ended after %v", el)
		}
		tk.Release() // after expiry: a no-op
		if len(events) != 2 || events[0] != vip.Granted || events[1] != vip.Expired {
			t.Fatalf("events %v", events)
		}
	})
}

func TestStrictCoversEverything(t *testing.T) {
	a := vip.New(vip.Config{Strict: true})
	tk, _ := a.Acquire(bg, "w0", []string{"domain.x"})
	if a.Blocker([]string{"global.other"}, nil) == nil {
		t.Fatal("strict: every commit must wait for a ticket")
	}
	tk.Release()
}

func TestClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := vip.New(vip.Config{Lease: time.Hour})
		held, _ := a.Acquire(bg, "w0", []string{"domain.x"})
		errc := make(chan error)
		go func() {
			_, err := a.Acquire(bg, "w1", []string{"domain.x"})
			errc <- err
		}()
		synctest.Wait()
		a.Close()
		a.Close()
		if err := <-errc; !errors.Is(err, vip.ErrClosed) || held.Valid() {
			t.Fatalf("got %v", err)
		}
		if _, err := a.Acquire(bg, "w2", []string{"x"}); !errors.Is(err, vip.ErrClosed) {
			t.Fatalf("got %v", err)
		}
	})
}

// The zero Backoff is 20µs doubling to a 5ms cap with ±50% jitter; out of
// range fields take their defaults, edge values are kept.
func TestBackoffDefaults(t *testing.T) {
	delays := func(b vip.Backoff, n int) []time.Duration {
		seq := b.Start()
		out := make([]time.Duration, n)
		for i := range out {
			out[i] = seq.Next()
		}
		return out
	}
	us := func(ds ...time.Duration) []time.Duration {
		for i := range ds {
			ds[i] *= time.Microsecond
		}
		return ds
	}
	defaults := us(20, 40, 80, 160, 320, 640, 1280, 2560, 5000, 5000)
	low := func() float64 { return 0 }
	tests := []struct {
		name string
		b    vip.Backoff
		want []time.Duration
	}{
		{"zero", vip.Backoff{NoJitter: true}, defaults},
		{"negative", vip.Backoff{Initial: -1, Max: -1, Multiplier: -1, NoJitter: true}, defaults},
		{"max below initial", vip.Backoff{Initial: 100 * time.Microsecond, Max: 50 * time.Microsecond, NoJitter: true}, us(100, 100, 100)},
		{"multiplier one", vip.Backoff{Initial: 30 * time.Microsecond, Multiplier: 1, NoJitter: true}, us(30, 30, 30)},
		{"default jitter", vip.Backoff{Initial: 100 * time.Microsecond, Rand: low}, us(50, 100, 200)},
		{"jitter over one", vip.Backoff{Initial: 100 * time.Microsecond, Jitter: 1.5, Rand: low}, us(50, 100, 200)},
		{"jitter one", vip.Backoff{Initial: 100 * time.Microsecond, Jitter: 1, Rand: low}, us(0, 0, 0)},
		{"jitter one, high", vip.Backoff{Initial: 100 * time.Microsecond, Jitter: 1, Rand: func() float64 { return 0.75 }}, us(150, 300, 600)},
	}
	for _, tt := range tests {
		if got := delays(tt.b, len(tt.want)); !slices.Equal(got, tt.want) {
			t.Errorf("%s: delays %v, want %v", tt.name, got, tt.want)
		}
	}
}
