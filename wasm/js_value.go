//go:build js && wasm

package wasm

import (
	"encoding/json"
	"errors"
	"fmt"
	"syscall/js"

	"github.com/theus-run/theus/flux"
	"github.com/theus-run/theus/internal/gopool"
	"github.com/theus-run/theus/protocol"
)

// Only strings, numbers and functions cross between Go and JavaScript
// here: values travel as JSON text, which theus.js encodes (typed arrays
// as arrays) and decodes. Each crossing costs (a call from JavaScript into
// Go is some 20 µs in Node on the development machine, and every
// js.Value Go keeps carries a finalizer), so the API is a few flat
// functions that take and return text, and theus.js builds the objects.

var (
	jsError  = js.Global().Get("Error")
	jsObject = js.Global().Get("Object")
)

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

// thrown is a JavaScript value that was thrown, or a promise's rejection.
type thrown struct{ v js.Value }

func (t thrown) Error() string {
	if t.v.Type() == js.TypeObject && t.v.Get("message").Type() == js.TypeString {
		return t.v.Get("message").String()
	}
	return js.Global().Call("String", t.v).String()
}

// asProtocol turns what a process threw into the call's error: the
// thrown error's code when it is a wire code (worker.Fail's), with its
// path, else process_failed.
func asProtocol(err error) error {
	var t thrown
	if !errors.As(err, &t) {
		return err
	}
	pe := &protocol.Error{Code: protocol.CodeProcessFailed, Message: t.Error()}
	if t.v.Type() == js.TypeObject && t.v.Get("code").Type() == js.TypeString && isCode(t.v.Get("code").String()) {
		pe.Code = t.v.Get("code").String()
		if t.v.Get("path").Type() == js.TypeString {
			pe.Path = t.v.Get("path").String()
		}
	}
	return pe
}

// jsonArg is a JSON argument from theus.js: JSON text, or undefined (or
// null) for none; anything else is what encoding the value threw (a
// cycle, a BigInt), as an error.
func jsonArg(v js.Value) (json.RawMessage, error) {
	switch v.Type() {
	case js.TypeString:
		return json.RawMessage(v.String()), nil
	case js.TypeUndefined, js.TypeNull:
		return nil, nil
	}
	return nil, fmt.Errorf("not JSON: %w", thrown{v})
}

// text is v as JSON text for theus.js to decode.
func text(v any) (js.Value, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return js.Undefined(), fmt.Errorf("wasm: %w", err)
	}
	return js.ValueOf(string(b)), nil
}

// rawText is JSON text as a JavaScript string; undefined for none.
func rawText(b []byte) js.Value {
	if len(b) == 0 {
		return js.Undefined()
	}
	return js.ValueOf(string(b))
}

func arg(a []js.Value, i int) js.Value {
	if i < len(a) {
		return a[i]
	}
	return js.Undefined()
}

// str is a string argument; a path or a name that is not a string is
// refused where it is parsed, as the empty string.
func str(v js.Value) string {
	if v.Type() != js.TypeString {
		return ""
	}
	return v.String()
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

// syncMethod is a method that answers at once: its value, or its error
// as a TheusError that theus.js throws (a Go callback cannot throw: a
// panic ends the program).
func syncMethod(f func(a []js.Value) (any, error)) js.Func {
	return js.FuncOf(func(_ js.Value, a []js.Value) any {
		v, err := f(a)
		if err != nil {
			return errorValue(err)
		}
		return v
	})
}

// asyncMethod is a method whose last two arguments are a promise's
// resolve and reject (theus.js makes the promise): it returns at once and
// works on a goroutine of pool, since Go may not wait for anything inside
// a JavaScript callback (the page has one thread). The pool keeps the
// goroutines, whose stacks have grown through an exec already.
func asyncMethod(pool *gopool.Pool, n int, f func(a []js.Value) (any, error)) js.Func {
	return js.FuncOf(func(_ js.Value, a []js.Value) any {
		resolve, reject := arg(a, n), arg(a, n+1)
		pool.Go(func() {
			v, err := f(a)
			if err != nil {
				reject.Invoke(errorValue(err))
				return
			}
			resolve.Invoke(v)
		})
		return nil
	})
}
