package cas

import (
	"context"
	"slices"

	"github.com/theus-run/theus/contract"
)

// View is what an in-process process sees: a snapshot restricted to its
// contract's inputs. Values it returns are copies the process may keep.
type View struct {
	snap *Snapshot
	c    contract.Contract
}

// Version is the version the view reads.
func (v View) Version() Version { return v.snap.Version() }

// Get returns a copy of the value at p, false if there is none, or a
// *contract.Violation if the contract does not let the process read p.
func (v View) Get(p contract.Path) ([]byte, bool, error) {
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
	if err := v.c.CheckRead(p); err != nil {
		return nil, err
	}
	es := v.snap.Subtree(p)
	for i := range es {
		es[i].Value = slices.Clone(es[i].Value)
	}
	return es, nil
}

// Func is a process written in Go and run in this OS process.
type Func func(ctx context.Context, in View) (Outcome, error)

// Call runs f as a process under contract c until it commits (see
// Execute). f may be called several times.
func (r *Runner) Call(ctx context.Context, c contract.Contract, opID string, f Func) (Report, error) {
	return r.Execute(ctx, Invocation{Contract: c, OpID: opID, Owner: "local", view: f})
}
