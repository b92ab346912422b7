package etcdstore_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
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
			Changed: func(u, holder string) {
				if holder == "" {
					mu.Lock()
					gone = append(gone, u)
					mu.Unlock()
				}
			},
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

// Take moves an ownership from a live owner: the old owner's next
// commit is fenced, the taker's applies, and a watcher is told who holds
// it now.
func TestOwnerTake(t *testing.T) {
	a, b := store(t, 0), store(t, 1)
	fa, _, err := a.Claim(bg, "r2", "a")
	if err != nil {
		t.Fatal(err)
	}
	fb, _, err := b.Take(bg, "r2", "b")
	if err != nil || fb.Rev != fa.Rev || fb.Lease == fa.Lease {
		t.Fatalf("take: %v %v, want the key at the owner's revision %d on another lease", fb, err, fa.Rev)
	}
	if err := tryCommit(a, set("domain.end", 2), cas.Options{Fence: fa}); !errors.Is(err, cas.ErrFenced) {
		t.Fatalf("the owner's commit after a take: %v, want fenced", err)
	}
	fb.End = true
	commit(t, b, set("domain.end", 3), cas.Options{Fence: fb})
	if err := tryCommit(b, set("domain.end", 4), cas.Options{Fence: fb}); !errors.Is(err, cas.ErrFenced) {
		t.Fatalf("a commit after the one that ended the ownership: %v, want fenced", err)
	}
	if val, _ := get(t, b, P("domain.end")); dec(t, val) != 3 {
		t.Fatalf("domain.end = %d, want 3", dec(t, val))
	}
	// With no owner, a take is a claim; a release ends it.
	fa, _, err = a.Take(bg, "r2", "a")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Release(bg, fa); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.Claim(bg, "r2", "b"); err != nil {
		t.Fatalf("a claim after a release: %v", err)
	}
}

// A commit fenced on an ownership that still holds fails for what else
// failed, never as fenced: a read that changed is a conflict (the owner
// tries again), a repeated op id is that op's first outcome.
func TestOwnerFenceHeldConflict(t *testing.T) {
	a, b := store(t, 0), store(t, 1)
	f, _, err := a.Claim(bg, "r1", "a")
	if err != nil {
		t.Fatal(err)
	}
	sn, err := a.View(bg, []contract.Path{P("domain.n")})
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Release()
	commit(t, b, set("domain.n", 1), cas.Options{}) // not fenced: another writer of the path
	_, err = a.Commit(bg, sn.Version(), []contract.Path{P("domain.n")}, set("domain.n", 2), cas.Options{Fence: f})
	if !isConflict(err) || errors.Is(err, cas.ErrFenced) {
		t.Fatalf("a fenced commit whose read changed: %v, want a conflict (the fence holds)", err)
	}
	opts := cas.Options{Mode: cas.Training, Fence: f, OpID: "op-fenced", OpDigest: cas.OpDigest{1}, Result: []byte("first")}
	first := commit(t, a, set("domain.m", 1), opts)
	again, err := a.Commit(bg, 0, nil, set("domain.m", 2), opts)
	if err != nil || !again.Duplicate || again.Version != first.Version || string(again.Result) != "first" {
		t.Fatalf("a fenced op id again: %+v, %v; want the first outcome (version %d)", again, err, first.Version)
	}
	if val, _ := get(t, b, P("domain.n")); dec(t, val) != 1 {
		t.Fatalf("domain.n = %d, want 1 (the conflicting commit applied nothing)", dec(t, val))
	}
}
