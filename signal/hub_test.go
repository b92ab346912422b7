package signal_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/signal"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// commit is a commit at version v with one signal per path.
func commit(v cas.Version, paths ...string) cas.Commit {
	c := cas.Commit{Version: v}
	for _, p := range paths {
		c.Signals = append(c.Signals, cas.Write{Path: contract.Path(p), Op: contract.OpSet, Value: []byte(fmt.Sprintf("%d", v))})
	}
	return c
}

// recv returns the next item of s, failing after a generous wait.
func recv(t *testing.T, s *signal.Sub) signal.Item {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	it, err := s.Next(ctx)
	if err != nil {
		t.Fatalf("no item: %v", err)
	}
	return it
}

// none fails if s holds an item now.
func none(t *testing.T, s *signal.Sub, why string) {
	t.Helper()
	if items, _ := s.Take(nil); len(items) > 0 {
		t.Fatalf("%+v %s", items[0], why)
	}
}

// ended fails unless s has ended with nothing left to take.
func ended(t *testing.T, s *signal.Sub, what string) {
	t.Helper()
	if items, ok := s.Take(nil); ok || len(items) > 0 {
		t.Fatalf("%s: %d items, ended %t", what, len(items), !ok)
	}
	if _, err := s.Next(context.Background()); !errors.Is(err, signal.ErrEnded) {
		t.Fatalf("%s: Next: %v, want ErrEnded", what, err)
	}
}

// quiet fails if s has an item now that the hub has published everything
// it was given (Stats counts each delivery).
func quiet(t *testing.T, h *signal.Hub, s *signal.Sub, deliveries uint64) {
	t.Helper()
	poll(t, func() bool { st := h.Stats(); return st.Published+st.Missed >= deliveries })
	none(t, s, "unexpected")
}

func poll(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 20s")
		}
	}
}

// A subscription sees the subtree of its prefix, in version order; ""
// sees everything.
func TestSubtree(t *testing.T) {
	h := signal.New(signal.Config{})
	defer h.Close()
	dom := h.Subscribe("domain", 0)
	all := h.Subscribe("", 0)
	h.Committed(commit(1, "domain.sig_ping"))
	h.Committed(commit(2, "global.sig_x"))
	h.Committed(commit(3, "domain.orders.cmd_ship", "domainx.sig_y"))
	h.Committed(cas.Commit{Version: 4}) // no signal
	for _, want := range []signal.Item{{Version: 1, Path: "domain.sig_ping"}, {Version: 3, Path: "domain.orders.cmd_ship"}} {
		if it := recv(t, dom); it.Version != want.Version || it.Path != want.Path || string(it.Value) != fmt.Sprint(want.Version) {
			t.Fatalf("domain got %+v, want %+v", it, want)
		}
	}
	var got []string
	for range 4 {
		it := recv(t, all)
		got = append(got, fmt.Sprintf("%d %s", it.Version, it.Path))
	}
	if fmt.Sprint(got) != "[1 domain.sig_ping 2 global.sig_x 3 domain.orders.cmd_ship 3 domainx.sig_y]" {
		t.Fatalf("all got %v", got)
	}
	quiet(t, h, dom, 6)
	dom.Close()
	dom.Close()
	ended(t, dom, "after Close")
}

// gate is a Wait that holds every version until released.
type gate struct {
	mu      sync.Mutex
	durable cas.Version
	changed chan struct{}
	fail    error
}

func newGate() *gate { return &gate{changed: make(chan struct{})} }

func (g *gate) set(v cas.Version, fail error) {
	g.mu.Lock()
	g.durable, g.fail = v, fail
	close(g.changed)
	g.changed = make(chan struct{})
	g.mu.Unlock()
}

