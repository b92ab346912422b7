package flux

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
)

// DefaultMaxOps bounds the steps a run visits when the request does not.
const DefaultMaxOps = 10000

// stepRetries is how many times a step that failed for a transient
// reason (its worker crashed, its conflicts ran out) is run again; the
// step's op id makes a rerun of a step that did commit a no-op.
const stepRetries = 5

// move stops the run here: this engine no longer owns it (a commit was
// fenced), and the machine it is the entry run of stops too.
func (r *run) move() error {
	r.cancel(errMoved)
	if r.h.Machine != "" {
		r.e.mu.Lock()
		m := r.e.machines[r.h.Machine]
		r.e.mu.Unlock()
		if m != nil {
			m.cancel(errMoved)
		}
	}
	return errMoved
}

// transient reports whether a step failing with code may succeed if run
// again.
func transient(code string) bool {
	return code == "worker_crashed" || code == "retry_limit"
}

// run is one live run: the goroutine that interprets its program.
type run struct {
	e     *Engine
	h     *head
	prog  *Program
	src   *File // the file the program comes from (for positions)
	args  map[string]any
	steps []step // the history, as committed

	// claim is the engine's ownership of the run's unit: each commit is
	// fenced with it; end fences the run's last commit (its Claim's End
	// for a unit that ends with the run).
	claim *Claim
	end   cas.Fence
	unit  string // unitOf(h), fixed: h is the run goroutine's

	ctx    context.Context
	cancel context.CancelCauseFunc
	done   chan struct{} // closed when the goroutine returns
	events *feed         // watch subscribers

	latch  []Signal // signals since the previous step
	sigs   <-chan Signal
	unsub  func()
	lagged uint64
}

// errCancelled is the cause of a run's context when flux.cancel stops it;
// errStopped when the engine closes (the run resumes at the next start).
var (
	errCancelled = errors.New("flux: run cancelled")
	errStopped   = errors.New("flux: engine stopped")
)

func (r *run) loop() {
	defer close(r.done)
	defer r.unsub()
	err := r.interpret()
	var f *Failure
	switch {
	case err == nil:
		r.finish(StatusComplete, nil, -1)
	case errors.Is(context.Cause(r.ctx), errStopped):
		// The engine is closing: the run stays as committed and resumes
		// at the next start.
		r.events.close()
		return
	case errors.Is(context.Cause(r.ctx), errMoved):
		// Another engine owns it now and resumes it from what it
		// committed.
		r.events.close()
		r.e.ended(r)
		return
	case errors.Is(context.Cause(r.ctx), errCancelled):
		r.finish(StatusCancelled, failf(CodeCancelled, "cancelled at step %d", r.h.PC), r.h.PC)
	case errors.As(err, &f):
		r.finish(StatusFailed, f, r.h.ErrorPC)
	default:
		r.finish(StatusFailed, failf("internal", "%v", err), r.h.PC)
	}
}

// finish commits the run's end. If the commit fails (the supervisor is
// going down), the run resumes at the next start and ends again there.
func (r *run) finish(status string, f *Failure, pc int) {
	h := *r.h
	h.Status, h.Error, h.ErrorPC, h.Updated = status, f, pc, time.Now().UnixMilli()
	if f != nil && pc >= 0 && pc < len(r.prog.Instrs) {
		in := r.prog.Instrs[pc]
		h.ErrorStep = &StepRef{PC: pc, Kind: in.Kind, Process: in.Process, Pos: in.Pos.String()}
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), 30*time.Second)
	defer cancel()
	if _, err := r.e.host.Commit(ctx, h.records(nil), r.end); err != nil {
		r.events.close()
		if fenced(err) {
			r.move()
			r.e.ended(r)
			return
		}
		r.e.log("flux: run %s: cannot record its end (%s): %v", h.ID, status, err)
		return
	}
	r.h = &h
	r.events.publish(r.endEvent())
	r.events.close()
	r.e.ended(r)
}

func (r *run) endEvent() map[string]any {
	ev := map[string]any{"event": "end", "run": r.h.ID, "status": r.h.Status, "ops": r.h.Ops}
	if r.h.Error != nil {
		ev["code"], ev["error"] = r.h.Error.Code, r.h.Error.Message
	}
	return ev
}

