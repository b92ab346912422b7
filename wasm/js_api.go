//go:build js && wasm

package wasm

import (
	"context"
	"syscall/js"

	"github.com/theus-run/theus/flux"
	"github.com/theus-run/theus/internal/gopool"
	"github.com/theus-run/theus/protocol"
)

// Install sets target[name] to the raw theus API, {newContext(options)},
// which theus.js (cmd/theus-wasm) wraps: values cross as JSON text, a
// synchronous method returns its value or a TheusError (theus.js throws
// it), and an asynchronous one takes a promise's resolve and reject last.
// The functions live as long as the program.
func Install(target js.Value, name string) {
	api := jsObject.New()
	api.Set("newContext", syncMethod(func(a []js.Value) (any, error) {
		opts, err := jsonArg(arg(a, 0))
		if err != nil {
			return nil, protocol.Errorf(protocol.CodeBadRequest, "newContext options: %v", err)
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
	o := jsObject.New()
	as := &attempts{live: map[float64]*attempt{}}
	pool := gopool.New(16) // the calls in flight at once that keep a goroutine
	as.methods(o)
	sync := func(name string, f func(a []js.Value) (any, error)) { o.Set(name, syncMethod(f)) }
	async := func(name string, n int, f func(a []js.Value) (any, error)) { o.Set(name, asyncMethod(pool, n, f)) }
	opts := func(what string, v js.Value) ([]byte, error) {
		b, err := jsonArg(v)
		if err != nil {
			return nil, protocol.Errorf(protocol.CodeBadRequest, "%s options: %v", what, err)
		}
		return b, nil
	}
	engine := func() (*flux.Engine, error) { return r.Flux() }

	// register(name, contract, run): run is theus.js's wrapper (see
	// attempts.process).
	sync("register", func(a []js.Value) (any, error) {
		decl, err := opts("register", arg(a, 1))
		if err != nil {
			return nil, err
		}
		var d Decl
		if err := options("register", decl, &d); err != nil {
			return nil, err
		}
		var p Process
		if run := arg(a, 2); run.Type() == js.TypeFunction {
			p = as.process(run)
		}
		return js.Undefined(), r.Register(str(arg(a, 0)), d, p)
	})
	// exec(name, args, options, resolve, reject): resolves with theusctl
	// exec's reply as JSON text.
	async("exec", 3, func(a []js.Value) (any, error) {
		args, err := jsonArg(arg(a, 1))
		if err != nil {
			return nil, protocol.Errorf(protocol.CodeBadArgs, "args are %v", err)
		}
		o, err := opts("exec", arg(a, 2))
		if err != nil {
			return nil, err
		}
		req, err := execRequest(str(arg(a, 0)), args, o)
		if err != nil {
			return nil, err
		}
		rep, err := r.Exec(context.Background(), req)
		if err != nil {
			return nil, err
		}
		return text(struct {
			OK bool `json:"ok"`
			Reply
			OpID string `json:"op_id,omitempty"`
		}{true, rep, req.OpID})
	})
	sync("get", func(a []js.Value) (any, error) {
		v, _, err := r.Get(str(arg(a, 0)))
		if err != nil {
			return nil, err
		}
		return rawText(v), nil
	})
	sync("version", func([]js.Value) (any, error) { return r.Version(), nil })
	sync("snapshot", func([]js.Value) (any, error) { return text(r.Snapshot()) })
	async("signal", 2, func(a []js.Value) (any, error) {
		v, err := jsonArg(arg(a, 1))
		if err != nil {
			return nil, protocol.Errorf(protocol.CodeBadRequest, "signal: the value is %v", err)
		}
		return r.Signal(context.Background(), str(arg(a, 0)), v)
	})
	async("flux", 2, func(a []js.Value) (any, error) {
		o, err := opts("flux", arg(a, 1))
		if err != nil {
			return nil, err
		}
		req, err := runRequest(str(arg(a, 0)), o)
		if err != nil {
			return nil, err
		}
		eng, err := engine()
		if err != nil {
			return nil, err
		}
		return viewText(eng.Run(context.Background(), req))
	})
	sync("validate", func(a []js.Value) (any, error) {
		file := str(arg(a, 1))
		if file == "" {
			file = "workflow.yaml"
		}
		eng, err := engine()
		if err != nil {
			return nil, err
		}
		problems := []string{}
		for _, p := range eng.Validate(file, []byte(str(arg(a, 0)))) {
			problems = append(problems, p.String())
		}
		return text(problems)
	})
	sync("status", func(a []js.Value) (any, error) {
		eng, err := engine()
		if err != nil {
			return nil, err
		}
		return viewText(eng.Status(str(arg(a, 0))))
	})
	async("cancel", 1, func(a []js.Value) (any, error) {
		eng, err := engine()
		if err != nil {
			return nil, err
		}
		return viewText(eng.Cancel(context.Background(), str(arg(a, 0))))
	})
	// watch(run, onEvent, resolve, reject): onEvent gets each event as
	// JSON text; what it throws ends the watch with that error.
	async("watch", 2, func(a []js.Value) (any, error) {
		eng, err := engine()
		if err != nil {
			return nil, err
		}
		on := arg(a, 1)
		return js.Undefined(), eng.Watch(context.Background(), str(arg(a, 0)), func(ev any) error {
			v, err := text(ev)
			if err != nil || on.Type() != js.TypeFunction {
				return err
			}
			if _, err := call(on, v); err != nil {
				return asProtocol(err)
			}
			return nil
		})
	})
	async("close", 0, func([]js.Value) (any, error) {
		r.Close()
		pool.Close() // its goroutines end as their calls return
		return js.Undefined(), nil
	})
	o.Set("mode", r.Mode().String())
	return o
}

// viewText is a run's view as JSON text.
func viewText(v *flux.RunView, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	return text(v)
}
