package wasm

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/protocol"
)

// Get returns the newest value at or under path as one JSON document
// (theusctl get's shape, see Ctx.Get) and the version read; not_found
// when nothing is there, bad_request for a bad path.
func (r *Runtime) Get(path string) (json.RawMessage, uint64, error) {
	p, err := contract.Parse(path)
	if err != nil {
		return nil, 0, &protocol.Error{Code: protocol.CodeBadRequest, Message: err.Error(), Path: path}
	}
	snap := r.store.Snapshot()
	defer snap.Release()
	es := snap.Subtree(p)
	if len(es) == 0 {
		return nil, uint64(snap.Version()), &protocol.Error{Code: protocol.CodeNotFound, Message: "nothing at or under this path", Path: path}
	}
	doc, err := document(p, es)
	if err != nil {
		return nil, 0, fmt.Errorf("wasm: get %s: %w", path, err)
	}
	return doc, uint64(snap.Version()), nil
}

// Version is the version of the newest commit.
func (r *Runtime) Version() uint64 { return uint64(r.store.Version()) }

// Export returns the whole Context at one version, what Config.Restore
// takes back: every path's value and version, the LOG numbering and the
// op id window (the Flux runs' records included).
func (r *Runtime) Export() cas.State { return r.store.Export() }

// Signal commits a signal from outside a process (theusctl signal) and
// returns its version: a commit of its own, in order with every other,
// whose value is published to the runs waiting for it and never stored.
func (r *Runtime) Signal(ctx context.Context, path string, value json.RawMessage) (uint64, error) {
	p, err := contract.Parse(path)
	if err != nil {
		return 0, &protocol.Error{Code: protocol.CodeBadRequest, Message: err.Error(), Path: path}
	}
	if !p.InZone(contract.ZoneSignal) {
		return 0, &protocol.Error{Code: protocol.CodeBadRequest, Message: fmt.Sprintf("signal: %s is not in the SIGNAL zone (no segment sig_* or cmd_*)", path), Path: path}
	}
	if len(value) == 0 {
		value = json.RawMessage("null")
	}
	if !json.Valid(value) || len(value) > cas.MaxValueLen {
		return 0, &protocol.Error{Code: protocol.CodeBadRequest, Message: fmt.Sprintf("signal: the value is not JSON of at most %d bytes", cas.MaxValueLen), Path: path}
	}
	if r.closed() {
		return 0, errClosed
	}
	c, err := contract.New("signal", nil, []contract.Path{p}, contract.Effect)
	if err != nil {
		return 0, &protocol.Error{Code: protocol.CodeBadRequest, Message: err.Error(), Path: path}
	}
	var sig cas.Delta
	sig.Set(p, value)
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	stop := context.AfterFunc(r.base, cancel)
	defer stop()
	rep, err := r.runner.Execute(ctx, cas.Invocation{
		Contract: c,
		Owner:    fmt.Sprintf("signal-%d", r.seq.Add(1)),
		Run: func(context.Context, *cas.Snapshot, int) (cas.Outcome, error) {
			return cas.Outcome{Signals: sig}, nil
		},
	})
	if err != nil {
		return 0, wireError(err)
	}
	return uint64(rep.Version), nil
}
