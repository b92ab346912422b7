package flux

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/internal/golabel"
)

// Machine statuses.
const (
	MachineActive = "active" // in a state with transitions
	MachineFinal  = "final"  // in a state without any
)

// machineHead is a machine's durable state, rewritten with each
// transition.
type machineHead struct {
	ID       string          `json:"id"`
	Machine  string          `json:"machine"`
	Hash     string          `json:"hash"`
	Args     json.RawMessage `json:"args"`
	State    string          `json:"state"`
	Seq      int             `json:"seq"`                 // transitions so far
	EntryRun string          `json:"entry_run,omitempty"` // the run of the state's entry block
	Status   string          `json:"status"`
	Started  int64           `json:"started"`
	Updated  int64           `json:"updated"`
}

// transition is one machine history entry.
type transition struct {
	From     string `json:"from"`
	Event    string `json:"event"`
	To       string `json:"to"`
	EntryRun string `json:"entry_run,omitempty"`
	Version  uint64 `json:"-"`
}

func (h *machineHead) records(t *transition) cas.Delta {
	var d cas.Delta
	b, _ := json.Marshal(h) // plain data
	d.Set(path(fsmRoot, h.ID), b)
	if t != nil {
		tb, _ := json.Marshal(t)
		d.Append(path(fsmHistRoot, h.ID), tb)
	}
	return d
}

func readMachines(snap *cas.Snapshot) ([]*machineHead, error) {
	var out []*machineHead
	for _, e := range snap.Subtree(contract.Path(fsmRoot)) {
		var h machineHead
		if err := json.Unmarshal(e.Value, &h); err != nil {
			return nil, fmt.Errorf("flux: %s: %w", e.Path, err)
		}
		out = append(out, &h)
	}
	return out, nil
}

// machine is a live machine: a goroutine that waits for the events of
// its state and commits each transition.
type machine struct {
	e      *Engine
	h      *machineHead
	def    *Machine
	claim  *Claim // the engine's ownership of the machine's unit
	ctx    context.Context
	cancel context.CancelCauseFunc
	done   chan struct{}
	sends  chan sendReq
	events *feed
	// sigs is subscribed before the machine's goroutine starts, so that
	// a signal committed once StartMachine returns reaches it.
	sigs  <-chan Signal
	unsub func()
}

type sendReq struct {
	event string
	reply chan error
}

// MachineRequest asks for a machine.
type MachineRequest struct {
	Name string          `json:"name"`
	ID   string          `json:"id,omitempty"`
	Args json.RawMessage `json:"args,omitempty"`
}

// StartMachine starts a machine in its initial state (running the
// state's entry block), or finds the one with req.ID.
func (e *Engine) StartMachine(ctx context.Context, req MachineRequest) (*MachineView, error) {
	l, ok := e.files[req.Name]
	if !ok || l.Kind != KindMachine {
		return nil, failf(CodeNotFound, "no state machine %q; loaded: %s", req.Name, e.names(KindMachine))
	}
	if _, err := decodeArgs(req.Args); err != nil {
		return nil, err
	}
	now := time.Now().UnixMilli()
	h := &machineHead{ID: req.ID, Machine: req.Name, Hash: l.hash, Args: req.Args, State: l.Machine.Initial, Started: now, Updated: now}
	if len(h.Args) == 0 {
		h.Args = json.RawMessage("{}")
	}
	e.mu.Lock()
	defer e.mu.Unlock() // starts are serialized: two with one id cannot both begin
	if e.closed {
		return nil, failf("shutting_down", "the supervisor is shutting down")
	}
	if h.ID == "" {
		h.ID = newID("m")
	} else if err := checkID(h.ID); err != nil {
		return nil, err
	}
	// Not the caller's ctx: a commit that lands as the client goes away
	// would leave a machine on record that nothing runs.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readTimeout)
	defer cancel()
	if req.ID != "" {
		if known, err := e.machineStartedAs(ctx, h); known || err != nil {
			return e.machineView(ctx, h.ID, err)
		}
	}
	c, err := e.claim(ctx, machineUnit(h.ID))
	if errors.Is(err, ErrOwned) {
		return nil, failf(CodeExists, "machine id %s is being started through another supervisor", h.ID)
	}
	if err != nil {
		return nil, err
	}
	if req.ID != "" {
		if known, err := e.machineStartedAs(ctx, h); known || err != nil {
			e.release(c)
			return e.machineView(ctx, h.ID, err)
		}
	}
	sys, r := e.enter(h, l, l.Machine.Initial, nil)
	fence := c.Fence
	if h.Status == MachineFinal && r == nil {
		fence = c.End // an initial state that is final: the machine ends here
	}
	if _, err := e.host.Commit(ctx, sys, fence); err != nil {
		e.release(c)
		return nil, err
	}
	m := e.newMachine(h, l.Machine, c)
	if r != nil {
		r.claim, r.end = c, c.Fence
		if h.Status == MachineFinal {
			r.end = c.End
		}
		e.spawn(r)
	}
	e.spawnMachine(m)
	return e.machineView(ctx, h.ID, nil)
}

