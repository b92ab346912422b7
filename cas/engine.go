package cas

import (
	"context"
	"slices"
	"strings"

	"github.com/theus-run/theus/contract"
)

// Engine is a store that a Runner drives instead of a Store: one that
// lives outside this process (etcdstore keeps the Context in etcd, shared
// by several supervisors). Its snapshots are frozen: a View reads, at one
// version, every value under the inputs an invocation declares, and
// serves the run from that copy (one round trip per attempt). Commit and
// LookupOp mean what Store.Commit and Store.LookupOp mean; an Engine's
// errors may also be its own (an unreachable cluster), never a wrong
// success.
type Engine interface {
	View(ctx context.Context, inputs []contract.Path) (*Snapshot, error)
	Commit(ctx context.Context, snap Version, reads []contract.Path, delta Delta, opts Options) (Result, error)
	LookupOp(ctx context.Context, id string, d OpDigest) (Version, []byte, bool, error)
}

// Frozen returns a snapshot at version v that reads entries and nothing
// else: a path outside them holds no value. It holds no store; Renew on
// it panics. The entries are sorted here; the caller must not keep them.
func Frozen(v Version, entries []Entry) *Snapshot {
	slices.SortFunc(entries, func(a, b Entry) int { return strings.Compare(string(a.Path), string(b.Path)) })
	return &Snapshot{v: v, frozen: entries}
}

// FrozenHeld is Frozen, with release called by the snapshot's first
// Release: an Engine that must know which views are still read (to free
// what only they can see) learns here when one no longer is.
func FrozenHeld(v Version, entries []Entry, release func()) *Snapshot {
	sn := Frozen(v, entries)
	sn.release = release
	return sn
}

// frozenGet is Get on a Frozen snapshot.
func (sn *Snapshot) frozenGet(p contract.Path) (Entry, bool) {
	i, ok := slices.BinarySearchFunc(sn.frozen, p, func(e Entry, p contract.Path) int { return strings.Compare(string(e.Path), string(p)) })
	if !ok {
		return Entry{}, false
	}
	return sn.frozen[i], true
}

// frozenSubtree is Subtree on a Frozen snapshot.
func (sn *Snapshot) frozenSubtree(p contract.Path) []Entry {
	i, _ := slices.BinarySearchFunc(sn.frozen, p, func(e Entry, p contract.Path) int { return strings.Compare(string(e.Path), string(p)) })
	var out []Entry
	for _, e := range sn.frozen[i:] {
		if !strings.HasPrefix(string(e.Path), string(p)) {
			break // sorted: nothing further starts with p
		}
		if p.Covers(e.Path) {
			out = append(out, e)
		}
	}
	return out
}

// Tickets is an Engine that grants VIP tickets every process sharing it
// honours (etcdstore: keys with a lease, so a dead holder's ticket
// expires). A Runner whose Engine implements it takes tickets as it would
// from a vip.Arbiter: after VIPAfter conflicts, or at once on keys that
// are Contended, and passes the ticket it holds in Options.Held. While a
// ticket is held on some keys, a commit that writes at, above or below
// one of them, by anyone but the holder, fails with a conflict; so the
// holder's next attempt cannot lose. Tickets are taken in Smart mode only.
type Tickets interface {
	// Acquire waits until no other ticket overlaps keys and takes one.
	Acquire(ctx context.Context, owner string, keys []string) (EngineTicket, error)
	// Heat notes that a commit on keys lost; Contended reports whether
	// keys lost a commit lately (a first attempt on them then queues for
	// a ticket instead of running optimistically).
	Heat(keys []string)
	Contended(keys []string) bool
}

// EngineTicket is a ticket a Tickets engine granted.
type EngineTicket interface {
	Valid() bool // held: not released, its lease not lost
	Release()    // idempotent; the ticket may also end with its holder's commit
}
