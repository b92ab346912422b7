package wasm

import (
	"context"
	"errors"
	"fmt"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/flux"
	"github.com/theus-run/theus/protocol"
)

// host is the Runtime as the Flux engine sees it: what supervisor.fluxHost
// is to the supervisor, without a journal (a commit is final once
// applied) and with registered processes in place of workers.
type host struct{ r *Runtime }

var _ flux.Host = host{}

// Exec runs one step of a run as one transaction, with the run's records.
func (h host) Exec(ctx context.Context, call flux.Call) (flux.Done, error) {
	rep, err := h.r.run(ctx, Request{Process: call.Process, Args: call.Args, OpID: call.OpID}, call.System)
	if err != nil {
		pe := wireError(err)
		return flux.Done{}, &flux.Failure{Code: pe.Code, Message: pe.Message}
	}
	return flux.Done{Version: rep.Version, Attempts: rep.Attempts, Result: rep.Result}, nil
}

// Commit commits the engine's own records. Only the engine writes them,
// one run from one goroutine, so a conflict comes from a snapshot that
// went stale under it: it tries again. A Runtime is one engine on its
// Context: it owns every run, and fence is nil.
func (h host) Commit(ctx context.Context, sys cas.Delta, fence cas.Fence) (uint64, error) {
	if h.r.closed() {
		return 0, &flux.Failure{Code: errClosed.Code, Message: errClosed.Message}
	}
	s := h.r.store
	for range cas.DefaultMaxAttempts {
		snap := s.Snapshot()
		res, err := s.Commit(ctx, snap.Version(), nil, sys, cas.Options{Mode: h.r.cfg.Mode, Fence: fence})
		snap.Release()
		if errors.Is(err, cas.ErrConflict) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("wasm: flux record: %w", err)
		}
		return uint64(res.Version), nil
	}
	return 0, &flux.Failure{Code: protocol.CodeRetryLimit, Message: "a flux record kept conflicting"}
}

// Snapshot is the store's newest snapshot: it reads everything.
func (h host) Snapshot(context.Context, ...contract.Path) (*cas.Snapshot, error) {
	return h.r.store.Snapshot(), nil
}

func (h host) Known(process string) bool {
	_, ok := h.r.lookup(process)
	return ok
}

// Signals subscribes a run to every committed signal, in version order
// (flux.HubSignals).
func (h host) Signals() (<-chan flux.Signal, func()) {
	return flux.HubSignals(h.r.hub)
}
