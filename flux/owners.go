package flux

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/internal/golabel"
)

// A unit is what one engine owns and runs: a run that no machine started
// ("run/ID"), or a machine with its entry runs ("fsm/ID"). Without Owners
// (one engine on its Context) the engine owns every unit; with Owners it
// runs the units it claimed, takes over those whose owner went away, and
// fences every commit it makes for a unit with its Claim, so that an
// engine that lost a unit can never commit for it again.

func runUnit(id string) string     { return "run/" + id }
func machineUnit(id string) string { return "fsm/" + id }

// unitOf is the unit a run belongs to.
func unitOf(h *head) string {
	if h.Machine != "" {
		return machineUnit(h.Machine)
	}
	return runUnit(h.ID)
}

// errMoved is the cause of a run's or machine's context when the engine
// lost its unit (a commit fenced, its lease lost, another engine took
// it): the run stops here, as committed, and goes on where its new owner
// resumes it.
var errMoved = errors.New("flux: the run moved to another engine")

// readTimeout bounds each read of the engine's own records (a status,
// the resume of a unit).
const readTimeout = 30 * time.Second

// pollEvery is how often a wait or a watch of a run that another engine
// runs reads its record.
const pollEvery = 200 * time.Millisecond

// read is a snapshot of at least the values under paths, read within
// ctx and readTimeout.
func (e *Engine) read(ctx context.Context, paths ...contract.Path) (*cas.Snapshot, error) {
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	snap, err := e.host.Snapshot(ctx, paths...)
	if err != nil {
		return nil, fmt.Errorf("flux: reading the records: %w", err)
	}
	return snap, nil
}

// runPaths are what a run's records are under.
func runPaths(id string) []contract.Path {
	return []contract.Path{path(runRoot, id), path(historyRoot, id), path(sourceRoot, id)}
}

// claim makes the engine unit's owner (always, without Owners).
func (e *Engine) claim(ctx context.Context, unit string) (*Claim, error) {
	if e.owners == nil {
		return &Claim{Unit: unit}, nil
	}
	return e.owners.Claim(ctx, unit)
}

// release ends an ownership no commit ended.
func (e *Engine) release(c *Claim) {
	if e.owners != nil {
		e.owners.Release(c)
	}
}

// watchLost stops what done belongs to (cancel) when c's ownership may
// have ended behind the engine's back. The goroutine is the engine's; it
// ends with done.
func (e *Engine) watchLost(c *Claim, cancel context.CancelCauseFunc, done <-chan struct{}) {
	if c.Lost == nil {
		return
	}
	e.wg.Go(func() {
		golabel.Set(golabel.Flux, -1)
		select {
		case <-c.Lost:
			cancel(errMoved)
		case <-done:
		}
	})
}

// liveUnits lists the units the Context says are live: runs and
// machines that have not ended, entry runs under their machine's unit.
func liveUnits(snap *cas.Snapshot) ([]string, error) {
	heads, err := readHeads(snap)
	if err != nil {
		return nil, err
	}
	machines, err := readMachines(snap)
	if err != nil {
		return nil, err
	}
	var out []string
	seen := map[string]bool{}
	add := func(u string) {
		if !seen[u] {
			seen[u] = true
			out = append(out, u)
		}
	}
	for _, h := range heads {
		if !terminal(h.Status) {
			add(unitOf(h))
		}
	}
	for _, m := range machines {
		if m.Status != MachineFinal {
			add(machineUnit(m.ID))
		}
	}
	return out, nil
}

