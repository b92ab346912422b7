//go:build js && wasm

package wasm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"syscall/js"

	"github.com/theus-run/theus/flux"
	"github.com/theus-run/theus/protocol"
)

// The JavaScript objects the glue uses, looked up once.
var (
	jsJSON        = js.Global().Get("JSON")
	jsPromise     = js.Global().Get("Promise")
	jsError       = js.Global().Get("Error")
	jsArrayBuffer = js.Global().Get("ArrayBuffer")
	jsArray       = js.Global().Get("Array")
	jsDataView    = js.Global().Get("DataView")
)

// typedArrays is JSON.stringify's replacer: a typed array is stored by
// value, as a JSON array of its numbers (there is no HEAVY zone here).
var typedArrays = js.FuncOf(func(_ js.Value, a []js.Value) any {
	v := a[1]
	if v.Type() == js.TypeObject && jsArrayBuffer.Call("isView", v).Bool() && !v.InstanceOf(jsDataView) {
		return jsArray.Call("from", v)
	}
	return v
})

// call invokes fn, turning a JavaScript exception into an error.
func call(fn js.Value, args ...any) (v js.Value, err error) {
	defer func() {
		if r := recover(); r != nil {
			je, ok := r.(js.Error)
			if !ok {
				panic(r)
			}
			v, err = js.Undefined(), thrown{je.Value}
		}
	}()
	return fn.Invoke(args...), nil
}

// method calls obj[name], turning an exception into an error.
func method(obj js.Value, name string, args ...any) (v js.Value, err error) {
	defer func() {
		if r := recover(); r != nil {
			je, ok := r.(js.Error)
			if !ok {
				panic(r)
			}
			v, err = js.Undefined(), thrown{je.Value}
		}
	}()
	return obj.Call(name, args...), nil
}

// thrown is a JavaScript value that was thrown, or a promise's rejection.
type thrown struct{ v js.Value }

func (t thrown) Error() string {
	if t.v.Type() == js.TypeObject && t.v.Get("message").Type() == js.TypeString {
		return t.v.Get("message").String()
	}
	return js.Global().Call("String", t.v).String()
}

// code is the thrown value's code property when it is a wire code (lower
// snake case, as worker.Fail's), else "".
func (t thrown) code() string {
	if t.v.Type() != js.TypeObject || t.v.Get("code").Type() != js.TypeString {
		return ""
	}
	c := t.v.Get("code").String()
	if !isCode(c) {
		return ""
	}
	return c
}

// asProtocol turns what a process threw into the call's error: its own
// code, or process_failed.
func asProtocol(err error) error {
	var t thrown
	if !errors.As(err, &t) {
		return err
	}
	pe := &protocol.Error{Code: t.code(), Message: t.Error()}
	if pe.Code == "" {
		pe.Code = protocol.CodeProcessFailed
	} else if t.v.Get("path").Type() == js.TypeString {
		pe.Path = t.v.Get("path").String()
	}
	return pe
}

// settle waits for v when it is a promise (a thenable), or returns it.
// done runs once v has settled, even if ctx ended first (the process is
// still running then: what it holds lives until it ends).
func settle(ctx context.Context, v js.Value, done func()) (js.Value, error) {
	if v.Type() != js.TypeObject || v.Get("then").Type() != js.TypeFunction {
		done()
		return v, nil
	}
	type outcome struct {
		v   js.Value
		err error
	}
	ch := make(chan outcome, 1) // the callback never blocks, even when no one waits any more
	var ok, fail js.Func
	end := func(o outcome) {
		ch <- o
		ok.Release()
		fail.Release()
		done()
	}
	ok = js.FuncOf(func(_ js.Value, a []js.Value) any {
		end(outcome{v: arg(a, 0)})
		return nil
	})
	fail = js.FuncOf(func(_ js.Value, a []js.Value) any {
		end(outcome{err: thrown{arg(a, 0)}})
		return nil
	})
	if _, err := method(v, "then", ok, fail); err != nil {
		ok.Release()
		fail.Release()
		done()
		return js.Undefined(), err
	}
	select {
	case o := <-ch:
		return o.v, o.err
	case <-ctx.Done():
		return js.Undefined(), ctx.Err()
	}
}

func arg(a []js.Value, i int) js.Value {
	if i < len(a) {
		return a[i]
	}
	return js.Undefined()
}

// toJSON is JSON.stringify(v), typed arrays as arrays; nil for undefined.
func toJSON(v js.Value) (json.RawMessage, error) {
	if v.IsUndefined() {
		return nil, nil
	}
	s, err := method(jsJSON, "stringify", v, typedArrays)
	if err != nil {
		return nil, err
	}
	if s.Type() != js.TypeString {
		return nil, fmt.Errorf("a %s is not JSON", v.Type())
	}
	return json.RawMessage(s.String()), nil
}

// fromJSON is JSON.parse(b); undefined for empty b.
func fromJSON(b []byte) js.Value {
	if len(b) == 0 {
		return js.Undefined()
	}
	return jsJSON.Call("parse", string(b))
}

// value turns a Go value into JavaScript through JSON.
func value(v any) (js.Value, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return js.Undefined(), err
	}
	return fromJSON(b), nil
}

// errorValue is err as a JavaScript Error named TheusError, with the wire
// code, the path when there is one, and reply: theusctl -o json's object
// for a failure ({ok: false, code, error, path}).
func errorValue(err error) js.Value {
	var pe *protocol.Error
	var ff *flux.Failure
	var f *Failure
	switch {
	case errors.As(err, &pe):
	case errors.As(err, &ff):
		pe = &protocol.Error{Code: ff.Code, Message: ff.Message}
	default:
		pe = wireError(err)
	}
	e := jsError.New(pe.Error())
	e.Set("name", "TheusError")
	e.Set("code", pe.Code)
	reply := map[string]any{"ok": false, "code": pe.Code, "error": pe.Error()}
	if pe.Path != "" {
		e.Set("path", pe.Path)
		reply["path"] = pe.Path
	}
	if errors.As(err, &f) {
		e.Set("attempts", f.Attempts)
		e.Set("conflicts", f.Conflicts)
	}
	e.Set("reply", reply)
	return e
}

// promise runs work on its own goroutine and returns a Promise of its
// outcome: a call from JavaScript must return before Go may wait for
// anything (the page has one thread).
func promise(work func() (any, error)) js.Value {
	executor := js.FuncOf(func(_ js.Value, a []js.Value) any {
		resolve, reject := a[0], a[1]
		go func() {
			v, err := work()
			if err != nil {
				reject.Invoke(errorValue(err))
				return
			}
			resolve.Invoke(v)
		}()
		return nil
	})
	defer executor.Release() // the constructor calls it at once
	return jsPromise.New(executor)
}

// outcome is what a synchronous method returns: {v: value} or {e:
// TheusError}. A Go callback cannot throw into JavaScript (a panic ends
// the program), so theus.js throws e for it.
func outcome(v any, err error) js.Value {
	o := js.Global().Get("Object").New()
	if err != nil {
		o.Set("e", errorValue(err))
		return o
	}
	o.Set("v", v)
	return o
}

// syncMethod wraps a synchronous method for outcome.
func syncMethod(f func(a []js.Value) (any, error)) js.Func {
	return js.FuncOf(func(_ js.Value, a []js.Value) any { return outcome(f(a)) })
}
