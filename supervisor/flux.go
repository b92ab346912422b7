package supervisor

import (
	"context"
	"errors"
	"fmt"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/flux"
	"github.com/theus-run/theus/protocol"
)

// fluxHost is the supervisor as the flux engine sees it.
type fluxHost struct{ s *Supervisor }

var _ flux.Host = fluxHost{}

// Exec runs one step of a run as one transaction, with the run's records.
func (h fluxHost) Exec(ctx context.Context, call flux.Call) (flux.Done, error) {
	s := h.s
	if !s.enter() {
		return flux.Done{}, &flux.Failure{Code: protocol.CodeShuttingDown, Message: "the supervisor is shutting down"}
	}
	defer s.inflight.Done()
	req := &protocol.Execute{Process: call.Process, Args: call.Args, OpID: call.OpID}
	rep := s.run(ctx, req, call.System, call.Fence)
	if rep.Err != nil {
		return flux.Done{}, &flux.Failure{Code: rep.Err.Code, Message: rep.Err.Message}
	}
	return flux.Done{Version: rep.Version, Attempts: int(rep.Attempts), Result: rep.Result}, nil
}

// Commit commits the engine's own records and waits until they are
// durable. Only the engine writes them, and it writes a run's records
// from one goroutine, so a conflict can only come from a snapshot that
// went stale under it: it tries again. fence comes from an etcd claim
// (etcd_flux.go): nil here.
func (h fluxHost) Commit(ctx context.Context, sys cas.Delta, fence cas.Fence) (uint64, error) {
	s := h.s
	if s.etcd != nil {
		return s.etcdFluxCommit(ctx, sys, fence)
	}
	if err := s.journalErr(); err != nil {
		return 0, &flux.Failure{Code: err.Code, Message: err.Message}
	}
	for range cas.DefaultMaxAttempts {
		snap := s.store.Snapshot()
		r, err := s.store.Commit(ctx, snap.Version(), nil, sys, cas.Options{Mode: s.cfg.Mode, Fence: fence})
		snap.Release()
		if errors.Is(err, cas.ErrConflict) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("supervisor: flux record: %w", err)
		}
		if err := s.durableAt(ctx, r.Version); err != nil {
			return 0, &flux.Failure{Code: err.Code, Message: err.Message}
		}
		return uint64(r.Version), nil
	}
	return 0, &flux.Failure{Code: protocol.CodeRetryLimit, Message: "a flux record kept conflicting"}
}

// Snapshot reads at least the values under paths: the store's newest
// snapshot, or a read of etcd.
func (h fluxHost) Snapshot(ctx context.Context, paths ...contract.Path) (*cas.Snapshot, error) {
	return h.s.view(ctx, paths...)
}

func (h fluxHost) Known(process string) bool {
	_, ok := h.s.procs[process]
	return ok
}

