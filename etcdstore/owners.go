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

// Fence is a cas.Fence: the commit applies only while Unit's owner key
// is the one created at revision Rev on lease Lease (another Store's
// claim or take changes one or the other). With End, the commit also
// deletes the key: the ownership ends with it.
type Fence struct {
	Unit  string
	Rev   int64
	Lease int64
	End   bool
}

func (f Fence) String() string {
	return fmt.Sprintf("owner of %s created at revision %d on lease %x", f.Unit, f.Rev, f.Lease)
}

// FencedError is a commit refused because its Fence no longer held:
// Unit's owner key is now Now (zero: none). Nothing was applied. It
// errors.Is cas.ErrFenced, and is a fenced error on the wire.
type FencedError struct {
	Fence Fence
	Now   Fence
}

func (e *FencedError) Error() string {
	if e.Now.Rev == 0 {
		return fmt.Sprintf("etcdstore: fenced: %s has no owner now", e.Fence.Unit)
	}
	return fmt.Sprintf("etcdstore: fenced: the %s no longer owns it (%s does)", e.Fence, e.Now)
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
// was lost) is this Store's. Another's is ErrOwned. holder is written
// as the key's value, for OwnerWatch.
func (s *Store) Claim(ctx context.Context, unit, holder string) (Fence, <-chan struct{}, error) {
	return s.own(ctx, unit, holder, false)
}

// Take makes this Store unit's owner even when another Store owns it:
// that one's fenced commits are refused from then on. A client's request
// about a run that another supervisor runs (its cancel) takes it.
func (s *Store) Take(ctx context.Context, unit, holder string) (Fence, <-chan struct{}, error) {
	return s.own(ctx, unit, holder, true)
}

// takeTries bounds how often Take reads the owner key again because it
// changed between its read and its Txn.
const takeTries = 16

func (s *Store) own(ctx context.Context, unit, holder string, take bool) (Fence, <-chan struct{}, error) {
	sess, err := s.session()
	if err != nil {
		return Fence{}, nil, err
	}
	lease := int64(sess.Lease())
	key := s.ownerKey(unit)
	var seen int64 // the key's mod revision as read (0: absent)
	for range takeTries {
		r, err := s.c.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", seen)).
			Then(clientv3.OpPut(key, holder, clientv3.WithLease(clientv3.LeaseID(lease)))).
			Else(clientv3.OpGet(key)).Commit()
		if err != nil {
			return Fence{}, nil, &UnavailableError{Op: "claim " + unit, Err: err}
		}
		if r.Succeeded {
			// A put on a key that exists keeps its create revision.
			g, err := s.c.Get(ctx, key, clientv3.WithRev(r.Header.Revision), clientv3.WithKeysOnly())
			if err != nil || len(g.Kvs) == 0 {
				return Fence{}, nil, &UnavailableError{Op: "claim " + unit, Err: fmt.Errorf("reading the key back: %v", err)}
			}
			return Fence{Unit: unit, Rev: g.Kvs[0].CreateRevision, Lease: lease}, sess.Done(), nil
		}
		kvs := r.Responses[0].GetResponseRange().Kvs
		if len(kvs) == 0 {
			seen = 0 // deleted meanwhile
			continue
		}
		if kvs[0].Lease == lease {
			return Fence{Unit: unit, Rev: kvs[0].CreateRevision, Lease: lease}, sess.Done(), nil
		}
		if !take {
			return Fence{}, nil, ErrOwned
		}
		seen = kvs[0].ModRevision
	}
	return Fence{}, nil, fmt.Errorf("etcdstore: take %s: its owner changed %d times in a row", unit, takeTries)
}

// Release deletes f's owner key if it is still f's: a unit that ended
// without a commit that ended its ownership (or one that stopped here).
func (s *Store) Release(ctx context.Context, f Fence) error {
	key := s.ownerKey(f.Unit)
	_, err := s.c.Txn(ctx).If(f.holds(s)...).Then(clientv3.OpDelete(key)).Commit()
	if err != nil {
		return &UnavailableError{Op: "release " + f.Unit, Err: err}
	}
	return nil
}

// holds are the compares under which f holds.
func (f Fence) holds(s *Store) []clientv3.Cmp {
	key := s.ownerKey(f.Unit)
	return []clientv3.Cmp{
		clientv3.Compare(clientv3.CreateRevision(key), "=", f.Rev),
		clientv3.Compare(clientv3.LeaseValue(key), "=", f.Lease),
	}
}

// OwnerWatch tells WatchOwners's caller of owners that went away.
type OwnerWatch struct {
	// Changed receives each unit whose owner key changed: holder is the
	// new owner's (Claim's, Take's), or "" when the key was deleted (its
	// owner ended it, released it, or died: its lease expired).
	Changed func(unit, holder string)
	// Rescan is called when deletes may have been missed (etcd compacted
	// the history while the watch was away): the caller looks at every
	// unit.
	Rescan func()
	// Broken, when set, is told each time etcd ended the watch.
	Broken func(err error)
}

// WatchOwners reports every owner key put or deleted after revision
// after, by any Store of the prefix, until ctx ends (it then returns ctx's error).
// A watch that etcd ends is watched again from where it stopped.
func (s *Store) WatchOwners(ctx context.Context, after cas.Version, w OwnerWatch) error {
	prefix := s.prefix + "r/"
	return s.keepWatching(ctx, after, w.Broken, func(ctx context.Context, next *int64) error {
		for resp := range s.c.Watch(ctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(*next)) {
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
				holder := ""
				if ev.Type == clientv3.EventTypePut {
					holder = string(ev.Kv.Value)
				}
				w.Changed(strings.TrimPrefix(string(ev.Kv.Key), prefix), holder)
			}
		}
		return errors.New("etcdstore: owners: etcd ended the watch")
	})
}
