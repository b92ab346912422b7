package wasm

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/protocol"
)

// Request is one exec: theusctl exec's flags.
type Request struct {
	Process string
	Args    json.RawMessage // a JSON object, or empty for none
	OpID    string          // optional: a repeat with the same id is not applied twice
	Timeout time.Duration   // 0: the Runtime's
}

// Reply is a committed exec, in theusctl exec's JSON shape (less its ok).
type Reply struct {
	Version   uint64          `json:"version"`
	Attempts  int             `json:"attempts"`
	Conflicts int             `json:"conflicts"`
	VIP       bool            `json:"vip"`
	Duplicate bool            `json:"duplicate,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Mode      string          `json:"mode"`
}

// Failure is an exec that did not commit: its error and how many attempts
// it made. Unwrap gives the *protocol.Error.
type Failure struct {
	Err       *protocol.Error
	Attempts  int
	Conflicts int
}

func (f *Failure) Error() string { return f.Err.Error() }

func (f *Failure) Unwrap() error { return f.Err }

// Exec runs req.Process until its delta commits or it fails. A failure is
// a *Failure whose Err has the wire code (unknown_process, bad_args,
// contract_violation, retry_limit, timeout, the process's own code...);
// nothing was committed.
func (r *Runtime) Exec(ctx context.Context, req Request) (Reply, error) {
	return r.run(ctx, req, nil)
}

// run is Exec with system writes: when system is not nil, the writes it
// returns for an attempt commit in the same transaction as that attempt's
// delta (a workflow step and its run's records).
func (r *Runtime) run(ctx context.Context, req Request, system func(attempt int) cas.Delta) (Reply, error) {
	fail := func(code, format string, args ...any) (Reply, error) {
		return Reply{}, &Failure{Err: protocol.Errorf(code, format, args...)}
	}
	if r.closed() {
		return Reply{}, &Failure{Err: errClosed}
	}
	p, ok := r.lookup(req.Process)
	if !ok {
		return fail(protocol.CodeUnknownProcess, "no process %q; known: %s", req.Process, r.known())
	}
	if len(req.Args) > 0 && !json.Valid(req.Args) {
		return fail(protocol.CodeBadArgs, "process %q: args are not JSON", req.Process)
	}
	if len(req.OpID) > cas.MaxOpIDLen {
		return fail(protocol.CodeBadRequest, "op id is %d bytes, over %d", len(req.OpID), cas.MaxOpIDLen)
	}
	if req.Timeout < 0 {
		return fail(protocol.CodeBadRequest, "timeout of %v: want 0 (the default) or more", req.Timeout)
	}
	c, err := p.spec.Bind(req.Args)
	if err != nil {
		return fail(protocol.CodeBadArgs, "%v", err)
	}
	timeout := r.cfg.Timeout
	if req.Timeout > 0 {
		timeout = min(req.Timeout, protocol.MaxTimeout)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	stop := context.AfterFunc(r.base, cancel) // Close cancels the calls in flight
	defer stop()
	rep, err := r.runner.Execute(ctx, cas.Invocation{
		Contract: c,
		OpID:     req.OpID,
		OpDigest: opDigest(req.Process, req.Args, req.OpID),
		Owner:    "exec-" + strconv.FormatUint(r.seq.Add(1), 10),
		Run: func(ctx context.Context, snap *cas.Snapshot, attempt int) (cas.Outcome, error) {
			x := newCtx(c, snap, req.Args, attempt)
			res, err := p.run(ctx, x)
			if err != nil && ctx.Err() != nil {
				x.end(nil, nil)
				return cas.Outcome{}, ctx.Err() // the call gave up: its cause, not the process's
			}
			out, err := x.end(res, err)
			if err == nil && system != nil {
				out.System = system(attempt)
			}
			return out, err
		},
	})
	if err != nil {
		f := &Failure{Err: wireError(err)}
		if r.base.Err() != nil && errors.Is(err, context.Canceled) {
			f.Err = errClosed
		}
		var re *cas.RunError
		if errors.As(err, &re) {
			f.Attempts, f.Conflicts = re.Attempts, re.Conflicts
		}
		return Reply{}, f
	}
	return Reply{
		Version: uint64(rep.Version), Attempts: rep.Attempts, Conflicts: rep.Conflicts,
		VIP: rep.VIP, Duplicate: rep.Duplicate, Result: rep.Result, Mode: r.cfg.Mode.String(),
	}, nil
}