// machineView is machine id's view, unless err.
func (e *Engine) machineView(ctx context.Context, id string, err error) (*MachineView, error) {
	if err != nil {
		return nil, err
	}
	return e.machineStatus(ctx, id)
}

// machineStartedAs reports whether machine h.ID is on record: the same
// start again, or a CodeExists failure when it was another's.
func (e *Engine) machineStartedAs(ctx context.Context, h *machineHead) (bool, error) {
	snap, err := e.read(ctx, path(fsmRoot, h.ID))
	if err != nil {
		return false, err
	}
	old, ok, err := readMachine(snap, h.ID)
	snap.Release()
	if err != nil || !ok {
		return false, err
	}
	if old.Machine != h.Machine || !sameJSON(old.Args, h.Args) {
		return true, failf(CodeExists, "machine id %s is in use by another machine (%s with args %s)", h.ID, old.Machine, old.Args)
	}
	return true, nil
}

// readMachine reads machine id's head from snap.
func readMachine(snap *cas.Snapshot, id string) (*machineHead, bool, error) {
	ent, ok := snap.Get(path(fsmRoot, id))
	if !ok {
		return nil, false, nil
	}
	var h machineHead
	if err := json.Unmarshal(ent.Value, &h); err != nil {
		return nil, false, fmt.Errorf("flux: machine %s: %w", id, err)
	}
	return &h, true, nil
}

// enter sets h to state and returns the records of the change (with t as
// its history entry, when not nil) and, when the state has an entry
// block, the run of that block, to launch once the records commit.
func (e *Engine) enter(h *machineHead, l *loaded, state string, t *transition) (cas.Delta, *run) {
	st := l.Machine.State(state)
	h.State, h.EntryRun, h.Updated = state, "", time.Now().UnixMilli()
	h.Status = MachineActive
	if len(st.On) == 0 {
		h.Status = MachineFinal
	}
	var sys cas.Delta
	var r *run
	if st.Entry != nil {
		args, _ := decodeArgs(h.Args) // checked when the machine started
		rh := &head{ID: entryRunID(h.ID, h.Seq), Flow: h.Machine + "#" + state, Hash: h.Hash, Args: h.Args, Status: StatusRunning, MaxOps: DefaultMaxOps, Machine: h.ID, Started: h.Updated, Updated: h.Updated}
		h.EntryRun = rh.ID
		sys = append(sys, rh.records(nil)...)
		r = e.newRun(rh, st.Entry, l.File, args, nil)
	}
	if t != nil {
		t.EntryRun = h.EntryRun
	}
	return append(sys, h.records(t)...), r
}

