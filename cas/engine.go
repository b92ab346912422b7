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
