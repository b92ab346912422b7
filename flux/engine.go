package flux

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/internal/golabel"
)

// Engine runs workflows and machines for a supervisor: it holds the
// loaded files, the live runs (one goroutine each, owned by the engine and
// stopped by Close) and the live machines, and keeps every record in the
// Context through its Host.
type Engine struct {
	host Host
	logf func(format string, args ...any)

	files map[string]*loaded // by name
	// loads admits one load of a client's file at a time: a hostile file
	// at the size limit costs go-yaml hundreds of MiB for a moment.
	loads chan struct{}

	// owners is the host's Owners, when other engines share its Context.
	owners Owners
	quit   chan struct{} // closed by Close: ends the ownership watch

	mu        sync.Mutex
	runs      map[string]*run     // live runs
	machines  map[string]*machine // live machines
	closed    bool
	stopWatch func() // ends the Owners watch; nil without one
	wg        sync.WaitGroup
}

// loaded is a file with its source's hash.
type loaded struct {
	*File
	hash string
}

// Config describes an Engine.
type Config struct {
	Host Host
	// Dir holds the workflow and machine files (*.yaml, *.yml); "" for
	// none.
	Dir string
	// Log receives what the engine has to say (a step run again, a record
	// it could not write); nil discards it.
	Log func(format string, args ...any)
}

// New loads cfg.Dir's files, checked against the host's processes. An
// invalid file is a *LoadError naming every problem with file:line:col.
func New(cfg Config) (*Engine, error) {
	e := &Engine{host: cfg.Host, logf: cfg.Log, files: map[string]*loaded{}, runs: map[string]*run{}, machines: map[string]*machine{}, loads: make(chan struct{}, 1), quit: make(chan struct{})}
	e.owners, _ = cfg.Host.(Owners)
	if cfg.Dir == "" {
		return e, nil
	}
	files, err := LoadDir(cfg.Dir, cfg.Host.Known)
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		src, err := os.ReadFile(f.Path)
		if err != nil {
			return nil, fmt.Errorf("flux: %w", err)
		}
		e.files[f.Name] = &loaded{File: f, hash: hash(src)}
	}
	return e, nil
}

func hash(src []byte) string {
	h := sha256.Sum256(src)
	return hex.EncodeToString(h[:])
}

func (e *Engine) log(format string, args ...any) {
	if e.logf != nil {
		e.logf(format, args...)
	}
}

// Start resumes every run and machine the Context says was live. With
// Owners, it resumes those it claims (other engines run the rest) and,
// until Close, takes over every unit whose owner goes away.
func (e *Engine) Start() error {
	if e.owners != nil {
		changes, stop := e.owners.Watch() // first: a unit orphaned during the scan is reported
		e.mu.Lock()
		if e.closed {
			e.mu.Unlock()
			stop()
			return nil
		}
		e.stopWatch = stop
		e.wg.Go(func() {
			golabel.Set(golabel.Flux, -1)
			e.keep(changes)
		})
		e.mu.Unlock()
	}
	return e.scan()
}

// prepare makes a live run from its head: it finds its program (loaded,
// or the source committed with it) and reads its history.
func (e *Engine) prepare(snap *cas.Snapshot, h *head) (*run, error) {
	prog, file, err := e.program(snap, h)
	if err != nil {
		return nil, err
	}
	args, err := decodeArgs(h.Args)
	if err != nil {
		return nil, err
	}
	steps, err := readHistory(snap, h.ID)
	if err != nil {
		return nil, err
	}
	return e.newRun(h, prog, file, args, steps), nil
}

func (e *Engine) program(snap *cas.Snapshot, h *head) (*Program, *File, error) {
	name, state, _ := strings.Cut(h.Flow, "#")
	if h.File != "" {
		ent, ok := snap.Get(path(sourceRoot, h.ID))
		if !ok {
			return nil, nil, failf(CodeChanged, "the source of run %s is gone", h.ID)
		}
		f, err := Load(h.File, ent.Value, e.host.Known)
		if err != nil {
			return nil, nil, failf(CodeChanged, "%s no longer loads: %v", h.File, err)
		}
		if f.Kind != KindWorkflow {
			return nil, nil, failf(CodeChanged, "%s is not a workflow", h.File)
		}
		return f.Workflow, f, nil
	}
	l, ok := e.files[name]
	if !ok {
		return nil, nil, failf(CodeChanged, "workflow %s is not loaded any more", name)
	}
	if l.hash != h.Hash {
		return nil, nil, failf(CodeChanged, "%s changed since run %s started (its steps are not the ones the run was at)", l.Path, h.ID)
	}
	if state == "" {
		if l.Kind != KindWorkflow {
			return nil, nil, failf(CodeChanged, "%s is not a workflow", l.Path)
		}
		return l.Workflow, l.File, nil
	}
	if l.Kind != KindMachine || l.Machine.State(state) == nil || l.Machine.State(state).Entry == nil {
		return nil, nil, failf(CodeChanged, "%s has no state %s with an entry block", l.Path, state)
	}
	return l.Machine.State(state).Entry, l.File, nil
}