func (g *gate) Wait(ctx context.Context, v cas.Version) error {
	for {
		g.mu.Lock()
		d, fail, ch := g.durable, g.fail, g.changed
		g.mu.Unlock()
		if fail != nil {
			return fail
		}
		if d >= v {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (g *gate) Durable() cas.Version {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.durable
}

// The publisher wakes a subscriber once per batch of commits, not once
// per signal: commits queued while it waits for the first to become
// durable reach the subscriber in one Take.
func TestOneWakePerBatch(t *testing.T) {
	g := newGate()
	h := signal.New(signal.Config{Wait: g.Wait, Durable: g.Durable})
	defer h.Close()
	s := h.Subscribe("domain", 0)
	const n = 50
	for v := range cas.Version(n) {
		h.Committed(commit(v+1, "domain.sig_a", "global.sig_b"))
	}
	g.set(n, nil)
	var got []signal.Item
	wakes := 0
	for len(got) < n {
		select {
		case <-s.Ready():
		case <-time.After(20 * time.Second):
			t.Fatalf("%d items of %d after %d wakes", len(got), n, wakes)
		}
		wakes++
		items, ok := s.Take(nil)
		if !ok {
			t.Fatal("the subscription ended")
		}
		got = append(got, items...)
	}
	// The publisher may have taken commit 1 alone, before the others
	// were queued: then it is a batch of its own.
	if wakes > 2 {
		t.Fatalf("%d wakes for %d commits", wakes, n)
	}
	for i, it := range got {
		if it.Version != uint64(i+1) || it.Path != "domain.sig_a" || it.Lagged != 0 {
			t.Fatalf("item %d: %+v", i, it)
		}
	}
	none(t, s, "after the batch")
}

// Nothing is published before its commit is durable; a commit that never
// becomes durable is never published.
func TestPublishAfterDurable(t *testing.T) {
	g := newGate()
	h := signal.New(signal.Config{Wait: g.Wait})
	defer h.Close()
	s := h.Subscribe("", 0)
	h.Committed(commit(1, "domain.sig_a"))
	h.Committed(commit(2, "domain.sig_b"))
	h.Committed(commit(3, "domain.sig_c"))
	time.Sleep(50 * time.Millisecond)
	none(t, s, "published before it was durable")
	g.set(2, nil)
	if it := recv(t, s); it.Version != 1 {
		t.Fatalf("got %+v, want version 1", it)
	}
	if it := recv(t, s); it.Version != 2 {
		t.Fatalf("got %+v, want version 2", it)
	}
	g.set(2, errors.New("disk gone"))
	poll(t, func() bool { return h.Stats().Undelivered == 1 })
	none(t, s, "published though it never became durable")
}

// A subscriber that does not read never slows the publisher nor the other
// subscribers: its signals are counted as missed, and it gets one lagged
// item with the exact count once it reads again, in order, while one with
// room gets them all.
func TestLagged(t *testing.T) {
	h := signal.New(signal.Config{})
	defer h.Close()
	const n = 500
	slow := h.Subscribe("domain", 4)
	roomy := h.Subscribe("domain", n)
	for v := range cas.Version(n) {
		h.Committed(commit(v+1, "domain.sig_ping")) // returns though slow reads nothing
	}
	for i := range n {
		if it := recv(t, roomy); it.Version != uint64(i+1) || it.Lagged != 0 {
			t.Fatalf("the subscriber with room got %+v at %d", it, i)
		}
	}
	poll(t, func() bool { st := h.Stats(); return st.Published+st.Missed == 2*n })
	if st := h.Stats(); st.Missed != n-4 || st.Lagging != 1 || st.Subscribers != 2 {
		t.Fatalf("missed %d of %d with a buffer of 4, want %d; %d of %d subscribers lagging, want 1 of 2", st.Missed, n, n-4, st.Lagging, st.Subscribers)
	}
	// The count comes with the next signal, which has room now.
	for i := range 4 {
		if it := recv(t, slow); it.Version != uint64(i+1) {
			t.Fatalf("the slow subscriber got %+v, want version %d", it, i+1)
		}
	}
	h.Committed(commit(n+1, "domain.sig_ping"))
	if it := recv(t, slow); it.Lagged != n-4 {
		t.Fatalf("got %+v, want lagged %d", it, n-4)
	}
	if it := recv(t, slow); it.Version != n+1 || it.Lagged != 0 {
		t.Fatalf("after the lag: %+v, want version %d", it, n+1)
	}
	if st := h.Stats(); st.Lagging != 0 {
		t.Fatalf("%d subscribers lagging once told, want 0", st.Lagging)
	}
}

// Under a reader that keeps up only now and then, every lagged item sits
// exactly where its signals went missing (drain checks each count
// against the versions around it).
func TestLaggedWhileReading(t *testing.T) {
	h := signal.New(signal.Config{})
	defer h.Close()
	s := h.Subscribe("", 3)
	const n = 2000
	done := make(chan uint64)
	go func() { done <- drain(t, s, n+1) }()
	for v := range cas.Version(n) {
		h.Committed(commit(v+1, "domain.sig_a"))
	}
	// A lag at the end is told with the next signal that fits: keep
	// committing one at a time until one past the burst arrives.
	for v := cas.Version(n + 1); ; v++ {
		h.Committed(commit(v, "domain.sig_a"))
		select {
		case lagged := <-done:
			if lagged == 0 || lagged > h.Stats().Missed {
				t.Fatalf("lagged %d, the hub counted %d missed", lagged, h.Stats().Missed)
			}
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// drain reads s until it gets a version of at least n, checking that the
// signals and the lagged counts account for every version up to it, one
// signal each, and returns the lagged total. A
// lagged item must sit exactly where its signals went missing: the next
// signal's version is the last one's plus the count plus one.
func drain(t *testing.T, s *signal.Sub, n uint64) uint64 {
	t.Helper()
	var last, lagged, pending uint64
	for last < n {
		it := recv(t, s)
		if it.Lagged != 0 {
			if pending != 0 {
				t.Fatalf("two lagged items in a row after version %d", last)
			}
			pending = it.Lagged
			lagged += it.Lagged
			continue
		}
		if it.Version != last+pending+1 {
			t.Fatalf("version %d after version %d and %d missed", it.Version, last, pending)
		}
		last, pending = it.Version, 0
	}
	return lagged
}

// Close ends every subscription and stops the publisher; a subscription
// made after Close is ended at once.
func TestClose(t *testing.T) {
	h := signal.New(signal.Config{Wait: newGate().Wait}) // the publisher waits forever
	s := h.Subscribe("", 0)
	h.Committed(commit(1, "domain.sig_a"))
	h.Close()
	h.Close()
	ended(t, s, "after Close")
	s.Close()
	late := h.Subscribe("", 0)
	ended(t, late, "a subscription made after Close")
	h.Committed(commit(2, "domain.sig_a")) // never blocks, publishes nothing
}
