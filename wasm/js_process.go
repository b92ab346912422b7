//go:build js && wasm

package wasm

import (
	"context"
	"encoding/json"
	"syscall/js"
)

// jsProcess is a Process that calls fn, a JavaScript function (possibly
// async), with the attempt's raw process object (theus.js wraps it):
// args, version, attempt, signal (an AbortSignal aborted when the call
// gives up on the attempt) and get, set, append, delete, which return
// {v} or {e}. fn's value, or what its promise resolves to, is the
// result; what it throws or rejects with fails the call.
func jsProcess(fn js.Value) Process {
	return func(ctx context.Context, c *Ctx) (json.RawMessage, error) {
		p, release := processObject(c)
		abort := js.Global().Get("AbortController").New()
		p.Set("signal", abort.Get("signal"))
		stop := context.AfterFunc(ctx, func() { abort.Call("abort", errorValue(context.Cause(ctx))) })
		defer stop()
		v, err := call(fn, p)
		if err != nil {
			release()
			return nil, asProtocol(err)
		}
		v, err = settle(ctx, v, release)
		if err != nil {
			return nil, asProtocol(err)
		}
		res, err := toJSON(v)
		if err != nil {
			return nil, asProtocol(err)
		}
		return res, nil
	}
}

// processObject is c as a JavaScript object, and the release of its
// methods, for when the process has settled (a call it makes after its
// attempt ended fails, see Ctx; one after the release throws).
func processObject(c *Ctx) (js.Value, func()) {
	p := js.Global().Get("Object").New()
	p.Set("args", fromJSON(c.Args()))
	p.Set("version", c.Version())
	p.Set("attempt", c.Attempt())
	var funcs []js.Func
	add := func(name string, f func(a []js.Value) (any, error)) {
		fn := syncMethod(f)
		funcs = append(funcs, fn)
		p.Set(name, fn)
	}
	add("get", func(a []js.Value) (any, error) {
		v, ok, err := c.Get(arg(a, 0).String())
		if err != nil || !ok {
			return js.Undefined(), err
		}
		return fromJSON(v), nil
	})
	write := func(f func(path string, v json.RawMessage) error) func(a []js.Value) (any, error) {
		return func(a []js.Value) (any, error) {
			v, err := toJSON(arg(a, 1))
			if err != nil {
				v = nil // not JSON (a cycle, a BigInt): the write fails the call
			}
			return js.Undefined(), f(arg(a, 0).String(), v)
		}
	}
	add("set", write(c.Set))
	add("append", write(c.Append))
	add("delete", func(a []js.Value) (any, error) { return js.Undefined(), c.Delete(arg(a, 0).String()) })
	return p, func() {
		for _, f := range funcs {
			f.Release()
		}
	}
}
