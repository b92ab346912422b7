//go:build js && wasm

package wasm

import (
	"context"
	"encoding/json"
	"sync"
	"syscall/js"

	"github.com/theus-run/theus/protocol"
)

// attempts are the attempts of JavaScript processes in progress, by
// handle: the process reaches its Ctx through the context's p* methods
// with its handle, so an attempt costs no Go function made for it.
type attempts struct {
	mu   sync.Mutex
	next float64 // handles are JavaScript numbers
	live map[float64]*attempt
}

// attempt is one run of a JavaScript process.
type attempt struct {
	c   *Ctx
	ctx context.Context
	// settled receives an async process's outcome (theus.js's settle);
	// size one: settle never blocks, even after the call gave up.
	settled chan settled

	mu    sync.Mutex
	abort js.Value    // the AbortController, made when the process asks for its signal
	stop  func() bool // stops aborting it
}

type settled struct {
	result json.RawMessage
	err    error
}

func (as *attempts) add(ctx context.Context, c *Ctx) (float64, *attempt) {
	as.mu.Lock()
	defer as.mu.Unlock()
	as.next++
	at := &attempt{c: c, ctx: ctx, settled: make(chan settled, 1)}
	as.live[as.next] = at
	return as.next, at
}

func (as *attempts) get(h js.Value) (*attempt, error) {
	if h.Type() != js.TypeNumber {
		return nil, errEnded
	}
	as.mu.Lock()
	defer as.mu.Unlock()
	at, ok := as.live[h.Float()]
	if !ok {
		return nil, errEnded
	}
	return at, nil
}

func (as *attempts) remove(h float64) {
	as.mu.Lock()
	at := as.live[h]
	delete(as.live, h)
	as.mu.Unlock()
	at.mu.Lock()
	if at.stop != nil {
		at.stop()
	}
	at.mu.Unlock()
}

// signal returns the attempt's AbortSignal, aborted (with a TheusError)
// when the call gives up on the attempt.
func (at *attempt) signal() js.Value {
	at.mu.Lock()
	defer at.mu.Unlock()
	if at.abort.IsUndefined() {
		at.abort = js.Global().Get("AbortController").New()
		ac := at.abort
		at.stop = context.AfterFunc(at.ctx, func() { ac.Call("abort", errorValue(context.Cause(at.ctx))) })
	}
	return at.abort.Get("signal")
}

// process is a Process that calls run, theus.js's wrapper of a process
// function, as run(handle, args, version, attempt). run returns the
// result as JSON text (undefined for none), or true when the function
// returned a promise: theus.js then calls settle(handle, ok, value) once
// it settles. What run throws fails the call.
func (as *attempts) process(run js.Value) Process {
	return func(ctx context.Context, c *Ctx) (json.RawMessage, error) {
		h, at := as.add(ctx, c)
		defer as.remove(h)
		v, err := call(run, h, rawText(c.Args()), c.Version(), c.Attempt())
		if err != nil {
			return nil, asProtocol(err)
		}
		switch v.Type() {
		case js.TypeString:
			return json.RawMessage(v.String()), nil
		case js.TypeUndefined:
			return nil, nil
		case js.TypeBoolean:
			select {
			case s := <-at.settled:
				return s.result, s.err
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		return nil, protocol.Errorf(protocol.CodeInternal, "a process wrapper returned a %s: load theus.js of this build", v.Type())
	}
}

// methods puts the process side of the API on o: pget, pset, pappend,
// pdelete and psignal take the attempt's handle first; settle ends an
// async attempt.
func (as *attempts) methods(o js.Value) {
	on := func(name string, f func(at *attempt, a []js.Value) (any, error)) {
		o.Set(name, syncMethod(func(a []js.Value) (any, error) {
			at, err := as.get(arg(a, 0))
			if err != nil {
				return nil, err
			}
			return f(at, a[1:])
		}))
	}
	on("pget", func(at *attempt, a []js.Value) (any, error) {
		v, ok, err := at.c.Get(str(arg(a, 0)))
		if err != nil || !ok {
			return js.Undefined(), err
		}
		return rawText(v), nil
	})
	write := func(f func(c *Ctx, path string, v json.RawMessage) error) func(at *attempt, a []js.Value) (any, error) {
		return func(at *attempt, a []js.Value) (any, error) {
			v, err := jsonArg(arg(a, 1))
			if err != nil {
				v = nil // the write fails the call: its value is not JSON
			}
			return js.Undefined(), f(at.c, str(arg(a, 0)), v)
		}
	}
	on("pset", write((*Ctx).Set))
	on("pappend", write((*Ctx).Append))
	on("pdelete", func(at *attempt, a []js.Value) (any, error) {
		return js.Undefined(), at.c.Delete(str(arg(a, 0)))
	})
	on("psignal", func(at *attempt, _ []js.Value) (any, error) { return at.signal(), nil })
	on("settle", func(at *attempt, a []js.Value) (any, error) {
		s := settled{}
		if arg(a, 0).Truthy() {
			s.result, s.err = jsonArg(arg(a, 1))
			if s.err != nil {
				s.err = protocol.Errorf(protocol.CodeProcessFailed, "process %q: its result is %v", at.c.c.Name, s.err)
			}
		} else {
			s.err = asProtocol(thrown{arg(a, 1)})
		}
		select {
		case at.settled <- s:
		default: // settled twice: theus.js does not
		}
		return js.Undefined(), nil
	})
}
