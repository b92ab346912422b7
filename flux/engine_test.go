package flux

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
)

func TestEngineRunsAWorkflow(t *testing.T) {
	h := newFakeHost()
	e := newEngine(t, h, map[string]string{"three.yaml": "steps: [{process: add, args: {key: a}}, {process: add, args: {key: a}}, {process: add, args: {key: a}}]\n"})
	v, err := e.Run(context.Background(), RunRequest{Name: "three"})
	if err != nil || v.Status != StatusComplete || len(v.Steps) != 3 || h.counter("a") != 3 {
		t.Fatalf("%+v %v, a=%d", v, err, h.counter("a"))
	}
}

// A step whose commit landed but whose Exec reported an error (a
// deadline or a cancel during the durability wait) did run: the run
// must go on from it, not run its on_fail block as if it had failed,
// nor apply it again.
func TestStepCommittedThoughExecFailed(t *testing.T) {
	h := newFakeHost()
	e := newEngine(t, h, map[string]string{"w.yaml": `
steps:
  - process: add
    args: {key: x}
    on_fail:
      - process: add
        args: {key: failed}
      - flux: continue
  - process: add
    args: {key: y}
`})
	var once atomic.Bool
	h.after = func(context.Context, Call) error {
		if once.CompareAndSwap(false, true) {
			return failf("timeout", "version 2 was applied but is not on disk yet")
		}
		return nil
	}
	v, err := e.Run(context.Background(), RunRequest{Name: "w"})
	if err != nil {
		t.Fatal(err)
	}
	if x, f, y := h.counter("x"), h.counter("failed"), h.counter("y"); x != 1 || f != 0 || y != 1 {
		t.Fatalf("x=%d failed=%d y=%d, want 1 0 1; run %+v", x, f, y, v)
	}
	if v.Status != StatusComplete || len(v.Steps) != 2 || v.Steps[0].Code != "" {
		t.Fatalf("run %+v", v)
	}
}