// scan claims and resumes every live unit that no engine owns (that this
// one does not run already).
func (e *Engine) scan() error {
	snap, err := e.read(context.Background(), contract.Path(runRoot), contract.Path(fsmRoot))
	if err != nil {
		return err
	}
	units, err := liveUnits(snap)
	snap.Release()
	if err != nil {
		return err
	}
	var errs []error
	for _, u := range units {
		if err := e.takeOver(u); err != nil {
			if e.owners == nil {
				return err
			}
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// takeOver claims unit and resumes it, unless another engine owns it or
// this one runs it already.
func (e *Engine) takeOver(unit string) error {
	if e.local(unit) {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	c, err := e.claim(ctx, unit)
	if errors.Is(err, ErrOwned) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("flux: claiming %s: %w", unit, err)
	}
	return e.resume(c)
}

// local reports whether the engine runs something of unit.
func (e *Engine) local(unit string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, r := range e.runs {
		if r.unit == unit {
			return true
		}
	}
	id, ok := strings.CutPrefix(unit, "fsm/")
	return ok && e.machines[id] != nil
}

// stopLocal stops what the engine runs of unit (it moved) and waits for
// it to stop.
func (e *Engine) stopLocal(unit string) {
	var done []<-chan struct{}
	e.mu.Lock()
	for _, r := range e.runs {
		if r.unit == unit {
			r.cancel(errMoved)
			done = append(done, r.done)
		}
	}
	if id, ok := strings.CutPrefix(unit, "fsm/"); ok {
		if m := e.machines[id]; m != nil {
			m.cancel(errMoved)
			done = append(done, m.done)
		}
	}
	e.mu.Unlock()
	for _, d := range done {
		<-d
	}
}

// resume runs the unit c owns from what it committed: a run that has
// not ended, or a machine (its live entry run first, then the machine).
// A unit that has ended is released. A run that cannot resume (its file
// changed) ends failed.
func (e *Engine) resume(c *Claim) error {
	if id, ok := strings.CutPrefix(c.Unit, "run/"); ok {
		launched, err := e.resumeRun(c, id, c.End)
		if !launched {
			e.release(c)
		}
		return err
	}
	id, ok := strings.CutPrefix(c.Unit, "fsm/")
	if !ok {
		e.release(c)
		return fmt.Errorf("flux: no unit %q", c.Unit)
	}
	snap, err := e.read(context.Background(), path(fsmRoot, id))
	if err != nil {
		e.release(c)
		return err
	}
	mh, ok, err := readMachine(snap, id)
	snap.Release()
	if err != nil || !ok {
		e.release(c)
		return err
	}
	entry := false
	if mh.EntryRun != "" {
		end := c.Fence
		if mh.Status == MachineFinal {
			end = c.End // the last thing the unit does
		}
		if entry, err = e.resumeRun(c, mh.EntryRun, end); err != nil {
			return err
		}
	}
	if mh.Status == MachineFinal {
		if !entry {
			e.release(c)
		}
		return nil
	}
	return e.resumeMachine(mh, c)
}

// resumeRun resumes run id of c's unit, if it has not ended; end is the
// fence of its last commit. It reports whether the run goes on here.
func (e *Engine) resumeRun(c *Claim, id string, end cas.Fence) (bool, error) {
	snap, err := e.read(context.Background(), runPaths(id)...)
	if err != nil {
		return false, err
	}
	h, _, ok, err := readHead(snap, id)
	if err != nil || !ok || terminal(h.Status) {
		snap.Release()
		return false, err
	}
	r, err := e.prepare(snap, h)
	snap.Release()
	if err != nil {
		f := asFailure(err)
		e.log("flux: run %s cannot resume: %v", h.ID, f)
		h.Status, h.Error, h.ErrorPC = StatusFailed, f, h.PC
		if _, err := e.host.Commit(context.Background(), h.records(nil), end); err != nil {
			return false, fmt.Errorf("flux: run %s: %w", h.ID, err)
		}
		return false, nil
	}
	r.claim, r.end = c, end
	return e.launch(r), nil
}

// keep follows the changes of ownership until the engine closes: a unit
// another engine took stops here; one whose owner went away is claimed
// (by one engine: the first) and resumed; one whose change is heard so
// late that this engine owns it again is resumed from its record. A claim that failed (etcd did
// not answer) is tried again by a scan a second later.
func (e *Engine) keep(changes <-chan OwnerChange) {
	var retry <-chan time.Time
	for {
		var err error
		select {
		case ch, ok := <-changes:
			if !ok {
				return
			}
			switch {
			case ch.Rescan:
				err = e.scan()
			default:
				// Gone, or put by another: stop what runs here, then claim
				// it if it is free, or still this engine's (a change heard
				// late, after this engine took the unit back).
				e.stopLocal(ch.Unit)
				err = e.takeOver(ch.Unit)
			}
		case <-retry:
			retry = nil
			err = e.scan()
		case <-e.quit:
			return
		}
		if err != nil && !e.isClosed() {
			e.log("flux: taking over: %v; trying again", err)
			retry = time.After(time.Second)
		}
	}
}

func (e *Engine) isClosed() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.closed
}

// takeFrom makes this engine the owner of the unit of run or machine id,
// which another engine may be running, and resumes it here: a request
// about it that only its owner can serve (a cancel, an event) is then
// served here. The old owner's commits are fenced from the take on.
func (e *Engine) takeFrom(ctx context.Context, unit string) error {
	c, err := e.owners.Take(ctx, unit)
	if err != nil {
		return fmt.Errorf("flux: taking %s: %w", unit, err)
	}
	if e.local(unit) { // it was this engine's already
		return nil
	}
	return e.resume(c)
}

// remote reports whether run or machine requests that find nothing here
// should look for another engine: with Owners, while the engine runs.
func (e *Engine) remote() bool { return e.owners != nil && !e.isClosed() }

// pollUntil calls check every pollEvery until it reports done or ctx
// ends.
func pollUntil(ctx context.Context, check func() (bool, error)) error {
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	for {
		done, err := check()
		if err != nil || done {
			return err
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
