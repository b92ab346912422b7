package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/protocol"
)

// A unit (a workflow run, or a state machine with its entry runs) has at
// most one owner among the Stores of a prefix: the Store whose key
// P r/<unit> exists, on that Store's lease (the one its VIP tickets hang
// on). The owner fences each commit it makes for the unit with the key's
// create revision, so that an owner that lost its lease (paused, cut off)
// can never commit for the unit once another claimed it.

func (s *Store) ownerKey(unit string) string { return s.prefix + "r/" + unit }

// ErrOwned is Claim's answer when another Store owns the unit.
var ErrOwned = errors.New("etcdstore: owned by another store")

// Fence is a cas.Fence: the commit applies only while Unit's owner key is
// the one created at revision Rev (0: while there is none). With End, the
// commit also deletes the key: the ownership ends with it.
type Fence struct {
	Unit string
	Rev  int64
	End  bool
}

func (f Fence) String() string {
	return fmt.Sprintf("owner of %s created at revision %d", f.Unit, f.Rev)
}

// FencedError is a commit refused because its Fence no longer held:
// Unit's owner key is now the one created at Current (0: none). Nothing
// was applied. It errors.Is cas.ErrFenced, and is a fenced error on the
// wire.
type FencedError struct {
	Fence   Fence
	Current int64
}

func (e *FencedError) Error() string {
	return fmt.Sprintf("etcdstore: fenced: %s owns %s no longer (its owner key is at revision %d now)", e.Fence, e.Fence.Unit, e.Current)
}

// Is makes errors.Is(err, cas.ErrFenced) true.
func (e *FencedError) Is(target error) bool { return target == cas.ErrFenced }

// As makes errors.As(err, **protocol.Error) give a fenced.
func (e *FencedError) As(target any) bool {
	if pe, ok := target.(**protocol.Error); ok {
		*pe = &protocol.Error{Code: protocol.CodeFenced, Message: e.Error()}
		return true
	}
	return false
}

// Claim makes this Store unit's owner, if it has none, and returns the
// fence of that ownership and a channel closed when the lease it is on
// is lost (the ownership may have ended: another may claim it). A unit
// whose owner key is already on this Store's lease (a claim whose answer
// was lost) is this Store's. Another's is ErrOwned.
func (s *Store) Claim(ctx context.Context, unit, holder string) (Fence, <-chan struct{}, error) {
	sess, err := s.session()
	if err != nil {
		return Fence{}, nil, err
	}
	key := s.ownerKey(unit)
	r, err := s.c.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, holder, clientv3.WithLease(sess.Lease()))).
		Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		return Fence{}, nil, &UnavailableError{Op: "claim " + unit, Err: err}
	}
	if r.Succeeded {
		return Fence{Unit: unit, Rev: r.Header.Revision}, sess.Done(), nil
	}
	kvs := r.Responses[0].GetResponseRange().Kvs
	if len(kvs) > 0 && kvs[0].Lease == int64(sess.Lease()) {
		return Fence{Unit: unit, Rev: kvs[0].CreateRevision}, sess.Done(), nil
	}
	return Fence{}, nil, ErrOwned
}

// Seize returns a fence that holds while unit's owner is the one it has
// now (or while it has none) and that ends that ownership with the
// commit that carries it: a Store that ends a unit it does not own (a
// run cancelled through another supervisor) commits the end with it, and
// the owner's next commit is fenced.
func (s *Store) Seize(ctx context.Context, unit string) (Fence, error) {
	r, err := s.c.Get(ctx, s.ownerKey(unit), clientv3.WithKeysOnly())
	if err != nil {
		return Fence{}, &UnavailableError{Op: "owner of " + unit, Err: err}
	}
	f := Fence{Unit: unit, End: true}
	if len(r.Kvs) > 0 {
		f.Rev = r.Kvs[0].CreateRevision
	}
	return f, nil
}

// Release deletes f's owner key if it is still f's: a unit that ended
// without a commit that ended its ownership (or one that stopped here).
func (s *Store) Release(ctx context.Context, f Fence) error {
	key := s.ownerKey(f.Unit)
	_, err := s.c.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", f.Rev)).Then(clientv3.OpDelete(key)).Commit()
	if err != nil {
		return &UnavailableError{Op: "release " + f.Unit, Err: err}
	}
	return nil
}

// OwnerWatch tells WatchOwners's caller of owners that went away.
type OwnerWatch struct {
	// Gone receives each unit whose owner key was deleted: its owner
	// ended it, released it, or died (its lease expired).
	Gone func(unit string)
	// Rescan is called when deletes may have been missed (etcd compacted
	// the history while the watch was away): the caller looks at every
	// unit.
	Rescan func()
	// Broken, when set, is told each time etcd ended the watch.
	Broken func(err error)
}

// WatchOwners reports every owner key deleted after revision after, by
// any Store of the prefix, until ctx ends (it then returns ctx's error).
// A watch that etcd ends is watched again from where it stopped.
func (s *Store) WatchOwners(ctx context.Context, after cas.Version, w OwnerWatch) error {
	prefix := s.prefix + "r/"
	return s.keepWatching(ctx, after, w.Broken, func(ctx context.Context, next *int64) error {
		for resp := range s.c.Watch(ctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(*next), clientv3.WithFilterPut()) {
			if resp.CompactRevision > *next {
				*next = resp.CompactRevision
				w.Rescan()
				return fmt.Errorf("etcdstore: owners: history compacted at revision %d", resp.CompactRevision)
			}
			if err := resp.Err(); err != nil {
				return fmt.Errorf("etcdstore: owners: %w", err)
			}
			from := *next // a lease's keys all go in one revision: deliver each
			for _, ev := range resp.Events {
				if ev.Kv.ModRevision < from {
					continue
				}
				*next = max(*next, ev.Kv.ModRevision+1)
				w.Gone(strings.TrimPrefix(string(ev.Kv.Key), prefix))
			}
		}
		return errors.New("etcdstore: owners: etcd ended the watch")
	})
}
