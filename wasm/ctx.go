package wasm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/protocol"
)

// Process runs one attempt of a call: it reads and writes through c and
// returns its result as JSON (nil for none). It may be run several times
// for one call, each time on a newer snapshot, and must have no effect
// outside what it writes through c. An error that is a *protocol.Error
// keeps its code; any other fails the call with process_failed.
type Process func(ctx context.Context, c *Ctx) (json.RawMessage, error)

// Ctx is what a process sees during one attempt: its args, its declared
// inputs at one snapshot, and the delta it is building. It is the worker
// SDK's Ctx without a socket: the same checks, in the same order. Its
// methods fail once the attempt has ended (the process returned, or its
// call gave up on it).
type Ctx struct {
	args    json.RawMessage
	version uint64
	attempt int
	c       contract.Contract

	mu struct {
		sync.Mutex
		snap      *cas.Snapshot // nil once the attempt ended
		reads     []contract.Path
		delta     cas.Delta
		signals   cas.Delta
		violation error // the first contract violation: it fails the call
	}
}

func newCtx(c contract.Contract, snap *cas.Snapshot, args json.RawMessage, attempt int) *Ctx {
	x := &Ctx{args: args, version: uint64(snap.Version()), attempt: attempt, c: c}
	x.mu.snap = snap
	return x
}

// Args are the call's args as JSON (empty for none).
func (c *Ctx) Args() json.RawMessage { return c.args }

// Version is the snapshot's version.
func (c *Ctx) Version() uint64 { return c.version }

// Attempt counts the runs of this call, from 1.
func (c *Ctx) Attempt() int { return c.attempt }

var errEnded = protocol.Errorf(protocol.CodeProcessFailed, "the attempt has ended: a process reads and writes only until it returns")

// fail records err as the call's failure if it is the first violation.
func (c *Ctx) failLocked(err error) error {
	if c.mu.violation == nil {
		c.mu.violation = err
	}
	return err
}

// Get returns the value at path as one JSON document, shaped as
// theusctl get prints it (the value itself, or an object nesting what is
// below), and false when nothing is at or under path. Reading outside the
// contract's inputs is a contract violation, which also fails the call;
// the PRIVATE zone is never seen.
func (c *Ctx) Get(path string) (json.RawMessage, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.snap == nil {
		return nil, false, errEnded
	}
	p, err := contract.Parse(path)
	if err != nil {
		return nil, false, &protocol.Error{Code: protocol.CodeContractViolation, Message: "read: " + err.Error(), Path: path}
	}
	if err := c.c.CheckRead(p); err != nil {
		return nil, false, c.failLocked(err)
	}
	c.mu.reads = append(c.mu.reads, p)
	var es []cas.Entry
	for _, e := range c.mu.snap.Subtree(p) {
		if !e.Path.InZone(contract.ZonePrivate) {
			es = append(es, e)
		}
	}
	if len(es) == 0 {
		return nil, false, nil
	}
	doc, err := document(p, es)
	return doc, err == nil, err
}

// Set adds a write of v (JSON) at path to the delta; a path in the
// SIGNAL zone is a signal, published once the commit lands and never
// stored. A path outside the contract's outputs is a contract violation:
// Set returns it, and the call fails with it even if the process goes on.
func (c *Ctx) Set(path string, v json.RawMessage) error { return c.write(path, contract.OpSet, v) }

// Delete adds a delete of the value at path to the delta.
func (c *Ctx) Delete(path string) error { return c.write(path, contract.OpDelete, nil) }

// Append adds v as the next entry of the LOG rooted at path.
func (c *Ctx) Append(path string, v json.RawMessage) error {
	return c.write(path, contract.OpAppend, v)
}

func (c *Ctx) write(path string, op contract.Op, v json.RawMessage) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.snap == nil {
		return errEnded
	}
	p, err := contract.Parse(path)
	if err != nil {
		return c.failLocked(&protocol.Error{Code: protocol.CodeContractViolation, Message: err.Error(), Path: path})
	}
	if err := c.c.CheckWrite(p, op); err != nil {
		return c.failLocked(err)
	}
	if op != contract.OpDelete && !json.Valid(v) {
		return c.failLocked(&protocol.Error{Code: protocol.CodeProcessFailed, Message: fmt.Sprintf("process %q: the value for %s is not JSON", c.c.Name, path), Path: path})
	}
	switch {
	case p.InZone(contract.ZoneSignal):
		if op != contract.OpSet {
			return c.failLocked(&protocol.Error{Code: protocol.CodeContractViolation, Message: fmt.Sprintf("process %q: %s is a SIGNAL path: a signal is set, never %s (it is not stored)", c.c.Name, path, op), Path: path})
		}
		c.mu.signals.Set(p, slices.Clone(v))
		return nil
	case p.InZone(contract.ZoneHeavy) && op != contract.OpDelete:
		return c.failLocked(&protocol.Error{Code: protocol.CodeBadTensor, Message: fmt.Sprintf("process %q: %s is a HEAVY path: there is no HEAVY zone in WebAssembly (store a typed array by value in a DATA path)", c.c.Name, path), Path: path})
	}
	switch op {
	case contract.OpSet:
		c.mu.delta.Set(p, slices.Clone(v))
	case contract.OpAppend:
		c.mu.delta.Append(p, slices.Clone(v))
	case contract.OpDelete:
		c.mu.delta.Delete(p)
	}
	return nil
}

// end closes the attempt and returns what it built. Its error is the
// first contract violation, else the process's own error (perr: a
// *protocol.Error keeps its code, worker.Fail's; anything else is
// process_failed), else a result that is not JSON. The snapshot is the
// runner's again.
func (c *Ctx) end(result json.RawMessage, perr error) (cas.Outcome, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.snap = nil
	var pe *protocol.Error
	switch {
	case c.mu.violation != nil:
		return cas.Outcome{}, c.mu.violation
	case errors.As(perr, &pe):
		return cas.Outcome{}, perr
	case perr != nil:
		return cas.Outcome{}, protocol.Errorf(protocol.CodeProcessFailed, "process %q: %v", c.c.Name, perr)
	case len(result) > 0 && !json.Valid(result):
		return cas.Outcome{}, protocol.Errorf(protocol.CodeProcessFailed, "process %q: its result is not JSON", c.c.Name)
	}
	reads := c.mu.reads
	slices.Sort(reads)
	reads = slices.Compact(reads)
	return cas.Outcome{Delta: c.mu.delta, Signals: c.mu.signals, Result: result, Reads: reads, ReadsKnown: true}, nil
}
