package etcdstore_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/etcdstore"
)

// signalCollector gathers what a WatchSignals delivers.
type signalCollector struct {
	mu      sync.Mutex
	commits []cas.Commit
	broken  int // times etcd ended the watch
}

func (c *signalCollector) broke(error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.broken++
}

func (c *signalCollector) committed(cm cas.Commit) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.commits = append(c.commits, cm)
}

// waitFor polls until the collector holds at least n commits.
func (c *signalCollector) waitFor(t *testing.T, n int) []cas.Commit {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		c.mu.Lock()
		got := slices.Clone(c.commits)
		c.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d commits with signals delivered, want %d", len(got), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// watch starts s.WatchSignals after revision after; it stops with the test.
func watch(t *testing.T, s *etcdstore.Store, after cas.Version) *signalCollector {
	t.Helper()
	col := &signalCollector{}
	ctx, cancel := context.WithCancel(bg)
	done := make(chan error, 1)
	go func() {
		done <- s.WatchSignals(ctx, after, etcdstore.SignalWatch{Committed: col.committed, Broken: col.broke})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != context.Canceled {
			t.Errorf("WatchSignals: %v, want context.Canceled", err)
		}
	})
	return col
}

// signalCommit commits one signal (no delta) and returns its version.
func signalCommit(t testing.TB, s *etcdstore.Store, path, value string) cas.Version {
	t.Helper()
	return commit(t, s, nil, cas.Options{Signals: []cas.Write{{Path: P(path), Op: contract.OpSet, Value: []byte(value)}}}).Version
}

// checkDelivered checks that got holds exactly the commits of want, in
// version order, once each, with their signals.
func checkDelivered(t *testing.T, got []cas.Commit, want map[cas.Version]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d commits delivered, want %d", len(got), len(want))
	}
	for i, c := range got {
		if i > 0 && c.Version <= got[i-1].Version {
			t.Fatalf("commit %d delivered after %d", c.Version, got[i-1].Version)
		}
		w, ok := want[c.Version]
		if !ok {
			t.Fatalf("commit %d delivered, never made (or before the watch)", c.Version)
		}
		if len(c.Signals) != 1 || string(c.Signals[0].Path)+"="+string(c.Signals[0].Value) != w {
			t.Fatalf("commit %d: signals %v, want %s", c.Version, c.Signals, w)
		}
	}
}

// TestSignalsAcrossStores: signals committed through two stores, at
// once, reach a watcher on a third in version order, each once; a signal
// committed before the watch's revision never does. A signal rides with
// a delta in the same Txn.
func TestSignalsAcrossStores(t *testing.T) {
	a, b, c := store(t, 0), store(t, 1), store(t, 2)
	signalCommit(t, a, "domain.sig_old", `"before"`)
	from, err := c.Version(bg)
	if err != nil {
		t.Fatal(err)
	}
	col := watch(t, c, from)
	want := map[cas.Version]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, s := range []*etcdstore.Store{a, b} {
		wg.Go(func() {
			for j := range 20 {
				v := fmt.Sprintf(`"%d-%d"`, i, j)
				ver := signalCommit(t, s, "domain.sig_x", v)
				mu.Lock()
				want[ver] = "domain.sig_x=" + v
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	var d cas.Delta
	d.Set(P("domain.k"), []byte("1"))
	r := commit(t, a, d, cas.Options{Signals: []cas.Write{{Path: P("domain.sig_k"), Op: contract.OpSet, Value: []byte("true")}}})
	want[r.Version] = "domain.sig_k=true"
	checkDelivered(t, col.waitFor(t, len(want)), want)
	if v, ok := get(t, b, P("domain.k")); !ok || string(v) != "1" {
		t.Fatalf("the delta beside the signal: %q, %v", v, ok)
	}
}

// TestSignalsResumeAfterReconnect: a watcher whose member loses its
// leader (etcd ends the watch) and whose connection is cut (its member
// stops and comes back) watches again from where it stopped: it gets
// the signals committed meanwhile, once, and never again those it had
// delivered.
func TestSignalsResumeAfterReconnect(t *testing.T) {
	a, w := store(t, 0), store(t, 2)
	from, err := w.Version(bg)
	if err != nil {
		t.Fatal(err)
	}
	col := watch(t, w, from)
	want := map[cas.Version]string{}
	mark := func(v string) {
		want[signalCommit(t, a, "domain.sig_r", v)] = "domain.sig_r=" + v
	}
	for i := range 3 {
		mark(fmt.Sprintf(`"before-%d"`, i))
	}
	col.waitFor(t, 3)
	// No leader for the watcher's member: etcd ends its watch.
	cl := cluster(t)
	cl.Stop(0)
	cl.Stop(1)
	deadline := time.Now().Add(time.Minute)
	for {
		col.mu.Lock()
		broken := col.broken
		col.mu.Unlock()
		if broken > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("etcd did not end the watch of a member without a leader")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, i := range []int{0, 1} {
		if err := cl.Restart(i); err != nil {
			t.Fatal(err)
		}
	}
	mark(`"no-leader"`)
	// The watcher's member stops and comes back: its client reconnects.
	cl.Stop(2)
	mark(`"during"`)
	if err := cl.Restart(2); err != nil {
		t.Fatal(err)
	}
	mark(`"after"`)
	checkDelivered(t, col.waitFor(t, len(want)), want)
	time.Sleep(200 * time.Millisecond) // a replay would arrive by now
	col.mu.Lock()
	n := len(col.commits)
	col.mu.Unlock()
	if n != len(want) {
		t.Fatalf("%d commits delivered after the reconnect, want %d", n, len(want))
	}
}

// TestSignalsCountInLimits: a commit whose signals exceed the cluster's
// request bytes is refused before it is sent, like a delta.
func TestSignalsCountInLimits(t *testing.T) {
	s, err := etcdstore.New(etcdstore.Config{Client: client(t), Prefix: "t/" + t.Name() + "/", MaxRequestBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 5000)
	for i := range big {
		big[i] = 'a'
	}
	_, err = s.Commit(bg, 0, nil, nil, cas.Options{Signals: []cas.Write{{Path: P("domain.sig_big"), Op: contract.OpSet, Value: big}}})
	var le *etcdstore.LimitError
	if !errors.As(err, &le) {
		t.Fatalf("a commit with a 5000-byte signal under a 4096-byte limit: %v, want a LimitError", err)
	}
}
