//go:build js && wasm

package wasm

import (
	"context"
	"syscall/js"

	"github.com/theus-run/theus/flux"
	"github.com/theus-run/theus/protocol"
)

// Install sets target[name] to the raw theus API, {newContext(options)},
// which theus.js (cmd/theus-wasm) wraps: synchronous methods return {v}
// or {e} there, and theus.js throws e. The functions live as long as the
// program.
func Install(target js.Value, name string) {
	api := js.Global().Get("Object").New()
	api.Set("newContext", syncMethod(func(a []js.Value) (any, error) {
		opts, err := toJSON(arg(a, 0))
		if err != nil {
			return nil, asProtocol(err)
		}
		cfg, err := contextConfig(opts)
		if err != nil {
			return nil, err
		}
		r, err := New(cfg)
		if err != nil {
			return nil, err
		}
		return contextObject(r), nil
	}))
	target.Set(name, api)
}

// contextObject is r's raw API. Its functions are never released: a
// closed context's methods answer shutting_down.
func contextObject(r *Runtime) js.Value {
	o := js.Global().Get("Object").New()
	sync := func(name string, f func(a []js.Value) (any, error)) { o.Set(name, syncMethod(f)) }
	async := func(name string, f func(a []js.Value) (any, error)) {
		o.Set(name, js.FuncOf(func(_ js.Value, a []js.Value) any {
			return promise(func() (any, error) { return f(a) })
		}))
	}
	sync("register", func(a []js.Value) (any, error) {
		decl, err := toJSON(arg(a, 1))
		if err != nil {
			return nil, asProtocol(err)
		}
		var d Decl
		if err := options("register", decl, &d); err != nil {
			return nil, err
		}
		fn := arg(a, 2)
		if fn.Type() != js.TypeFunction {
			return nil, r.Register(arg(a, 0).String(), d, nil) // refused: no function
		}
		return js.Undefined(), r.Register(arg(a, 0).String(), d, jsProcess(fn))
	})
	async("exec", func(a []js.Value) (any, error) {
		args, err := toJSON(arg(a, 1))
		if err != nil {
			return nil, badArgs(err)
		}
		opts, err := toJSON(arg(a, 2))
		if err != nil {
			return nil, asProtocol(err)
		}
		req, err := execRequest(arg(a, 0).String(), args, opts)
		if err != nil {
			return nil, err
		}
		rep, err := r.Exec(context.Background(), req)
		if err != nil {
			return nil, err
		}
		out := struct {
			OK bool `json:"ok"`
			Reply
			OpID string `json:"op_id,omitempty"`
		}{true, rep, req.OpID}
		return value(out)
	})
	sync("get", func(a []js.Value) (any, error) {
		v, _, err := r.Get(arg(a, 0).String())
		if err != nil {
			return nil, err
		}
		return fromJSON(v), nil
	})
	sync("version", func([]js.Value) (any, error) { return r.Version(), nil })
	sync("snapshot", func([]js.Value) (any, error) { return value(r.Snapshot()) })
	async("signal", func(a []js.Value) (any, error) {
		v, err := toJSON(arg(a, 1))
		if err != nil {
			return nil, asProtocol(err)
		}
		return r.Signal(context.Background(), arg(a, 0).String(), v)
	})
	async("flux", func(a []js.Value) (any, error) {
		opts, err := toJSON(arg(a, 1))
		if err != nil {
			return nil, asProtocol(err)
		}
		req, err := runRequest(arg(a, 0).String(), opts)
		if err != nil {
			return nil, err
		}
		eng, err := r.Flux()
		if err != nil {
			return nil, err
		}
		return viewOf(eng.Run(context.Background(), req))
	})
	sync("validate", func(a []js.Value) (any, error) {
		file := "workflow.yaml"
		if f := arg(a, 1); f.Type() == js.TypeString {
			file = f.String()
		}
		eng, err := r.Flux()
		if err != nil {
			return nil, err
		}
		problems := []string{}
		for _, p := range eng.Validate(file, []byte(arg(a, 0).String())) {
			problems = append(problems, p.String())
		}
		return value(problems)
	})
	sync("status", func(a []js.Value) (any, error) {
		eng, err := r.Flux()
		if err != nil {
			return nil, err
		}
		return viewOf(eng.Status(arg(a, 0).String()))
	})
	async("cancel", func(a []js.Value) (any, error) {
		eng, err := r.Flux()
		if err != nil {
			return nil, err
		}
		return viewOf(eng.Cancel(context.Background(), arg(a, 0).String()))
	})
	async("watch", func(a []js.Value) (any, error) {
		eng, err := r.Flux()
		if err != nil {
			return nil, err
		}
		on := arg(a, 1)
		return js.Undefined(), eng.Watch(context.Background(), arg(a, 0).String(), func(ev any) error {
			v, err := value(ev)
			if err != nil {
				return err
			}
			if on.Type() == js.TypeFunction {
				if _, err := call(on, v); err != nil {
					return asProtocol(err)
				}
			}
			return nil
		})
	})
	async("close", func([]js.Value) (any, error) {
		r.Close()
		return js.Undefined(), nil
	})
	o.Set("mode", r.Mode().String())
	return o
}

// viewOf is a run's view as JavaScript.
func viewOf(v *flux.RunView, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	return value(v)
}

// badArgs is args that JSON cannot carry (a cycle, a BigInt).
func badArgs(err error) error {
	return protocol.Errorf(protocol.CodeBadArgs, "args are not JSON: %v", err)
}
