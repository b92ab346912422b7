package wasm

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"testing"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
)

// Two calls interleave as two async JavaScript processes do across an
// await: both read the counter, one commits, the other's commit
// conflicts and it runs again on the new snapshot. No increment is lost.
func TestInterleavedCallsConflictAndRetry(t *testing.T) {
	r := newRuntime(t, Config{})
	read := make(chan struct{})    // the slow call has read
	proceed := make(chan struct{}) // the fast call has committed
	register(t, r, "counter.add", counterDecl, counterAdd(func(_ context.Context, c *Ctx) error {
		if string(c.Args()) == `{"slow":true}` && c.Attempt() == 1 {
			close(read)
			<-proceed
		}
		return nil
	}))
	ctx := context.Background()
	var slow Reply
	var slowErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		slow, slowErr = r.Exec(ctx, Request{Process: "counter.add", Args: json.RawMessage(`{"slow":true}`)})
	})
	<-read
	fast, err := r.Exec(ctx, Request{Process: "counter.add"})
	close(proceed)
	wg.Wait()
	if err != nil || slowErr != nil {
		t.Fatal(err, slowErr)
	}
	if fast.Attempts != 1 || fast.Version != 1 {
		t.Fatalf("fast %+v", fast)
	}
	if slow.Attempts != 2 || slow.Conflicts != 1 || slow.Version != 2 || string(slow.Result) != "2" {
		t.Fatalf("slow %+v: want a conflict, then a commit of 2", slow)
	}
	if got := get(t, r, "domain.counter"); got != "2" {
		t.Fatalf("counter %s", got)
	}
}

// A call that keeps losing takes a VIP ticket after VIPAfter conflicts,
// and the attempt under it commits: the server's fairness, in a page.
func TestLoserTakesAVIPTicket(t *testing.T) {
	r := newRuntime(t, Config{})
	register(t, r, "counter.add", counterDecl, counterAdd(nil))
	register(t, r, "loser", counterDecl, counterAdd(func(ctx context.Context, c *Ctx) error {
		if c.Attempt() <= cas.DefaultVIPAfter {
			_, err := r.Exec(ctx, Request{Process: "counter.add"}) // commits between its read and its commit
			return err
		}
		return nil
	}))
	rep, err := r.Exec(context.Background(), Request{Process: "loser"})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.VIP || rep.Conflicts != cas.DefaultVIPAfter || rep.Attempts != cas.DefaultVIPAfter+1 {
		t.Fatalf("%+v: want %d conflicts, then a commit under a ticket", rep, cas.DefaultVIPAfter)
	}
	if got := get(t, r, "domain.counter"); got != strconv.Itoa(cas.DefaultVIPAfter+1) {
		t.Fatalf("counter %s", got)
	}
}

// Many calls on one key from many goroutines: every increment lands once.
func TestHotKeyLosesNothing(t *testing.T) {
	r := newRuntime(t, Config{})
	register(t, r, "counter.add", counterDecl, counterAdd(func(context.Context, *Ctx) error {
		return nil
	}))
	const g, n = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, g*n)
	for range g {
		wg.Go(func() {
			for range n {
				if _, err := r.Exec(context.Background(), Request{Process: "counter.add"}); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := get(t, r, "domain.counter"); got != strconv.Itoa(g*n) {
		t.Fatalf("counter %s, want %d", got, g*n)
	}
}

// The commit validates what the process read, not every declared input:
// two calls on different keys under one input do not conflict (the worker
// SDK's reads, reported the same way).
func TestReadSetIsWhatWasRead(t *testing.T) {
	r := newRuntime(t, Config{})
	read := make(chan struct{})
	proceed := make(chan struct{})
	decl := Decl{Inputs: []string{"domain.counters"}, Outputs: []string{"domain.counters"}}
	register(t, r, "bump", decl, func(_ context.Context, c *Ctx) (json.RawMessage, error) {
		var a struct {
			Key  string
			Slow bool
		}
		json.Unmarshal(c.Args(), &a)
		p := "domain.counters." + a.Key
		if _, _, err := c.Get(p); err != nil {
			return nil, err
		}
		if a.Slow && c.Attempt() == 1 {
			close(read)
			<-proceed
		}
		return nil, c.Set(p, json.RawMessage("1"))
	})
	var slow Reply
	var wg sync.WaitGroup
	wg.Go(func() {
		slow, _ = r.Exec(context.Background(), Request{Process: "bump", Args: json.RawMessage(`{"key":"a","slow":true}`)})
	})
	<-read
	if _, err := r.Exec(context.Background(), Request{Process: "bump", Args: json.RawMessage(`{"key":"b"}`)}); err != nil {
		t.Fatal(err)
	}
	close(proceed)
	wg.Wait()
	if slow.Attempts != 1 || slow.Conflicts != 0 {
		t.Fatalf("slow %+v: a write to domain.counters.b conflicted with a read of domain.counters.a", slow)
	}
}

// In strict mode any commit after the snapshot conflicts, and the strict
// arbiter is wired: the runner accepts it.
func TestStrictMode(t *testing.T) {
	r := newRuntime(t, Config{Mode: cas.Strict})
	register(t, r, "counter.add", counterDecl, counterAdd(nil))
	rep, err := r.Exec(context.Background(), Request{Process: "counter.add"})
	if err != nil || rep.Mode != "strict" {
		t.Fatalf("%+v %v", rep, err)
	}
	if _, err := New(Config{Mode: cas.Training + 1}); code(err) != "bad_request" {
		t.Fatalf("an unknown mode: %v", err)
	}
}

// Export and Restore carry a Context to another Runtime: values,
// versions and op ids.
func TestExportRestore(t *testing.T) {
	r := newRuntime(t, Config{})
	register(t, r, "counter.add", counterDecl, counterAdd(nil))
	first, err := r.Exec(context.Background(), Request{Process: "counter.add", OpID: "op-1"})
	if err != nil {
		t.Fatal(err)
	}
	r.Exec(context.Background(), Request{Process: "counter.add"})
	st := r.Export()
	r2 := newRuntime(t, Config{Restore: &st})
	register(t, r2, "counter.add", counterDecl, counterAdd(nil))
	if got := get(t, r2, "domain.counter"); got != "2" || r2.Version() != 2 {
		t.Fatalf("restored counter %s at %d", got, r2.Version())
	}
	again, err := r2.Exec(context.Background(), Request{Process: "counter.add", OpID: "op-1"})
	if err != nil || !again.Duplicate || again.Version != first.Version {
		t.Fatalf("op-1 after restore: %+v %v", again, err)
	}
	bad := cas.State{Version: 1, Entries: []cas.Entry{{Path: contract.Path("domain.x"), Value: []byte("1"), Version: 2}}}
	if _, err := New(Config{Restore: &bad}); code(err) != "bad_request" {
		t.Fatalf("an inconsistent state: %v", err)
	}
}
