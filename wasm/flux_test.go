package wasm

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/theus-run/theus/flux"
	"github.com/theus-run/theus/protocol"
)

const loop = `
name: count
steps:
  - counter.add
  - flux: while
    condition: domain.counter < args.goal
    do:
      - process: counter.add
        args: {by: "${ args.step }"}
`

func TestFluxRunsAWorkflowOverProcesses(t *testing.T) {
	r := newRuntime(t, Config{})
	register(t, r, "counter.add", counterDecl, counterAdd(nil))
	eng, err := r.Flux()
	if err != nil {
		t.Fatal(err)
	}
	v, err := eng.Run(context.Background(), flux.RunRequest{Source: loop, Args: json.RawMessage(`{"goal":7,"step":2}`)})
	if err != nil {
		t.Fatal(err)
	}
	// counter: 1, then 3, 5, 7: four steps, and 1 + 4 condition checks.
	if v.Status != flux.StatusComplete || len(v.Steps) != 4 || v.Ops != 8 {
		t.Fatalf("run %+v", v)
	}
	if got := get(t, r, "domain.counter"); got != "7" {
		t.Fatalf("counter %s", got)
	}
}

func TestFluxMaxOps(t *testing.T) {
	r := newRuntime(t, Config{})
	register(t, r, "counter.add", counterDecl, counterAdd(nil))
	eng, _ := r.Flux()
	v, err := eng.Run(context.Background(), flux.RunRequest{Source: loop, Args: json.RawMessage(`{"goal":100,"step":1}`), MaxOps: 5})
	if err != nil {
		t.Fatal(err)
	}
	if v.Status != flux.StatusFailed || v.Code != flux.CodeMaxOps {
		t.Fatalf("run %+v", v)
	}
	if got := get(t, r, "domain.counter"); got != "3" { // ops: add, check, add, check, add
		t.Fatalf("counter %s", got)
	}
}

func TestFluxRefusesUnknownProcessesAtLoad(t *testing.T) {
	r := newRuntime(t, Config{})
	eng, _ := r.Flux()
	_, err := eng.Run(context.Background(), flux.RunRequest{Source: "steps: [nope]\n"})
	if f, ok := err.(*flux.Failure); !ok || f.Code != flux.CodeBadRequest {
		t.Fatalf("%v", err)
	}
}

// A failing step runs its on_fail block with the process's own code in
// the run's history; nothing of the failed step is committed.
func TestFluxOnFail(t *testing.T) {
	r := newRuntime(t, Config{})
	register(t, r, "counter.add", counterDecl, counterAdd(nil))
	register(t, r, "broke", counterDecl, func(_ context.Context, c *Ctx) (json.RawMessage, error) {
		c.Set("domain.counter", json.RawMessage("100"))
		return nil, protocol.Errorf("tool_down", "the tool is down")
	})
	eng, _ := r.Flux()
	v, err := eng.Run(context.Background(), flux.RunRequest{Source: `
steps:
  - process: broke
    on_fail:
      - counter.add
      - flux: continue
  - counter.add
`})
	if err != nil {
		t.Fatal(err)
	}
	if v.Status != flux.StatusComplete || v.Steps[0].Code != "tool_down" {
		t.Fatalf("run %+v", v)
	}
	if got := get(t, r, "domain.counter"); got != "2" {
		t.Fatalf("counter %s", got)
	}
}

// A run waits for a signal; one committed from outside (Signal) or by a
// process's write to a SIGNAL path wakes it.
func TestFluxWaitsForSignals(t *testing.T) {
	r := newRuntime(t, Config{})
	register(t, r, "counter.add", counterDecl, counterAdd(nil))
	register(t, r, "ring", Decl{Outputs: []string{"domain.sig_bell"}, Effect: true}, func(_ context.Context, c *Ctx) (json.RawMessage, error) {
		return nil, c.Set("domain.sig_bell", json.RawMessage(`"ding"`))
	})
	eng, _ := r.Flux()
	wf := "steps:\n  - flux: wait\n    signal: domain.sig_go\n  - counter.add\n  - flux: wait\n    signal: domain.sig_bell\n  - counter.add\n"
	v, err := eng.Run(context.Background(), flux.RunRequest{Source: wf, ID: "w1", Detach: true})
	// A detached run may already have reached its first wait.
	if err != nil || (v.Status != flux.StatusRunning && v.Status != flux.StatusWaiting) {
		t.Fatalf("%+v %v", v, err)
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(2 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("never: %s", what)
			}
		}
	}
	// The run subscribes before it starts: a signal now reaches it.
	if _, err := r.Signal(context.Background(), "domain.sig_go", json.RawMessage("true")); err != nil {
		t.Fatal(err)
	}
	waitFor("the first step", func() bool { v, _, _ := r.Get("domain.counter"); return string(v) == "1" })
	if _, err := r.Exec(context.Background(), Request{Process: "ring"}); err != nil {
		t.Fatal(err)
	}
	v, err = eng.Wait(context.Background(), "w1")
	if err != nil || v.Status != flux.StatusComplete {
		t.Fatalf("%+v %v", v, err)
	}
	if _, err := r.Signal(context.Background(), "domain.go", nil); code(err) != protocol.CodeBadRequest {
		t.Fatalf("a signal outside the SIGNAL zone: %v", err)
	}
	if _, _, err := r.Get("domain.sig_go"); code(err) != protocol.CodeNotFound {
		t.Fatalf("a signal was stored: %v", err)
	}
}