func (e *Engine) newRun(h *head, prog *Program, file *File, args map[string]any, steps []step) *run {
	r := &run{e: e, h: h, unit: unitOf(h), prog: prog, src: file, args: args, steps: steps, done: make(chan struct{}), events: newFeed()}
	r.ctx, r.cancel = context.WithCancelCause(context.Background())
	return r
}

// launch starts r's goroutine, unless the engine is closed.
func (e *Engine) launch(r *run) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return false
	}
	e.spawn(r)
	return true
}

// spawn starts r's goroutine; e.mu is held.
func (e *Engine) spawn(r *run) {
	r.sigs, r.unsub = e.host.Signals()
	e.runs[r.h.ID] = r
	labels := golabel.Named(golabel.FluxRun, r.h.ID) // not the labels of the caller, a client's connection
	e.wg.Go(func() {
		labels.Set()
		r.loop()
	})
	e.watchLost(r.claim, r.cancel, r.done)
}

// ended forgets a run that finished.
func (e *Engine) ended(r *run) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.runs[r.h.ID] == r {
		delete(e.runs, r.h.ID)
	}
}

// Close stops every run and machine where it is (each resumes at the next
// Start from what it committed) and waits for them.
func (e *Engine) Close() {
	e.mu.Lock()
	if !e.closed {
		close(e.quit)
	}
	e.closed = true
	stop := e.stopWatch
	for _, r := range e.runs {
		r.cancel(errStopped)
	}
	for _, m := range e.machines {
		m.cancel(errStopped)
	}
	e.mu.Unlock()
	if stop != nil {
		stop()
	}
	e.wg.Wait()
}

// RunRequest asks for a run.
type RunRequest struct {
	Name   string          `json:"name,omitempty"`   // a loaded workflow
	File   string          `json:"file,omitempty"`   // or a file's name and its source
	Source string          `json:"source,omitempty"` // (run once; not loaded)
	Args   json.RawMessage `json:"args,omitempty"`
	ID     string          `json:"id,omitempty"` // makes the start idempotent
	MaxOps int             `json:"max_ops,omitempty"`
	// TimeoutMS is the run's deadline from its start; 0 for none.
	TimeoutMS int64 `json:"timeout_ms,omitempty"`
	Detach    bool  `json:"detach,omitempty"` // answer at once, with the run's id
}

// MaxTimeoutMS bounds a run's timeout_ms (2^53 ms, some 285000 years):
// the deadline, its start plus the timeout, cannot overflow.
const MaxTimeoutMS = 1 << 53

// MaxSource bounds a file sent to run or validate.
const MaxSource = 1 << 20

// Run starts a run (or finds the one with req.ID) and, unless req.Detach,
// waits for it to end or for ctx. It returns the run's view.
func (e *Engine) Run(ctx context.Context, req RunRequest) (*RunView, error) {
	r, err := e.start(req)
	if err != nil {
		return nil, err
	}
	if req.Detach {
		return e.Status(r) // as committed: a start with the id of a run that ended is that run
	}
	return e.Wait(ctx, r)
}

