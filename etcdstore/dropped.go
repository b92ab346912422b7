package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
)

// views counts a Store's live views by revision and holds the values
// replaced or deleted that one of them may still read: what cas.Store
// does with its snapshots for Config.Dropped, for views that are Frozen
// copies of etcd. A view whose read has not returned yet counts at
// revision 0 (it may be served at any revision): it holds everything.
type views struct {
	mu      sync.Mutex
	live    map[int64]int // revision → live views
	pending []drop
}

// drop is a value replaced or deleted at revision rev, waiting until no
// live view is older than rev.
type drop struct {
	rev   int64
	path  contract.Path
	value []byte
	to    func(contract.Path, []byte)
}

// open counts a view whose read is about to be sent; opened or failed
// ends that count.
func (v *views) open() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.live == nil {
		v.live = map[int64]int{}
	}
	v.live[0]++
}

// opened moves a view whose read returned at rev from revision 0 to rev;
// the release it returns ends it.
func (v *views) opened(rev int64) func() {
	v.mu.Lock()
	v.endLocked(0)
	v.live[rev]++
	ready := v.readyLocked()
	v.mu.Unlock()
	deliver(ready)
	return func() { v.close(rev) }
}

// failed ends a view whose read failed.
func (v *views) failed() { v.close(0) }

func (v *views) close(rev int64) {
	v.mu.Lock()
	v.endLocked(rev)
	ready := v.readyLocked()
	v.mu.Unlock()
	deliver(ready)
}

func (v *views) endLocked(rev int64) {
	if v.live[rev]--; v.live[rev] == 0 {
		delete(v.live, rev)
	}
}

// dropped holds d until no live view is older than its revision.
func (v *views) dropped(d drop) {
	v.mu.Lock()
	v.pending = append(v.pending, d)
	ready := v.readyLocked()
	v.mu.Unlock()
	deliver(ready)
}

// readyLocked takes out of pending the drops no live view can read.
func (v *views) readyLocked() []drop {
	if len(v.pending) == 0 {
		return nil
	}
	oldest := int64(-1)
	for rev := range v.live {
		if oldest < 0 || rev < oldest {
			oldest = rev
		}
	}
	var ready []drop
	keep := v.pending[:0]
	for _, d := range v.pending {
		if oldest < 0 || d.rev <= oldest {
			ready = append(ready, d)
		} else {
			keep = append(keep, d)
		}
	}
	clear(v.pending[len(keep):])
	v.pending = keep
	return ready
}

func deliver(ds []drop) {
	for _, d := range ds {
		d.to(d.path, d.value)
	}
}

// Pending reports how many replaced values wait for a live view to end
// (tests poll it).
func (s *Store) Pending() int {
	s.views.mu.Lock()
	defer s.views.mu.Unlock()
	return len(s.views.pending)
}

// DropWatch tells WatchDropped what to hand on.
type DropWatch struct {
	// Select picks, by path and old value, the values to hand to Dropped
	// (a HEAVY arena tensor of this host); the others are ignored.
	Select func(p contract.Path, value []byte) bool
	// Dropped receives each selected value once it was replaced or
	// deleted, by any Store on the prefix, and no view of this Store that
	// could read it is live: the value's memory may be freed. It runs on
	// the goroutine that ended the last such view, or on the watch's.
	Dropped func(p contract.Path, value []byte)
	// Lost and Broken mean what they mean in SignalWatch: values replaced
	// in the revisions from..to were not seen (etcd compacted them), and
	// etcd ended the watch, which is watched again.
	Lost   func(from, to cas.Version)
	Broken func(err error)
}

// WatchDropped watches every value on the prefix after revision after,
// and hands each old value that a commit replaced or deleted and that
// w.Select picks to w.Dropped, once no view of this Store older than the
// commit is live, until ctx ends (it then returns ctx's error). It is
// cas.Config.Dropped for a Context that several Stores share: whichever
// Store replaced the value, the Store that watches frees it. A watch that
// etcd ends is watched again from the revision after the last one seen.
func (s *Store) WatchDropped(ctx context.Context, after cas.Version, w DropWatch) error {
	return s.keepWatching(ctx, after, w.Broken, func(ctx context.Context, next *int64) error {
		return s.watchValues(ctx, next, w)
	})
}

// watchValues watches the values from *next until etcd ends the watch,
// moving *next past each revision seen.
func (s *Store) watchValues(ctx context.Context, next *int64, w DropWatch) error {
	for resp := range s.c.Watch(ctx, s.prefix+"v/", clientv3.WithPrefix(), clientv3.WithPrevKV(), clientv3.WithRev(*next)) {
		if resp.CompactRevision > *next {
			if w.Lost != nil {
				w.Lost(cas.Version(*next), cas.Version(resp.CompactRevision))
			}
			*next = resp.CompactRevision
			return fmt.Errorf("etcdstore: values: history compacted at revision %d", resp.CompactRevision)
		}
		if err := resp.Err(); err != nil {
			return fmt.Errorf("etcdstore: values: %w", err)
		}
		last := *next - 1
		for _, ev := range resp.Events {
			rev := ev.Kv.ModRevision
			if rev < *next {
				continue
			}
			last = max(last, rev)
			if ev.PrevKv == nil {
				continue // a new value replaced nothing
			}
			p := s.pathOf(ev.PrevKv.Key)
			if w.Select(p, ev.PrevKv.Value) {
				s.views.dropped(drop{rev: rev, path: p, value: ev.PrevKv.Value, to: w.Dropped})
			}
		}
		*next = last + 1
	}
	return errors.New("etcdstore: values: etcd ended the watch")
}