func (e *Engine) newMachine(h *machineHead, def *Machine, c *Claim) *machine {
	m := &machine{e: e, h: h, def: def, claim: c, done: make(chan struct{}), sends: make(chan sendReq), events: newFeed()}
	m.ctx, m.cancel = context.WithCancelCause(context.Background())
	return m
}

// spawnMachine starts m's goroutine; e.mu is held.
func (e *Engine) spawnMachine(m *machine) {
	e.machines[m.h.ID] = m
	m.sigs, m.unsub = e.host.Signals()
	labels := golabel.Named(golabel.FluxRun, m.h.ID) // not the labels of the caller, a client's connection
	e.wg.Go(func() {
		labels.Set()
		m.loop()
	})
	e.watchLost(m.claim, m.cancel, m.done)
}

// resumeMachine restarts a machine the Context says exists, owned
// through c.
func (e *Engine) resumeMachine(h *machineHead, c *Claim) error {
	if h.Status == MachineFinal {
		return nil
	}
	l, ok := e.files[h.Machine]
	if !ok || l.Kind != KindMachine || l.hash != h.Hash || l.Machine.State(h.State) == nil {
		e.log("flux: machine %s cannot resume: %s is not loaded, or changed", h.ID, h.Machine)
		return nil
	}
	m := e.newMachine(h, l.Machine, c)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.spawnMachine(m)
	return nil
}

// entryDone returns a channel closed when the current entry run ends,
// and whether there is one to wait for.
func (m *machine) entryDone() <-chan struct{} {
	if m.h.EntryRun == "" {
		return nil
	}
	m.e.mu.Lock()
	r := m.e.runs[m.h.EntryRun]
	m.e.mu.Unlock()
	if r != nil {
		return r.done
	}
	closed := make(chan struct{})
	close(closed) // it ended (perhaps before a restart): look at its status
	return closed
}

// loop delivers the machine's events until it reaches a final state or
// the engine closes.
func (m *machine) loop() {
	defer close(m.done)
	defer m.events.close()
	defer m.e.machineEnded(m)
	defer m.unsub()
	sigs := m.sigs
	for m.h.Status != MachineFinal {
		st := m.def.State(m.h.State)
		runDone := m.entryDone()
		var event string
		var reply chan error
		select {
		case <-runDone:
			v, err := m.e.status(m.ctx, m.h.EntryRun)
			if err != nil || !terminal(v.Status) {
				if m.ctx.Err() != nil {
					return
				}
				// The run stopped without ending: the engine is closing.
				<-m.ctx.Done()
				return
			}
			entry := m.h.EntryRun
			m.h.EntryRun = "" // handled: a state without "done" stays put
			event = "failed"
			if v.Status == StatusComplete {
				event = "done"
			}
			m.events.publish(map[string]any{"event": "entry", "machine": m.h.ID, "state": m.h.State, "run": entry, "status": v.Status})
		case s, ok := <-sigs:
			if !ok {
				return
			}
			if s.Lagged > 0 {
				m.e.log("flux: machine %s missed %d signals", m.h.ID, s.Lagged)
				continue
			}
			event = s.Path
		case req := <-m.sends:
			event, reply = req.event, req.reply
		case <-m.ctx.Done():
			return
		}
		next, ok := st.On[event]
		if !ok {
			if reply != nil {
				// An event refused by a copy that another engine took and
				// moved on is not refused: Send delivers it there.
				if err := m.current(); err != nil {
					reply <- err
					return
				}
				reply <- failf(CodeBadRequest, "machine %s is in state %s, which has no transition on %q (it has: %s)", m.h.ID, st.Name, event, onKeys(st))
			}
			continue
		}
		err := m.transition(st.Name, event, next)
		if reply != nil {
			reply <- err
		}
		if err != nil {
			m.e.log("flux: machine %s: %v", m.h.ID, err)
			if m.ctx.Err() != nil {
				return
			}
		}
	}
}