// A cancel that lands while a step commits: the run ends cancelled, and
// its record counts the step that committed.
func TestCancelDuringACommittingStep(t *testing.T) {
	h := newFakeHost()
	e := newEngine(t, h, map[string]string{"w.yaml": "steps: [{process: add, args: {key: x}}, {process: add, args: {key: y}}]\n"})
	h.after = func(ctx context.Context, call Call) error {
		id, _, _ := strings.Cut(call.OpID, ".")
		go e.Cancel(context.Background(), id)
		<-ctx.Done()
		return failf("canceled", "%v", ctx.Err())
	}
	v, err := e.Run(context.Background(), RunRequest{Name: "w", ID: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	if v.Status != StatusCancelled || len(v.Steps) != 1 || h.counter("x") != 1 || h.counter("y") != 0 {
		t.Fatalf("run %+v, x=%d y=%d", v, h.counter("x"), h.counter("y"))
	}
	l, err := e.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Runs) != 1 || l.Runs[0].Steps != 1 {
		t.Fatalf("the run's record says %+v, its history holds 1 step", l.Runs)
	}
}

// An on_fail block without continue that runs process steps of its own
// ends the run with the failed step's error, as docs/FLUX.md says, and
// the run's record names that step, also when a step of the block
// failed and continued.
func TestOnFailWithoutContinueKeepsTheError(t *testing.T) {
	h := newFakeHost()
	e := newEngine(t, h, map[string]string{"w.yaml": `
steps:
  - process: add
    args: {}
    on_fail:
      - process: add
        args: {key: f1}
      - process: add
        args: {key: f2}
  - process: add
    args: {key: after}
`, "nested.yaml": `
steps:
  - process: add
    args: {}
    on_fail:
      - process: add
        args: {key: boom}
        on_fail:
          - flux: continue
      - process: add
        args: {key: f1}
`})
	h.before = func(_ context.Context, call Call) error {
		if strings.Contains(string(call.Args), "boom") {
			return failf("boom", "boom")
		}
		return nil
	}
	v, err := e.Run(context.Background(), RunRequest{Name: "nested"})
	if err != nil || v.Status != StatusFailed || v.Code != "bad_args" || v.Step == nil || v.Step.PC != 0 {
		t.Fatalf("nested: %+v %v", v, err)
	}
	v, err = e.Run(context.Background(), RunRequest{Name: "w"})
	if err != nil {
		t.Fatal(err)
	}
	if v.Status != StatusFailed || v.Code != "bad_args" || v.Step == nil || v.Step.PC != 0 {
		t.Fatalf("run %+v (step %+v)", v, v.Step)
	}
	if h.counter("f1") != 2 || h.counter("f2") != 1 || h.counter("after") != 0 {
		t.Fatalf("f1=%d f2=%d after=%d", h.counter("f1"), h.counter("f2"), h.counter("after"))
	}
}

// A detached start with the id of a run that ended answers that run as
// it is, not "running".
func TestDetachedStartOfAnEndedRun(t *testing.T) {
	h := newFakeHost()
	e := newEngine(t, h, map[string]string{"w.yaml": "steps: [{process: add, args: {key: d}}]\n"})
	ctx := context.Background()
	if v, err := e.Run(ctx, RunRequest{Name: "w", ID: "d1"}); err != nil || v.Status != StatusComplete {
		t.Fatalf("%+v %v", v, err)
	}
	v, err := e.Run(ctx, RunRequest{Name: "w", ID: "d1", Detach: true})
	if err != nil || v.Status != StatusComplete || h.counter("d") != 1 {
		t.Fatalf("detached start of an ended run: %+v %v, d=%d", v, err, h.counter("d"))
	}
}

// The status of a failed run of a file names the step it failed at
// without loading the file again (a file may be 1 MiB: loads are
// admitted one at a time, and status is not one).
func TestStatusOfAFailedFileRunDoesNotLoadIt(t *testing.T) {
	h := newFakeHost()
	e := newEngine(t, h, nil)
	v, err := e.Run(context.Background(), RunRequest{File: "f.yaml", Source: "steps:\n  - process: add\n    args: {}\n"})
	if err != nil || v.Status != StatusFailed || v.Step == nil || v.Step.Pos != "f.yaml:2:5" {
		t.Fatalf("%+v %v", v, err)
	}
	before := h.known.Load()
	v, err = e.Status(v.Run)
	if err != nil || v.Step == nil || v.Step.Pos != "f.yaml:2:5" || v.Step.Process != "add" {
		t.Fatalf("status: %+v %v", v, err)
	}
	if n := h.known.Load() - before; n != 0 {
		t.Fatalf("status loaded the file again (%d process look-ups)", n)
	}
}

// Runs stopped by Close resume at the next Start over the same state: a
// run of a loaded workflow whose file changed fails with flux_changed;
// a run of a file sent with it (its source kept) resumes and completes,
// no step applied twice.
func TestResumeAfterClose(t *testing.T) {
	h := newFakeHost()
	two := "steps: [{process: add, args: {key: a}}, {process: add, args: {key: a}}]\n"
	gate := make(chan struct{})
	h.after = func(ctx context.Context, _ Call) error {
		select { // the first step committed: hold the run until Close
		case <-gate:
			return nil
		case <-ctx.Done():
			return failf("canceled", "%v", ctx.Err())
		}
	}
	e := newEngine(t, h, map[string]string{"w.yaml": two})
	ctx := context.Background()
	for _, req := range []RunRequest{{Name: "w", ID: "named", Detach: true}, {File: "f.yaml", Source: two, ID: "file", Detach: true}} {
		if _, err := e.Run(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "both runs made their first step", func() bool { return h.counter("a") == 2 })
	e.Close()
	for _, id := range []string{"named", "file"} {
		if v, err := e.Status(id); err != nil || v.Status != StatusRunning || len(v.Steps) != 1 {
			t.Fatalf("%s after Close: %+v %v", id, v, err)
		}
	}
	close(gate)
	e2 := newEngine(t, h, map[string]string{"w.yaml": two + "# changed\n"})
	v, err := e2.Wait(ctx, "named")
	if err != nil || v.Status != StatusFailed || v.Code != CodeChanged {
		t.Fatalf("named after its file changed: %+v %v", v, err)
	}
	v, err = e2.Wait(ctx, "file")
	if err != nil || v.Status != StatusComplete || len(v.Steps) != 2 {
		t.Fatalf("file run resumed: %+v %v", v, err)
	}
	if n := h.counter("a"); n != 3 {
		t.Fatalf("a = %d, want 3 (2 first steps, 1 second)", n)
	}
}
