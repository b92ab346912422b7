package cas

import (
	"context"
	"errors"
	"time"
)

// A first attempt outside Execute: a caller that runs processes
// elsewhere (the supervisor, on a worker) can take the snapshot, send the
// run off and return, and commit the outcome from whatever goroutine
// receives it (First), with no goroutine waiting meanwhile. First never
// waits: what would (a conflict's backoff, a VIP ticket's gate) goes on
// in Execute, on a goroutine that may, from the attempts First counted.

// Outside reports whether inv's first attempt may run outside Execute,
// committed by First: the Runner commits to a Store (not an Engine), in
// a mode its arbiter supports, and inv has no fence, needs no VIP ticket
// before its first run (its keys are not contended) and has no op id
// the store knows already (a repeat, answered without a run, or an id
// used for another call: Execute answers both). An op id committed by
// another call after Outside is found by First's commit, which then
// applies nothing and reports the first commit (Duplicate), as in
// Execute. Otherwise call Execute.
func (r *Runner) Outside(inv Invocation) bool {
	if r.Engine != nil || r.Store == nil || inv.Fence != nil {
		return false
	}
	if r.Mode == Strict && r.Arbiter != nil && !r.Arbiter.Strict() {
		return false
	}
	if inv.OpID != "" {
		if _, _, known, err := r.Store.LookupOp(inv.OpID, inv.OpDigest); known || err != nil {
			return false
		}
	}
	l := loop{r: r, inv: inv}
	return !l.joinQueue()
}

// First commits out, the outcome of inv's first attempt, run outside
// Execute on snap (a Store snapshot taken for it; Outside said yes);
// runErr is the run's own error and ran how long the run took. It never
// waits, and it releases snap.
//
// It returns the invocation's Report once committed (or read-only), its
// *RunError when it failed for good, or again: the invocation must go on
// in Execute with inv.Prior set to rep's Attempts and Conflicts. That is
// after a conflict (unless it was the last attempt allowed), or when the
// commit would wait for a VIP ticket; nothing was applied then. A run
// whose commit would wait is not counted (rep is zero): Execute's first
// attempt takes its place, as its commit would have waited at the gate.
func (r *Runner) First(ctx context.Context, inv Invocation, snap *Snapshot, out Outcome, runErr error, ran time.Duration) (rep Report, again bool, err error) {
	defer snap.Release()
	if r.timed() {
		r.ran(ran)
	}
	l := newLoop(r, inv, Report{Attempts: 1})
	err = l.commit(ctx, snap, out, runErr, true)
	switch {
	case err == nil:
		return l.rep, false, nil
	case errors.Is(err, ErrWouldWait):
		// Not counted: in Execute the commit would have waited at the
		// gate, and this run would have been its only one. Execute runs
		// it again as a first attempt (which may queue for a ticket).
		return Report{}, true, nil
	case errors.Is(err, ErrConflict):
		if err = l.conflicted(err); err == nil {
			return Report{Attempts: 1, Conflicts: l.rep.Conflicts}, true, nil
		}
	}
	return Report{}, false, &RunError{Process: inv.Contract.Name, Attempts: l.rep.Attempts, Conflicts: l.rep.Conflicts, Err: err}
}
