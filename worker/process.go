package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"

	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/protocol"
)

// Contract is what a process declares: the paths it reads and writes.
// A segment may name an arg of the call: "domain.accounts.{from}" is the
// account the "from" arg names, "domain.counters.{key?}" the counter an
// optional "key" arg names (left out when the arg is absent or empty). A
// call then ships, validates and locks only those paths, and an arg that
// is missing or is not a plain segment fails it with bad_args. Effect
// marks a process that may read SIGNAL paths and act on the world; the
// default is pure.
type Contract struct {
	Inputs  []string
	Outputs []string
	Effect  bool
}

// None is the input or output type of a process that takes no args or
// returns nothing.
type None struct{}

// Def is a process ready to register: its name, contract and handler.
// Build one with Process.
type Def struct {
	Name string
	// Spec is the contract as declared; each call runs under Spec.Bind of
	// its args (the same on the supervisor's side).
	Spec contract.Spec
	err  error
	run  func(ctx *Ctx, args []byte) ([]byte, error)
}

// Process defines a process called name with contract c that runs fn. The
// args of a call are JSON decoded into In (unknown fields and wrong types
// are a bad_args error; absent args leave In zero); the Out it returns is
// JSON encoded for the caller (None gives no result). An error from fn
// fails the invocation and nothing it wrote is committed: return
// Fail(code, ...) to give the caller a code it can test.
func Process[In, Out any](name string, c Contract, fn func(ctx *Ctx, in In) (Out, error)) Def {
	d := Def{Name: name}
	if name == "" {
		d.err = errors.New("worker: a process needs a name")
		return d
	}
	sem := contract.Pure
	if c.Effect {
		sem = contract.Effect
	}
	var err error
	if d.Spec, err = contract.NewSpec(name, c.Inputs, c.Outputs, sem); err != nil {
		d.err = fmt.Errorf("worker: process %q: %w", name, err)
		return d
	}
	noResult := reflect.TypeFor[Out]() == reflect.TypeFor[None]()
	d.run = func(ctx *Ctx, args []byte) ([]byte, error) {
		var v In
		if err := decodeArgs(args, &v); err != nil {
			return nil, &protocol.Error{Code: protocol.CodeBadArgs, Message: fmt.Sprintf("process %q: %v", name, err)}
		}
		out, err := fn(ctx, v)
		if err != nil {
			return nil, err
		}
		if noResult {
			return nil, nil
		}
		b, err := json.Marshal(out)
		if err != nil {
			return nil, fmt.Errorf("worker: process %q: encode result: %w", name, err)
		}
		return b, nil
	}
	return d
}

func decodeArgs(args []byte, v any) error {
	args = bytes.TrimSpace(args)
	if len(args) == 0 || bytes.Equal(args, []byte("null")) {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(args))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the args")
	}
	return nil
}

// Fail returns an error with a code the caller can test with errors.Is
// against &protocol.Error{Code: code}. Codes are lower snake case.
func Fail(code, format string, args ...any) error {
	return protocol.Errorf(code, format, args...)
}

// info describes d for the handshake.
func (d Def) info() protocol.ProcessInfo {
	pi := protocol.ProcessInfo{Name: d.Name, Semantic: "pure"}
	if d.Spec.Semantic == contract.Effect {
		pi.Semantic = "effect"
	}
	pi.Inputs, pi.Outputs = d.Spec.Inputs, d.Spec.Outputs
	return pi
}

// Run runs d once on a dispatch and returns the result frame. It is what
// the server does for each Dispatch, and what workertest calls.
// Tensors it makes travel inline, whatever their size.
func (d Def) Run(ctx context.Context, dp *protocol.Dispatch) *protocol.Result {
	return d.run1(ctx, dp, nil)
}

func (d Def) run1(ctx context.Context, dp *protocol.Dispatch, h *tensors) *protocol.Result {
	res := &protocol.Result{ID: dp.ID}
	bound, err := d.Spec.Bind(dp.Args)
	if err != nil {
		res.Err = &protocol.Error{Code: protocol.CodeBadArgs, Message: err.Error()}
		return res
	}
	c := newCtx(ctx, bound, dp, h)
	out, err := d.safeRun(c, dp.Args)
	if err == nil {
		err = c.violation
	}
	if err == nil {
		err = c.flushTensors()
	}
	if err != nil {
		res.Err = wireError(err)
		return res
	}
	res.Writes, res.Emits = c.writes, c.emits
	slices.Sort(c.reads)
	if reads := slices.Compact(c.reads); len(reads) <= protocol.MaxReads {
		res.Reads, res.ReadsKnown = reads, true
	} // else: too many to send; the commit validates every declared input
	res.Result = out
	return res
}

func (d Def) safeRun(c *Ctx, args []byte) (out []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &protocol.Error{Code: protocol.CodeProcessFailed, Message: fmt.Sprintf("process %q panicked: %v", d.Name, r)}
		}
	}()
	return d.run(c, args)
}

// wireError turns a process's error into its wire form.
func wireError(err error) *protocol.Error {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		return pe
	}
	var v *contract.Violation
	if errors.As(err, &v) {
		return &protocol.Error{Code: protocol.CodeContractViolation, Message: v.Error(), Path: string(v.Path)}
	}
	if errors.Is(err, context.Canceled) {
		return &protocol.Error{Code: protocol.CodeCanceled, Message: err.Error()}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &protocol.Error{Code: protocol.CodeTimeout, Message: err.Error()}
	}
	return &protocol.Error{Code: protocol.CodeProcessFailed, Message: err.Error()}
}