// interpret runs the program from the head's position to its end.
func (r *run) interpret() error {
	instrs := r.prog.Instrs
	for r.h.PC < len(instrs) {
		if err := context.Cause(r.ctx); err != nil && r.ctx.Err() != nil {
			return err
		}
		if r.h.Deadline > 0 && time.Now().UnixMilli() >= r.h.Deadline {
			r.h.ErrorPC = r.h.PC
			return failf(CodeTimeout, "the run's deadline passed at step %d (%s)", r.h.PC, instrs[r.h.PC].Pos)
		}
		in := &instrs[r.h.PC]
		if counts(in.Op) {
			r.h.Ops++
			if r.h.Ops > r.h.MaxOps {
				r.h.ErrorPC = r.h.PC
				return failf(CodeMaxOps, "the run visited %d steps, over its max_ops of %d, at the %s step at %s", r.h.Ops, r.h.MaxOps, in.Kind, in.Pos)
			}
		}
		var err error
		switch in.Op {
		case OpProcess:
			err = r.process(in)
		case OpBranch:
			env, release := r.env()
			var ok bool
			ok, err = in.Cond.Truth(env)
			release()
			if err != nil {
				r.h.ErrorPC = r.h.PC
				return failf(CodeCondition, "%v", err)
			}
			if ok {
				r.h.PC++
			} else {
				r.h.PC = in.Target
			}
		case OpJump:
			r.h.PC = in.Target
		case OpEnter:
			r.h.PC++
		case OpWait:
			err = r.wait(in)
		case OpFail:
			r.h.ErrorPC = in.Target
			return r.failure(in.Target)
		default:
			return fmt.Errorf("flux: unknown instruction %d at %d", in.Op, r.h.PC)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// failure is the error of the newest failure of the process step at pc:
// the step whose on_fail block ends, without continue, here. It is in the
// history (committed with the jump into the block), so that steps of the
// block, and failures inside it that continued, do not hide it.
func (r *run) failure(pc int) error {
	for i := len(r.steps) - 1; i >= 0; i-- {
		if s := r.steps[i]; s.PC == pc && s.Error != nil {
			return s.Error
		}
	}
	return failf("internal", "an on_fail block ended without the failure of the step at %d that started it", pc)
}

func counts(op Op) bool { return op != OpJump && op != OpFail }

// env is what a condition sees now; release frees the snapshot it read,
// once the evaluation is over.
func (r *run) env() (env *Env, release func()) {
	r.drain()
	var snap *cas.Snapshot
	layer := func(name string) func() (map[string]any, error) {
		return func() (map[string]any, error) {
			if snap == nil {
				var err error
				if snap, err = r.e.read(r.ctx, "domain", "global"); err != nil {
					return nil, err
				}
			}
			var entries []Entry
			for _, e := range snap.Subtree(contract.Path(name)) {
				entries = append(entries, Entry{Path: string(e.Path), Value: e.Value})
			}
			return Tree(name, entries)
		}
	}
	env = &Env{Domain: layer("domain"), Global: layer("global"), Args: r.args, Run: RunInfo{ID: r.h.ID, Ops: r.h.Ops}}
	var entries []Entry
	for _, s := range r.latch {
		entries = append(entries, Entry{Path: s.Path, Value: s.Value})
	}
	sig := map[string]any{}
	for _, layerName := range []string{"domain", "global"} {
		var sub []Entry
		for _, e := range entries {
			if strings.HasPrefix(e.Path, layerName+".") {
				sub = append(sub, e)
			}
		}
		if len(sub) > 0 {
			t, err := Tree(layerName, sub)
			if err == nil {
				sig[layerName] = t
			}
		}
	}
	env.Signal = sig
	return env, func() {
		if snap != nil {
			snap.Release()
		}
	}
}

// drain moves the signals that arrived into the latch.
func (r *run) drain() {
	for {
		select {
		case s, ok := <-r.sigs:
			if !ok {
				return
			}
			r.take(s)
		default:
			return
		}
	}
}

func (r *run) take(s Signal) {
	if s.Lagged > 0 {
		r.lagged += s.Lagged
		return
	}
	r.latch = append(r.latch, s)
	if len(r.latch) > maxLatch {
		r.latch = r.latch[len(r.latch)-maxLatch:]
		r.lagged++
	}
}

// maxLatch bounds the signals a run holds between two steps.
const maxLatch = 4096

// clearLatch forgets the signals committed at or before version v: the
// step that committed at v is the run's new "previous step".
func (r *run) clearLatch(v uint64) {
	r.drain()
	kept := r.latch[:0]
	for _, s := range r.latch {
		if s.Version > v {
			kept = append(kept, s)
		}
	}
	r.latch = kept
}

// process runs a process step: one transaction that commits the step's
// delta, the run's new head and its history entry together.
func (r *run) process(in *Instr) error {
	pc := r.h.PC
	env, release := r.env()
	args, err := in.EvalArgs(env)
	release()
	if err != nil {
		r.h.ErrorPC = pc
		return failf(CodeCondition, "args of %s: %v", in.Process, err)
	}
	r.events.publish(map[string]any{"event": "step", "state": "started", "run": r.h.ID, "pc": pc, "process": in.Process, "pos": in.Pos.String()})
	opID := r.h.ID + "." + strconv.Itoa(r.h.Steps)
	var done Done
	var f *Failure
	for try := 0; ; try++ {
		ctx, cancel := r.stepContext()
		done, err = r.e.host.Exec(ctx, Call{
			Process: in.Process, Args: args, OpID: opID, Fence: r.claim.Fence,
			System: func(attempt int) cas.Delta {
				h := *r.h
				h.PC, h.Steps, h.Status, h.Updated = pc+1, r.h.Steps+1, StatusRunning, time.Now().UnixMilli()
				return h.records(&step{PC: pc, Process: in.Process, Attempts: attempt})
			},
		})
		cancel()
		if fenced(err) {
			return r.move()
		}
		if err != nil {
			if d, ok := r.landed(pc); ok {
				done, err = d, nil
			}
		}
		if err == nil {
			break
		}
		if r.ctx.Err() != nil {
			return context.Cause(r.ctx)
		}
		f = asFailure(err)
		if f.Code == "shutting_down" {
			// The supervisor drains: the engine stops this run next, and
			// it resumes at the next start. It has not failed.
			<-r.ctx.Done()
			return context.Cause(r.ctx)
		}
		if f.Code == "timeout" && r.h.Deadline > 0 && time.Now().UnixMilli() >= r.h.Deadline {
			f = failf(CodeTimeout, "the run's deadline passed during %s at %s", in.Process, in.Pos)
		}
		if !transient(f.Code) || try >= stepRetries {
			break
		}
		r.e.log("flux: run %s: step %s at %s failed (%s); running it again", r.h.ID, in.Process, in.Pos, f.Code)
		select {
		case <-time.After(time.Duration(50<<try) * time.Millisecond):
		case <-r.ctx.Done():
			return context.Cause(r.ctx)
		}
	}
	if err == nil {
		r.h.PC, r.h.Steps, r.h.Status = pc+1, r.h.Steps+1, StatusRunning
		r.steps = append(r.steps, step{PC: pc, Process: in.Process, Attempts: done.Attempts, Version: done.Version})
		r.clearLatch(done.Version)
		r.events.publish(map[string]any{"event": "step", "state": "finished", "run": r.h.ID, "pc": pc, "process": in.Process, "version": done.Version, "attempts": done.Attempts})
		return nil
	}
	r.events.publish(map[string]any{"event": "step", "state": "failed", "run": r.h.ID, "pc": pc, "process": in.Process, "code": f.Code, "error": f.Message})
	if in.OnFail < 0 {
		r.h.ErrorPC = pc
		return f
	}
	// The failed step committed nothing; its failure and the jump into
	// the on_fail block are committed together, so that a crash now does
	// not run the step again.
	h := *r.h
	h.PC, h.Steps, h.Updated = in.OnFail, r.h.Steps+1, time.Now().UnixMilli()
	st := step{PC: pc, Process: in.Process, Error: f}
	v, err := r.e.host.Commit(context.WithoutCancel(r.ctx), h.records(&st), r.claim.Fence)
	if fenced(err) {
		return r.move()
	}
	if err != nil {
		return fmt.Errorf("flux: run %s: recording the failure of %s: %w", r.h.ID, in.Process, err)
	}
	st.Version = v
	r.h = &h
	r.steps = append(r.steps, st)
	return nil
}

// landed reports whether the step at pc committed although Exec reported
// an error: the reply, not the commit, was lost (a deadline or a cancel
// during the wait for the disk). The run's record, in the same
// transaction as the step, says which; a step that committed is not
// failed (no on_fail for it) and the run's head counts it.
func (r *run) landed(pc int) (Done, bool) {
	snap, err := r.e.read(context.Background(), runPaths(r.h.ID)[:2]...)
	if err != nil {
		return Done{}, false
	}
	defer snap.Release()
	h, _, ok, err := readHead(snap, r.h.ID)
	if err != nil || !ok || h.Steps <= r.h.Steps {
		return Done{}, false
	}
	// The history is a LOG: its entries are numbered from 0, one a step.
	ent, ok := snap.Get(cas.EntryPath(path(historyRoot, r.h.ID), uint64(r.h.Steps)))
	if !ok {
		return Done{}, false
	}
	var st step
	if json.Unmarshal(ent.Value, &st) != nil || st.PC != pc || st.Error != nil {
		return Done{}, false
	}
	return Done{Version: uint64(ent.Version), Attempts: st.Attempts}, true
}

// stepContext bounds a step by the run's deadline.
func (r *run) stepContext() (context.Context, context.CancelFunc) {
	if r.h.Deadline > 0 {
		return context.WithDeadline(r.ctx, time.UnixMilli(r.h.Deadline))
	}
	return context.WithCancel(r.ctx)
}

// asFailure gives err a code.
func asFailure(err error) *Failure {
	var f *Failure
	if errors.As(err, &f) {
		return f
	}
	return &Failure{Code: "internal", Message: err.Error()}
}

// wait parks the run until a signal at or under in.Signal arrives (one
// committed since the previous step counts), or in.Timeout passes.
func (r *run) wait(in *Instr) error {
	pc := r.h.PC
	match := func(s Signal) bool { return s.Path == in.Signal || strings.HasPrefix(s.Path, in.Signal+".") }
	r.drain()
	for _, s := range r.latch {
		if match(s) {
			r.h.PC++
			return nil
		}
	}
	h := *r.h
	h.Status, h.Updated = StatusWaiting, time.Now().UnixMilli()
	if _, err := r.e.host.Commit(context.WithoutCancel(r.ctx), h.records(nil), r.claim.Fence); err != nil {
		if fenced(err) {
			return r.move()
		}
		return fmt.Errorf("flux: run %s: recording its wait: %w", r.h.ID, err)
	}
	r.h = &h
	r.events.publish(map[string]any{"event": "wait", "run": r.h.ID, "pc": pc, "signal": in.Signal})
	var timeout <-chan time.Time
	if in.Timeout > 0 {
		t := time.NewTimer(in.Timeout)
		defer t.Stop()
		timeout = t.C
	}
	var deadline <-chan time.Time
	if r.h.Deadline > 0 {
		t := time.NewTimer(time.Until(time.UnixMilli(r.h.Deadline)))
		defer t.Stop()
		deadline = t.C
	}
	for {
		select {
		case s, ok := <-r.sigs:
			if !ok {
				return fmt.Errorf("flux: run %s: the signal feed ended", r.h.ID)
			}
			r.take(s)
			if s.Lagged > 0 || !match(s) {
				continue
			}
			h := *r.h
			h.Status, h.PC, h.Updated = StatusRunning, pc+1, time.Now().UnixMilli()
			if _, err := r.e.host.Commit(context.WithoutCancel(r.ctx), h.records(nil), r.claim.Fence); err != nil {
				if fenced(err) {
					return r.move()
				}
				return fmt.Errorf("flux: run %s: recording the end of its wait: %w", r.h.ID, err)
			}
			r.h = &h
			return nil
		case <-timeout:
			r.h.ErrorPC = pc
			return failf(CodeTimeout, "no signal at %s within %s (wait at %s)", in.Signal, in.Timeout, in.Pos)
		case <-deadline:
			r.h.ErrorPC = pc
			return failf(CodeTimeout, "the run's deadline passed while it waited for %s at %s", in.Signal, in.Pos)
		case <-r.ctx.Done():
			return context.Cause(r.ctx)
		}
	}
}

// decodeArgs decodes a run's args (a JSON object, or empty).
func decodeArgs(b []byte) (map[string]any, error) {
	if len(b) == 0 {
		return map[string]any{}, nil
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, failf(CodeBadRequest, "args: want a JSON object: %v", err)
	}
	if m == nil {
		m = map[string]any{}
	}
	return m, nil
}
