package durable

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
)

// told is a Waiter that records what it was told, and checks what the
// journal says then.
type told struct {
	j     *Journal
	v     cas.Version
	calls atomic.Int32
	err   error
	early atomic.Bool // told nil while Durable() < v
	done  chan struct{}
}

func newTold(j *Journal, v cas.Version) *told {
	return &told{j: j, v: v, done: make(chan struct{})}
}

func (w *told) OnDisk(err error) {
	if w.calls.Add(1) != 1 {
		return // the test fails on calls > 1
	}
	if err == nil && w.j.Durable() < w.v {
		w.early.Store(true)
	}
	w.err = err
	close(w.done)
}

func (w *told) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-w.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("version %d: OnDisk never called", w.v)
	}
	return w.err
}

// commitNoWait commits one set and returns its version, without waiting
// for the disk.
func (o opened) commitNoWait(t *testing.T, path string, val string) cas.Version {
	t.Helper()
	var d cas.Delta
	d.Set(contract.Path(path), []byte(val))
	sn := o.s.Snapshot()
	defer sn.Release()
	r, err := o.s.Commit(context.Background(), sn.Version(), nil, d, cas.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return r.Version
}

// TestNotify: every waiter is told once, after its version is on disk,
// with no goroutine of the caller's waiting; commits and waiters from
// many goroutines at once.
func TestNotify(t *testing.T) {
	o := openStore(t, Config{Dir: t.TempDir()})
	defer o.j.Close()
	if done, err := o.j.Notify(0, newTold(o.j, 0)); !done || err != nil {
		t.Fatalf("Notify of a version on disk: done %v, %v; want done at once", done, err)
	}
	var all []*told
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			for k := range 30 {
				v := o.commitNoWait(t, "domain.k"+strconv.Itoa(i), strconv.Itoa(k))
				w := newTold(o.j, v)
				done, err := o.j.Notify(v, w)
				if done {
					if err != nil || o.j.Durable() < v {
						t.Errorf("Notify(%d) done at once with %v, durable %d", v, err, o.j.Durable())
					}
					continue
				}
				mu.Lock()
				all = append(all, w)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(all) == 0 {
		t.Fatal("every version was on disk before its Notify: nothing waited")
	}
	for _, w := range all {
		if err := w.wait(t); err != nil {
			t.Fatalf("version %d: %v", w.v, err)
		}
		if w.early.Load() {
			t.Fatalf("version %d: told before it was on disk", w.v)
		}
	}
	o.j.Close()
	for _, w := range all {
		if n := w.calls.Load(); n != 1 {
			t.Fatalf("version %d: told %d times", w.v, n)
		}
	}
	t.Logf("%d of %d waited", len(all), 16*30)
}

// TestNotifyFailure: a failed batch tells its waiters, and those of later
// versions, that they will never be on disk; Notify after it says so at
// once.
func TestNotifyFailure(t *testing.T) {
	var fail atomic.Bool
	release := make(chan struct{})
	o := openStore(t, Config{Dir: t.TempDir(), Fault: func(p string) error {
		if fail.Load() && p == "before-write" {
			<-release // hold the batch until both waiters are registered
			return errors.New("injected")
		}
		return nil
	}})
	defer o.j.Close()
	fail.Store(true)
	v1 := o.commitNoWait(t, "domain.a", "1")
	w1 := newTold(o.j, v1)
	w2 := newTold(o.j, v1+1) // committed after the failure: never written
	for _, w := range []*told{w1, w2} {
		if done, err := o.j.Notify(w.v, w); done {
			t.Fatalf("Notify(%d) done at once (%v) with the batch held", w.v, err)
		}
	}
	close(release)
	for _, w := range []*told{w1, w2} {
		if err := w.wait(t); !errors.Is(err, ErrFailed) {
			t.Fatalf("version %d after a failed batch: %v, want ErrFailed", w.v, err)
		}
	}
	if done, err := o.j.Notify(v1, newTold(o.j, v1)); !done || !errors.Is(err, ErrFailed) {
		t.Fatalf("Notify after the failure: done %v, %v; want done, ErrFailed", done, err)
	}
}

// TestNotifyClose: in Async mode nothing waits; at Close a waiter for a
// version never committed hears ErrClosed before Close returns, as does
// a Notify after Close.
func TestNotifyClose(t *testing.T) {
	o := openStore(t, Config{Dir: t.TempDir(), Mode: Async, Interval: time.Hour})
	if done, err := o.j.Notify(5, newTold(o.j, 5)); !done || err != nil {
		t.Fatalf("Notify in Async mode: done %v, %v; want done at once, as Wait", done, err)
	}
	o.j.Close()

	dir := t.TempDir()
	o = openStore(t, Config{Dir: dir})
	v := o.commit(t, "op-1", func(d *cas.Delta) { d.Set("domain.a", []byte("1")) })
	never := newTold(o.j, v+1)
	if done, err := o.j.Notify(v+1, never); done {
		t.Fatalf("Notify of a version not committed: done at once (%v)", err)
	}
	o.j.Close()
	select {
	case <-never.done:
	default:
		t.Fatal("Close returned before telling a waiter")
	}
	if !errors.Is(never.err, ErrClosed) {
		t.Fatalf("waiter at Close: %v, want ErrClosed", never.err)
	}
	if done, err := o.j.Notify(v+1, newTold(o.j, v+1)); !done || !errors.Is(err, ErrClosed) {
		t.Fatalf("Notify after Close: done %v, %v; want done, ErrClosed", done, err)
	}
}

// laterWaiter logs its OnDisk and Later calls.
type laterWaiter struct {
	v   cas.Version
	mu  *sync.Mutex
	log *[]string
}

func (w laterWaiter) OnDisk(err error) {
	w.mu.Lock()
	*w.log = append(*w.log, "disk")
	w.mu.Unlock()
}

func (w laterWaiter) Later() {
	w.mu.Lock()
	*w.log = append(*w.log, "later")
	w.mu.Unlock()
}

// TestNotifyLater: the waiters of one batch are each told OnDisk, then
// each of them that is a Later has Later called: the replies of a batch
// are queued before any is written.
func TestNotifyLater(t *testing.T) {
	var held atomic.Bool
	entered, release := make(chan struct{}), make(chan struct{})
	o := openStore(t, Config{Dir: t.TempDir(), Fault: func(p string) error {
		if held.Load() && p == "before-write" {
			held.Store(false)
			close(entered)
			<-release
		}
		return nil
	}})
	defer o.j.Close()
	held.Store(true)
	o.commitNoWait(t, "domain.plug", "1")
	<-entered // its batch is held: the commits below queue behind it, for one batch
	var mu sync.Mutex
	var log []string
	const n = 8
	vs := make([]cas.Version, n)
	for i := range vs {
		vs[i] = o.commitNoWait(t, "domain.k"+strconv.Itoa(i), "1")
	}
	for _, v := range vs {
		if done, err := o.j.Notify(v, laterWaiter{v, &mu, &log}); done {
			t.Fatalf("Notify(%d) done at once (%v) with the disk held", v, err)
		}
	}
	last := newTold(o.j, vs[n-1])
	if done, _ := o.j.Notify(vs[n-1], last); done {
		t.Fatal("done at once with the disk held")
	}
	close(release)
	if err := last.wait(t); err != nil {
		t.Fatal(err)
	}
	o.j.Close() // the notifier has returned: every call is logged
	mu.Lock()
	defer mu.Unlock()
	want := slices.Concat(slices.Repeat([]string{"disk"}, n), slices.Repeat([]string{"later"}, n))
	if !slices.Equal(log, want) {
		t.Fatalf("calls %q, want every OnDisk of the batch before its Laters", log)
	}
}