// start starts the run req asks for and returns its id.
func (e *Engine) start(req RunRequest) (string, error) {
	if (req.Name == "") == (req.Source == "") {
		return "", failf(CodeBadRequest, "give a workflow name or a file's source, not both or neither")
	}
	if req.MaxOps < 0 || req.TimeoutMS < 0 {
		return "", failf(CodeBadRequest, "max_ops and timeout_ms: want 0 (the default) or more")
	}
	if req.TimeoutMS > MaxTimeoutMS {
		return "", failf(CodeBadRequest, "timeout_ms %d: want at most %d", req.TimeoutMS, int64(MaxTimeoutMS))
	}
	args, err := decodeArgs(req.Args)
	if err != nil {
		return "", err
	}
	h := &head{ID: req.ID, Args: req.Args, Status: StatusRunning, MaxOps: req.MaxOps, Started: time.Now().UnixMilli()}
	if len(h.Args) == 0 {
		h.Args = json.RawMessage("{}")
	}
	if h.MaxOps == 0 {
		h.MaxOps = DefaultMaxOps
	}
	if req.TimeoutMS > 0 {
		h.Deadline = h.Started + req.TimeoutMS
	}
	h.Updated = h.Started
	var prog *Program
	var file *File
	var sys cas.Delta
	if req.Name != "" {
		l, ok := e.files[req.Name]
		if !ok {
			return "", failf(CodeNotFound, "no workflow %q; loaded: %s", req.Name, e.names(KindWorkflow))
		}
		if l.Kind != KindWorkflow {
			return "", failf(CodeBadRequest, "%s is a state machine: start it with fsm start", req.Name)
		}
		prog, file, h.Flow, h.Hash = l.Workflow, l.File, req.Name, l.hash
	} else {
		if len(req.Source) > MaxSource {
			return "", failf(CodeBadRequest, "the file is %d bytes, over %d", len(req.Source), MaxSource)
		}
		name := req.File
		if name == "" {
			name = "workflow.yaml"
		}
		e.loads <- struct{}{}
		f, err := Load(name, []byte(req.Source), e.host.Known)
		<-e.loads
		if err != nil {
			return "", failf(CodeBadRequest, "%v", err)
		}
		if f.Kind != KindWorkflow {
			return "", failf(CodeBadRequest, "%s is a state machine, not a workflow", name)
		}
		prog, file, h.Flow, h.File, h.Hash = f.Workflow, f, f.Name, name, hash([]byte(req.Source))
	}
	e.mu.Lock()
	defer e.mu.Unlock() // starts are serialized: two with one id cannot both begin
	if e.closed {
		return "", failf("shutting_down", "the supervisor is shutting down")
	}
	if h.ID == "" {
		h.ID = newID("r")
	} else if err := checkID(h.ID); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	if req.ID != "" {
		if known, err := e.startedAs(ctx, h); known || err != nil {
			return h.ID, err
		}
	}
	// The unit's owner key comes before its first record: only the owner
	// commits for it.
	c, err := e.claim(ctx, runUnit(h.ID))
	if errors.Is(err, ErrOwned) {
		return "", failf(CodeExists, "run id %s is being started through another supervisor", h.ID)
	}
	if err != nil {
		return "", err
	}
	if req.ID != "" { // started and ended elsewhere between the read and the claim?
		if known, err := e.startedAs(ctx, h); known || err != nil {
			e.release(c)
			return h.ID, err
		}
	}
	if req.Source != "" {
		sys.Set(path(sourceRoot, h.ID), []byte(req.Source))
	}
	sys = append(sys, h.records(nil)...)
	if _, err := e.host.Commit(ctx, sys, c.Fence); err != nil {
		e.release(c)
		return "", err
	}
	r := e.newRun(h, prog, file, args, nil)
	r.claim, r.end = c, c.End
	e.spawn(r)
	return h.ID, nil
}

// startedAs reports whether run h.ID is on record: the same start again
// (the first one's run), or a CodeExists failure when it was another's.
func (e *Engine) startedAs(ctx context.Context, h *head) (bool, error) {
	snap, err := e.read(ctx, path(runRoot, h.ID))
	if err != nil {
		return false, err
	}
	old, _, ok, err := readHead(snap, h.ID)
	snap.Release()
	if err != nil || !ok {
		return false, err
	}
	if old.Flow != h.Flow || old.Hash != h.Hash || !sameJSON(old.Args, h.Args) {
		return true, failf(CodeExists, "run id %s was used for another run (%s with args %s)", h.ID, old.Flow, old.Args)
	}
	return true, nil
}

func sameJSON(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return string(a) == string(b)
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return string(xa) == string(ya)
}

