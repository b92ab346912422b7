package wasm

import (
	"github.com/theus-run/theus/flux"
)

// Flux returns the Runtime's Flux engine: Run takes a workflow's YAML
// text (RunRequest.Source) with the conditions and max_ops of the
// server's runs, and its steps run the registered processes. The first
// call starts the engine, which resumes the runs that a restored Context
// says were live: register their processes first.
func (r *Runtime) Flux() (*flux.Engine, error) {
	r.start.Lock()
	defer r.start.Unlock()
	r.mu.Lock()
	closed, started := r.mu.closed, r.mu.started
	r.mu.Unlock()
	if closed {
		return nil, errClosed
	}
	if !started {
		if err := r.flux.Start(); err != nil {
			return nil, err
		}
		r.mu.Lock()
		r.mu.started = true
		r.mu.Unlock()
	}
	return r.flux, nil
}
