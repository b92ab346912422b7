package etcdstore_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/etcdstore"
	"github.com/theus-run/theus/protocol"
)

// One store owns a unit; another's claim is refused. A commit fenced on
// the ownership applies while it holds; once the owner's lease is gone
// (revoked: as a lease that expired) and another claimed the unit, the
// old owner's fenced commit is refused and applies nothing, and the new
// owner's commit that ends the ownership deletes the key; a watcher hears
// of both deletes.
func TestOwnerFence(t *testing.T) {
	a, b := store(t, 0), store(t, 1)
	ctx, cancel := context.WithCancel(bg)
	defer cancel()
	v, err := a.Version(bg)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var gone []string
	var watch sync.WaitGroup
	watch.Go(func() {
		_ = b.WatchOwners(ctx, v, etcdstore.OwnerWatch{
			Gone:   func(u string) { mu.Lock(); gone = append(gone, u); mu.Unlock() },
			Rescan: func() {},
		})
	})
	defer watch.Wait()
	defer cancel()

	fa, lost, err := a.Claim(bg, "r1", "a")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.Claim(bg, "r1", "b"); !errors.Is(err, etcdstore.ErrOwned) {
		t.Fatalf("a second claim: %v, want ErrOwned", err)
	}
	if again, _, err := a.Claim(bg, "r1", "a"); err != nil || again != fa {
		t.Fatalf("the owner's claim again: %v %v, want its own fence %v", again, err, fa)
	}
	commit(t, a, set("domain.n", 1), cas.Options{Fence: fa})

	// a's lease ends (as when it is paused past the TTL); b claims.
	a.Close()
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Fatal("the claim's Lost channel is open after its lease ended")
	}
	fb, _, err := b.Claim(bg, "r1", "b")
	if err != nil {
		t.Fatalf("claim after the owner's lease ended: %v", err)
	}
	err = tryCommit(a, set("domain.n", 2), cas.Options{Fence: fa})
	var fe *etcdstore.FencedError
	var pe *protocol.Error
	if !errors.As(err, &fe) || !errors.Is(err, cas.ErrFenced) || !errors.As(err, &pe) || pe.Code != protocol.CodeFenced {
		t.Fatalf("the old owner's commit: %v, want a FencedError (fenced on the wire)", err)
	}
	if val, _ := get(t, b, P("domain.n")); dec(t, val) != 1 {
		t.Fatalf("domain.n = %d after a fenced commit, want 1", dec(t, val))
	}
	fb.End = true
	commit(t, b, set("domain.n", 3), cas.Options{Fence: fb})
	if _, _, err := a.Claim(bg, "r1", "a"); err == nil {
		t.Fatal("a closed store claimed") // its lease is gone: no claim at all
	}
	if err := tryCommit(b, set("domain.n", 4), cas.Options{Fence: fb}); !errors.Is(err, cas.ErrFenced) {
		t.Fatalf("a commit fenced on an ended ownership: %v, want fenced", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(gone)
		mu.Unlock()
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the watcher heard of %v, want r1 twice (lease end, then the end commit)", gone)
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if gone[0] != "r1" || gone[1] != "r1" {
		t.Fatalf("gone: %v, want [r1 r1]", gone)
	}
}

// Seize ends an ownership from outside it: the commit that carries the
// fence applies only if the owner is still the one seen, and deletes its
// key, so the owner's next commit is fenced.
func TestOwnerSeize(t *testing.T) {
	a, b := store(t, 0), store(t, 1)
	fa, _, err := a.Claim(bg, "r2", "a")
	if err != nil {
		t.Fatal(err)
	}
	seized, err := b.Seize(bg, "r2")
	if err != nil || seized.Rev != fa.Rev || !seized.End {
		t.Fatalf("seize: %v %v, want the owner's revision %d, ending it", seized, err, fa.Rev)
	}
	commit(t, b, set("domain.end", 1), cas.Options{Fence: seized})
	if err := tryCommit(a, set("domain.end", 2), cas.Options{Fence: fa}); !errors.Is(err, cas.ErrFenced) {
		t.Fatalf("the owner's commit after a seize: %v, want fenced", err)
	}
	if err := tryCommit(b, set("domain.end", 3), cas.Options{Fence: seized}); !errors.Is(err, cas.ErrFenced) {
		t.Fatalf("a second commit with a seize that ended the ownership: %v, want fenced", err)
	}
	// With no owner: a seize holds while none claims.
	none, err := b.Seize(bg, "r2")
	if err != nil || none.Rev != 0 {
		t.Fatalf("seize of an unowned unit: %v %v", none, err)
	}
	if _, _, err := a.Claim(bg, "r2", "a"); err != nil {
		t.Fatal(err)
	}
	if err := tryCommit(b, set("domain.end", 4), cas.Options{Fence: none}); !errors.Is(err, cas.ErrFenced) {
		t.Fatalf("a seize of no owner after a claim: %v, want fenced", err)
	}
}