func newID(prefix string) string {
	var b [8]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

func (e *Engine) names(k Kind) string {
	var out []string
	for n, l := range e.files {
		if l.Kind == k {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return "none"
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// Wait waits for run id to end, or for ctx, and returns its view. With
// Owners, a run that another engine runs (or will, once it takes it
// over) is waited for by reading its record every pollEvery.
func (e *Engine) Wait(ctx context.Context, id string) (*RunView, error) {
	var v *RunView
	err := pollUntil(ctx, func() (bool, error) {
		e.mu.Lock()
		r := e.runs[id]
		e.mu.Unlock()
		if r != nil {
			select {
			case <-r.done:
			case <-ctx.Done():
				return false, ctx.Err()
			}
		}
		var err error
		v, err = e.status(ctx, id)
		return err != nil || terminal(v.Status) || !e.remote(), err
	})
	if err != nil {
		return nil, err
	}
	return v, nil
}

// Cancel stops a live run: it ends cancelled, with the steps it committed
// kept. With Owners, a run that another engine runs is taken from it
// first (its commits are fenced from then on) and cancelled here.
func (e *Engine) Cancel(ctx context.Context, id string) (*RunView, error) {
	e.mu.Lock()
	r := e.runs[id]
	e.mu.Unlock()
	if r == nil && e.remote() {
		var err error
		if r, err = e.takeRun(ctx, id); err != nil {
			return nil, err
		}
	}
	v, err := e.cancelLocal(ctx, id, r)
	if err != nil || r == nil || !e.remote() || terminal(v.Status) {
		return v, err
	}
	// r was a stale copy: another supervisor took its unit, and r's
	// cancel was fenced (it stopped, the run lives on there). Take the
	// unit back, once, and cancel the run here.
	if r, err = e.takeRun(ctx, id); err != nil {
		return nil, err
	}
	return e.cancelLocal(ctx, id, r)
}

// takeRun takes the unit of run id from whichever supervisor owns it,
// resuming it here, and returns the run (nil if it has ended).
func (e *Engine) takeRun(ctx context.Context, id string) (*run, error) {
	v, err := e.status(ctx, id)
	if err != nil {
		return nil, err
	}
	if terminal(v.Status) {
		return nil, nil
	}
	unit := runUnit(id)
	if v.Machine != "" {
		unit = machineUnit(v.Machine)
	}
	if err := e.takeFrom(ctx, unit); err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.runs[id], nil
}

// cancelLocal cancels r, run id of this engine (nil: none here).
func (e *Engine) cancelLocal(ctx context.Context, id string, r *run) (*RunView, error) {
	if r == nil {
		v, err := e.status(ctx, id)
		if err != nil {
			return nil, err
		}
		return nil, failf(CodeBadRequest, "run %s is %s, not running", id, v.Status)
	}
	r.cancel(errCancelled)
	select {
	case <-r.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return e.status(ctx, id)
}

// Watch sends run (or machine) id's events (steps started and finished,
// waits, transitions, its end) until it ends or ctx does. One that has
// ended sends its end; a watcher always gets an end or an error.
func (e *Engine) Watch(ctx context.Context, id string, send func(any) error) error {
	e.mu.Lock()
	r, m := e.runs[id], e.machines[id]
	var f *feed
	switch {
	case m != nil:
		f = m.events
	case r != nil:
		f = r.events
	}
	var w *watcher
	ok := false
	if f != nil {
		w, ok = f.subscribe()
	}
	e.mu.Unlock()
	if ok {
		defer f.unsubscribe(w)
	forward:
		for {
			select {
			case ev, ok := <-w.c:
				if !ok {
					break forward // it stopped: its end is on record, or it resumes later
				}
				if err := send(ev); err != nil {
					return err
				}
				if ev["event"] == "end" {
					return nil
				}
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	if r == nil {
		if mv, err := e.machineStatus(ctx, id); err == nil {
			if e.remote() && mv.Status != MachineFinal { // another engine runs it: its end is on record
				err = pollUntil(ctx, func() (bool, error) {
					mv, err = e.machineStatus(ctx, id)
					return err != nil || mv.Status == MachineFinal || !e.remote(), err
				})
				if err != nil {
					return err
				}
			}
			if (m != nil || e.owners != nil) && mv.Status != MachineFinal {
				return failf("shutting_down", "machine %s stopped with the supervisor", id)
			}
			return send(map[string]any{"event": "end", "machine": id, "state": mv.State, "status": mv.Status})
		}
	}
	v, err := e.Wait(ctx, id) // with Owners, until another engine ends it
	if err != nil {
		return err
	}
	if !terminal(v.Status) {
		return failf("shutting_down", "run %s stopped with the supervisor; it resumes at the next start", id)
	}
	ev := map[string]any{"event": "end", "run": id, "status": v.Status, "ops": v.Ops}
	if v.Code != "" {
		ev["code"], ev["error"] = v.Code, v.Error
	}
	return send(ev)
}

// Validate loads src as the engine would, against the host's processes,
// and returns its problems (none: it is valid).
func (e *Engine) Validate(file string, src []byte) []Problem {
	if len(src) > MaxSource {
		return []Problem{{Pos: Pos{File: file}, Msg: fmt.Sprintf("the file is %d bytes, over %d", len(src), MaxSource)}}
	}
	e.loads <- struct{}{}
	_, err := Load(file, src, e.host.Known)
	<-e.loads
	var le *LoadError
	if errors.As(err, &le) {
		return le.Problems
	}
	if err != nil {
		return []Problem{{Pos: Pos{File: file}, Msg: err.Error()}}
	}
	return nil
}

// List describes the loaded files and every run and machine on record.
func (e *Engine) List() (*ListView, error) {
	out := &ListView{Workflows: []FileView{}, Runs: []RunSummary{}}
	for _, l := range e.files {
		kind := "workflow"
		if l.Kind == KindMachine {
			kind = "machine"
		}
		out.Workflows = append(out.Workflows, FileView{Name: l.Name, Kind: kind, File: l.Path, Title: l.Meta.Name, Description: l.Meta.Description, Version: l.Meta.Version})
	}
	slices.SortFunc(out.Workflows, func(a, b FileView) int { return strings.Compare(a.Name, b.Name) })
	snap, err := e.read(context.Background(), contract.Path(runRoot))
	if err != nil {
		return nil, err
	}
	defer snap.Release()
	heads, err := readHeads(snap)
	if err != nil {
		return nil, err
	}
	for _, h := range heads {
		out.Runs = append(out.Runs, RunSummary{Run: h.ID, Flow: h.Flow, Status: h.Status, Ops: h.Ops, Steps: h.Steps, Started: h.Started, Updated: h.Updated, Machine: h.Machine})
	}
	slices.SortFunc(out.Runs, func(a, b RunSummary) int { return int(a.Started - b.Started) })
	return out, nil
}

// Status is run id's view, from what it committed.
func (e *Engine) Status(id string) (*RunView, error) { return e.status(context.Background(), id) }

// status is Status, its read bounded by ctx.
func (e *Engine) status(ctx context.Context, id string) (*RunView, error) {
	if err := checkRef(id); err != nil {
		return nil, err
	}
	snap, err := e.read(ctx, runPaths(id)[:2]...)
	if err != nil {
		return nil, err
	}
	defer snap.Release()
	h, _, ok, err := readHead(snap, id)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, failf(CodeNotFound, "no run %s", id)
	}
	steps, err := readHistory(snap, id)
	if err != nil {
		return nil, err
	}
	v := &RunView{Run: h.ID, Flow: h.Flow, Status: h.Status, Ops: h.Ops, Steps: []StepView{}, Machine: h.Machine}
	for _, s := range steps {
		sv := StepView{Process: s.Process, Version: s.Version, Attempts: s.Attempts}
		if s.Error != nil {
			sv.Code, sv.Error, sv.Version = s.Error.Code, s.Error.Message, 0
		} else {
			v.Version = max(v.Version, s.Version)
		}
		v.Steps = append(v.Steps, sv)
	}
	if h.Error != nil {
		v.Code, v.Error, v.Step = h.Error.Code, h.Error.Message, h.ErrorStep
	}
	return v, nil
}

// RunView is a run as the CLI and the client show it.
type RunView struct {
	Run     string     `json:"run"`
	Flow    string     `json:"flow,omitempty"`
	Status  string     `json:"status"`
	Ops     int        `json:"ops"`
	Steps   []StepView `json:"steps,omitempty"`
	Version uint64     `json:"version,omitempty"` // the newest commit a step made
	Code    string     `json:"code,omitempty"`
	Error   string     `json:"error,omitempty"`
	Step    *StepRef   `json:"step,omitempty"` // where a failed run stopped
	Machine string     `json:"machine,omitempty"`
}

// StepView is one step of a run's history.
type StepView struct {
	Process  string `json:"process"`
	Version  uint64 `json:"version"`
	Attempts int    `json:"attempts"`
	Code     string `json:"code,omitempty"` // a step that failed
	Error    string `json:"error,omitempty"`
}

// StepRef names a step of a program.
type StepRef struct {
	PC      int    `json:"pc"`
	Kind    string `json:"kind"`
	Process string `json:"process,omitempty"`
	Pos     string `json:"pos"`
}

// ListView is flux.list's answer.
type ListView struct {
	Workflows []FileView   `json:"workflows"`
	Runs      []RunSummary `json:"runs"`
}

// FileView is a loaded file.
type FileView struct {
	Name        string `json:"name"`
	Kind        string `json:"kind"`
	File        string `json:"file"`
	Title       string `json:"title,omitempty"`
	Description string `json:"description,omitempty"`
	Version     string `json:"version,omitempty"`
}

// RunSummary is a run in a list.
type RunSummary struct {
	Run     string `json:"run"`
	Flow    string `json:"flow"`
	Status  string `json:"status"`
	Ops     int    `json:"ops"`
	Steps   int    `json:"steps"`
	Started int64  `json:"started"`
	Updated int64  `json:"updated"`
	Machine string `json:"machine,omitempty"`
}