// startFlux loads the workflow files and registers the flux and fsm
// methods. The engine resumes runs in resumeFlux, once the supervisor
// can run steps.
func (s *Supervisor) startFlux() error {
	var host flux.Host = fluxHost{s}
	if s.etcd != nil {
		host = etcdFluxHost{fluxHost{s}} // runs owned through leases, taken over across supervisors
	}
	eng, err := flux.New(flux.Config{Host: host, Dir: s.cfg.Flux, Log: func(format string, args ...any) {
		s.cfg.Log.Warn().Msgf(format, args...)
	}})
	if err != nil {
		return err
	}
	s.flux = eng
	s.registerMethod(protocol.MethodFluxValidate, s.fluxValidate)
	s.registerMethod(protocol.MethodFluxRun, s.fluxRun)
	s.registerMethod(protocol.MethodFluxStatus, func(ctx context.Context, body []byte) (any, error) {
		var req struct {
			Run string `json:"run"`
		}
		if err := decodeBody(body, &req); err != nil {
			return nil, err
		}
		v, err := s.flux.Status(req.Run)
		return shown(ctx, s, v, err)
	})
	s.registerMethod(protocol.MethodFluxCancel, func(ctx context.Context, body []byte) (any, error) {
		var req struct {
			Run string `json:"run"`
		}
		if err := decodeBody(body, &req); err != nil {
			return nil, err
		}
		return wrapFlux(s.flux.Cancel(ctx, req.Run))
	})
	s.registerMethod(protocol.MethodFluxList, func(ctx context.Context, body []byte) (any, error) {
		if err := decodeBody(body, &struct{}{}); err != nil {
			return nil, err
		}
		v, err := s.flux.List()
		return shown(ctx, s, v, err)
	})
	s.registerMethod(protocol.MethodFSMStart, func(ctx context.Context, body []byte) (any, error) {
		var req flux.MachineRequest
		if err := decodeBody(body, &req); err != nil {
			return nil, err
		}
		return wrapFlux(s.flux.StartMachine(ctx, req))
	})
	s.registerMethod(protocol.MethodFSMStatus, func(ctx context.Context, body []byte) (any, error) {
		var req struct {
			ID string `json:"id"`
		}
		if err := decodeBody(body, &req); err != nil {
			return nil, err
		}
		v, err := s.flux.MachineStatus(req.ID)
		return shown(ctx, s, v, err)
	})
	s.registerMethod(protocol.MethodFSMSend, func(ctx context.Context, body []byte) (any, error) {
		var req struct {
			ID    string `json:"id"`
			Event string `json:"event"`
		}
		if err := decodeBody(body, &req); err != nil {
			return nil, err
		}
		return wrapFlux(s.flux.Send(ctx, req.ID, req.Event))
	})
	s.registerMethod(protocol.MethodFSMList, func(ctx context.Context, body []byte) (any, error) {
		if err := decodeBody(body, &struct{}{}); err != nil {
			return nil, err
		}
		ms, err := s.flux.Machines()
		return shown(ctx, s, map[string]any{"machines": ms}, err)
	})
	s.registerStream(protocol.StreamFlux, func(ctx context.Context, body []byte, send func(...any) error) error {
		var req struct {
			Run string `json:"run"`
		}
		if err := decodeBody(body, &req); err != nil {
			return err
		}
		return fluxErr(s.flux.Watch(ctx, req.Run, func(v any) error { return send(v) }))
	})
	return nil
}

func (s *Supervisor) fluxValidate(_ context.Context, body []byte) (any, error) {
	var req struct {
		File   string `json:"file"`
		Source string `json:"source"`
	}
	if err := decodeBody(body, &req); err != nil {
		return nil, err
	}
	if req.File == "" {
		req.File = "workflow.yaml"
	}
	problems := s.flux.Validate(req.File, []byte(req.Source))
	out := struct {
		OK     bool     `json:"ok"`
		Errors []string `json:"errors,omitempty"`
	}{OK: len(problems) == 0}
	for _, p := range problems {
		out.Errors = append(out.Errors, p.String())
	}
	return out, nil
}

// fluxRun starts a run and waits for it, unless detached. A wait that the
// drain interrupts answers shutting_down: the run resumes at the next
// start.
func (s *Supervisor) fluxRun(ctx context.Context, body []byte) (any, error) {
	var req flux.RunRequest
	if err := decodeBody(body, &req); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.quit, cancel)
	defer stop()
	v, err := s.flux.Run(ctx, req)
	if err != nil && s.quit.Err() != nil {
		return nil, protocol.Errorf(protocol.CodeShuttingDown, "the supervisor is shutting down; the run goes on at its next start")
	}
	return wrapFlux(v, err)
}

// wrapFlux gives a flux failure its wire form.
// shown answers a read of runs or machines once what it read is on
// disk: it read the store's newest snapshot, which may hold commits not
// yet synced (--durability sync), and a crash must not take back a
// state a client was shown (as Get, which waits for its snapshot).
func shown[T any](ctx context.Context, s *Supervisor, v T, err error) (any, error) {
	if err != nil {
		return nil, fluxErr(err)
	}
	if s.etcd == nil { // on etcd, what a read returns is durable
		if perr := s.durableAt(ctx, s.store.Version()); perr != nil {
			return nil, perr
		}
	}
	return v, nil
}

func wrapFlux[T any](v T, err error) (any, error) {
	if err != nil {
		return nil, fluxErr(err)
	}
	return v, nil
}

func fluxErr(err error) error {
	var f *flux.Failure
	if errors.As(err, &f) {
		return &protocol.Error{Code: f.Code, Message: f.Message}
	}
	return err
}