// current checks, with Owners, that the machine's record is still this
// copy's (no other engine took it and moved it on): a copy that is not
// is stopped, and current returns errMoved; one whose record cannot be
// read returns that error. A refusal of an event answers for the
// machine as committed only once this holds.
func (m *machine) current() error {
	if m.e.owners == nil {
		return nil
	}
	snap, err := m.e.read(m.ctx, path(fsmRoot, m.h.ID))
	if err != nil {
		return err
	}
	h, ok, err := readMachine(snap, m.h.ID)
	snap.Release()
	if err != nil {
		return err
	}
	if !ok || h.Seq != m.h.Seq {
		m.cancel(errMoved)
		return errMoved
	}
	return nil
}

// machineEnded forgets a machine whose loop returned.
func (e *Engine) machineEnded(m *machine) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.machines[m.h.ID] == m {
		delete(e.machines, m.h.ID)
	}
}

func onKeys(st *State) string {
	var keys []string
	for k := range st.On {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if len(keys) == 0 {
		return "none"
	}
	return strings.Join(keys, ", ")
}

// transition leaves the current state (cancelling its entry run if it is
// still going) and enters next, in one commit.
func (m *machine) transition(from, event, next string) error {
	// An entry run whose end is this event is handled (EntryRun is
	// cleared); any other still going is cancelled, done sent by hand
	// included.
	if m.h.EntryRun != "" {
		m.e.mu.Lock()
		r := m.e.runs[m.h.EntryRun]
		m.e.mu.Unlock()
		if _, err := m.e.cancelLocal(m.ctx, m.h.EntryRun, r); err != nil && !isNotRunning(err) {
			return fmt.Errorf("cancelling the entry run %s: %w", m.h.EntryRun, err)
		}
	}
	l := m.e.files[m.h.Machine]
	h := *m.h
	h.Seq++
	t := &transition{From: from, Event: event, To: next}
	sys, r := m.e.enter(&h, l, next, t)
	fence := m.claim.Fence
	if h.Status == MachineFinal && r == nil {
		fence = m.claim.End // the machine ends here
	}
	if _, err := m.e.host.Commit(context.WithoutCancel(m.ctx), sys, fence); err != nil {
		if fenced(err) {
			m.cancel(errMoved)
		}
		return err
	}
	m.h = &h
	if r != nil {
		r.claim, r.end = m.claim, m.claim.Fence
		if h.Status == MachineFinal {
			r.end = m.claim.End // the entry run of a final state ends the unit
		}
		m.e.launch(r)
	}
	m.events.publish(map[string]any{"event": "transition", "machine": m.h.ID, "from": from, "on": event, "to": next, "entry_run": h.EntryRun})
	if h.Status == MachineFinal {
		m.events.publish(map[string]any{"event": "end", "machine": m.h.ID, "state": next, "status": MachineFinal})
	}
	return nil
}

func isNotRunning(err error) bool {
	var f *Failure
	return errors.As(err, &f) && f.Code == CodeBadRequest
}

// Send delivers an event to a live machine and returns its view after
// the transition.
func (e *Engine) Send(ctx context.Context, id, event string) (*MachineView, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	v, err := e.send(ctx, id, event)
	if (fenced(err) || errors.Is(err, errMoved)) && e.remote() {
		// This engine's copy was another's already: it has stopped; send
		// again, through the take.
		e.stopLocal(machineUnit(id))
		v, err = e.send(ctx, id, event)
	}
	if errors.Is(err, errMoved) {
		err = failf("fenced", "machine %s moved to another supervisor while the event was delivered; send it again", id)
	}
	return v, err
}

// send is one try of Send.
func (e *Engine) send(ctx context.Context, id, event string) (*MachineView, error) {
	e.mu.Lock()
	m := e.machines[id]
	e.mu.Unlock()
	if m == nil && e.remote() {
		if v, err := e.machineStatus(ctx, id); err == nil && v.Status != MachineFinal {
			// Another engine runs it: take it, and deliver the event here.
			if err := e.takeFrom(ctx, machineUnit(id)); err != nil {
				return nil, err
			}
			e.mu.Lock()
			m = e.machines[id]
			e.mu.Unlock()
		}
	}
	if m != nil {
		req := sendReq{event: event, reply: make(chan error, 1)}
		select {
		case m.sends <- req:
			select {
			case err := <-req.reply:
				if err != nil {
					return nil, err
				}
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			return e.machineStatus(ctx, id)
		case <-m.done: // it stopped: say why, as for one that is not live
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	v, err := e.machineStatus(ctx, id)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	closed := e.closed
	e.mu.Unlock()
	switch {
	case v.Status == MachineFinal:
		return nil, failf(CodeBadRequest, "machine %s is in its final state %s: it takes no events", id, v.State)
	case closed:
		return nil, failf("shutting_down", "machine %s stopped with the supervisor", id)
	}
	return nil, failf(CodeBadRequest, "machine %s does not run: its file changed or is gone", id)
}

// MachineStatus is machine id's view, from what it committed.
func (e *Engine) MachineStatus(id string) (*MachineView, error) {
	return e.machineStatus(context.Background(), id)
}

// machineStatus is MachineStatus, its read bounded by ctx.
func (e *Engine) machineStatus(ctx context.Context, id string) (*MachineView, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	snap, err := e.read(ctx, path(fsmRoot, id), path(fsmHistRoot, id))
	if err != nil {
		return nil, err
	}
	defer snap.Release()
	ent, ok := snap.Get(path(fsmRoot, id))
	if !ok {
		return nil, failf(CodeNotFound, "no machine %s", id)
	}
	var h machineHead
	if err := json.Unmarshal(ent.Value, &h); err != nil {
		return nil, fmt.Errorf("flux: machine %s: %w", id, err)
	}
	v := &MachineView{ID: h.ID, Machine: h.Machine, State: h.State, Status: h.Status, EntryRun: h.EntryRun, Version: uint64(ent.Version), History: []TransitionView{}}
	entries := snap.Subtree(path(fsmHistRoot, id))
	slices.SortFunc(entries, func(a, b cas.Entry) int { return strings.Compare(string(a.Path), string(b.Path)) })
	for _, en := range entries {
		var t transition
		if err := json.Unmarshal(en.Value, &t); err != nil {
			return nil, fmt.Errorf("flux: machine %s: %w", id, err)
		}
		v.History = append(v.History, TransitionView{From: t.From, On: t.Event, To: t.To, EntryRun: t.EntryRun, Version: uint64(en.Version)})
	}
	return v, nil
}

// Machines lists every machine on record.
func (e *Engine) Machines() ([]MachineView, error) {
	snap, err := e.read(context.Background(), contract.Path(fsmRoot))
	if err != nil {
		return nil, err
	}
	heads, err := readMachines(snap)
	snap.Release()
	if err != nil {
		return nil, err
	}
	out := []MachineView{}
	for _, h := range heads {
		out = append(out, MachineView{ID: h.ID, Machine: h.Machine, State: h.State, Status: h.Status, EntryRun: h.EntryRun})
	}
	return out, nil
}

// MachineView is a machine as the CLI and the client show it.
type MachineView struct {
	ID       string           `json:"id"`
	Machine  string           `json:"machine"`
	State    string           `json:"state"`
	Status   string           `json:"status"`
	EntryRun string           `json:"entry_run,omitempty"`
	Version  uint64           `json:"version,omitempty"` // the last transition's commit
	History  []TransitionView `json:"history,omitempty"`
}

// TransitionView is one transition of a machine's history.
type TransitionView struct {
	From     string `json:"from"`
	On       string `json:"on"`
	To       string `json:"to"`
	EntryRun string `json:"entry_run,omitempty"`
	Version  uint64 `json:"version"`
}
