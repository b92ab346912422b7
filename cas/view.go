package cas

import (
	"context"
	"slices"
	"sync"

	"github.com/theus-run/theus/contract"
)

// View is what an in-process process sees: a snapshot restricted to its
// contract's inputs. Values it returns are copies the process may keep.
type View struct {
	snap *Snapshot
	c    contract.Contract
	take uint64 // snap.takes when the view was made: Call reuses snapshots
}

// viewSnaps are the Snapshots of Call's attempts, reused across calls: the
// largest of a one-path call's allocations (80 of 192 bytes), which on a
// hot key run by more goroutines than cores is collection work the
// goroutines pay themselves. A View made before its snapshot was taken
// again (kept past its call) panics, as the released snapshot did.
var viewSnaps = sync.Pool{New: func() any { return new(Snapshot) }}

// check panics if the view's snapshot was released or taken again since
// the view was made.
func (v View) check() {
	if v.snap.takes != v.take {
		panic("cas: use of a View after its call returned")
	}
	v.snap.check()
}

// Version is the version the view reads.
func (v View) Version() Version {
	v.check()
	return v.snap.Version()
}

// Get returns a copy of the value at p, false if there is none, or a
// *contract.Violation if the contract does not let the process read p.
func (v View) Get(p contract.Path) ([]byte, bool, error) {
	v.check()
	if err := v.c.CheckRead(p); err != nil {
		return nil, false, err
	}
	e, ok := v.snap.Get(p)
	if !ok {
		return nil, false, nil
	}
	return slices.Clone(e.Value), true, nil
}

// Subtree returns copies of every value at or under p, sorted by path.
func (v View) Subtree(p contract.Path) ([]Entry, error) {
	v.check()
	if err := v.c.CheckRead(p); err != nil {
		return nil, err
	}
	es := v.snap.Subtree(p)
	for i := range es {
		es[i].Value = slices.Clone(es[i].Value)
	}
	return es, nil
}

// Func is a process written in Go and run in this OS process. It must not
// keep its View past its return: Call reuses the snapshot under it, and a
// View kept that way panics when used. Used from another goroutine while
// a later call takes that snapshot, it is a data race instead, as any use
// of a Snapshot during its Release is: the check reads the snapshot's
// plain fields.
type Func func(ctx context.Context, in View) (Outcome, error)

// Call runs f as a process under contract c until it commits (see
// Execute). f may be called several times.
func (r *Runner) Call(ctx context.Context, c contract.Contract, opID string, f Func) (Report, error) {
	return r.Execute(ctx, Invocation{Contract: c, OpID: opID, Owner: "local", view: f})
}
