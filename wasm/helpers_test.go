package wasm

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"testing"

	"github.com/theus-run/theus/protocol"
	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind: a Runtime's
// Close stops the hub's, the arbiter's and every run's. (Under js/wasm
// the runtime keeps one of its own to wait for JavaScript's events.)
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("runtime.handleEvent"))
}

func newRuntime(t testing.TB, cfg Config) *Runtime {
	t.Helper()
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

func register(t testing.TB, r *Runtime, name string, d Decl, p Process) {
	t.Helper()
	if err := r.Register(name, d, p); err != nil {
		t.Fatal(err)
	}
}

// counterAdd is the demo's counter.add: domain.counter += args.by (1 by
// default); its result is the new value. Between the read and the write
// it calls between, when set (a test's hook for an interleaving).
func counterAdd(between func(ctx context.Context, c *Ctx) error) Process {
	return func(ctx context.Context, c *Ctx) (json.RawMessage, error) {
		var args struct {
			By *int `json:"by"`
		}
		if len(c.Args()) > 0 {
			if err := json.Unmarshal(c.Args(), &args); err != nil {
				return nil, protocol.Errorf(protocol.CodeBadArgs, "counter.add: %v", err)
			}
		}
		by := 1
		if args.By != nil {
			by = *args.By
		}
		n := 0
		if v, ok, err := c.Get("domain.counter"); err != nil {
			return nil, err
		} else if ok {
			if n, err = strconv.Atoi(string(v)); err != nil {
				return nil, err
			}
		}
		if between != nil {
			if err := between(ctx, c); err != nil {
				return nil, err
			}
		}
		n += by
		out := json.RawMessage(strconv.Itoa(n))
		return out, c.Set("domain.counter", out)
	}
}

var counterDecl = Decl{Inputs: []string{"domain.counter"}, Outputs: []string{"domain.counter"}}

// get reads path's document as a string, failing the test on an error.
func get(t testing.TB, r *Runtime, path string) string {
	t.Helper()
	v, _, err := r.Get(path)
	if err != nil {
		t.Fatalf("get %s: %v", path, err)
	}
	return string(v)
}

// code is err's wire code ("" for nil).
func code(err error) string {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		return pe.Code
	}
	if err != nil {
		return "not a protocol.Error: " + err.Error()
	}
	return ""
}
