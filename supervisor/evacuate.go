package supervisor

import (
	"context"
	"encoding/json"
	"time"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/heavy"
	"github.com/theus-run/theus/shm"
)

// evacuator moves the committed tensors of dead workers' slabs into live
// slabs when the zone says there are some, until evacStop.
// A pass that could not move everything (no live slab with room, or a
// commit that would have waited) is tried again after a pause.
func (s *Supervisor) evacuator() {
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	for {
		select {
		case <-s.evacStop:
			return
		case <-s.evac:
		case <-retry.C:
		}
		if !s.evacuate() {
			retry.Reset(evacRetry)
		}
	}
}

// evacRetry is the pause before another pass, and evacWait how long a
// move's commit may wait for a VIP ticket holder: the move holds a
// snapshot, which keeps every replaced tensor alive while it waits.
const (
	evacRetry = 50 * time.Millisecond
	evacWait  = 20 * time.Millisecond
)

// evacuate moves each committed tensor of a dead worker's slab: a copy
// into a live slab, committed at its path only if the path still holds
// the same tensor (a CAS on the path, like any commit). A tensor replaced
// meanwhile is skipped; one that finds no room waits for the next slab.
// It reports whether nothing is left to try.
func (s *Supervisor) evacuate() bool {
	done := true
	for _, e := range s.zone.Evacuees() {
		select {
		case <-s.evacStop:
			return true
		default:
		}
		done = s.move(e) && done
	}
	return done
}

// move moves one tensor and reports false if it should be tried again.
func (s *Supervisor) move(e heavy.Evacuee) bool {
	path, err := contract.Parse(e.Path)
	if err != nil {
		return true
	}
	snap := s.store.Snapshot() // holds the old block while it is copied
	defer snap.Release()
	cur, ok := snap.Get(path)
	if !ok {
		return true
	}
	d, err := shm.ParseDescriptor(cur.Value, s.zone.InlineMax())
	if err != nil || d.Slab != e.Slab || d.Off != e.Off || d.Gen != e.Gen {
		return true // replaced
	}
	nd, ref, err := s.zone.Move(d, e.Path)
	if err != nil {
		s.cfg.Log.Debug().Err(err).Str("path", e.Path).Msg("cannot move a dead worker's tensor yet")
		return false
	}
	b, err := json.Marshal(nd)
	if err == nil {
		var delta cas.Delta
		delta.Set(path, b)
		ctx, cancel := context.WithTimeout(context.Background(), evacWait)
		_, err = s.store.Commit(ctx, snap.Version(), []contract.Path{path}, delta, cas.Options{Mode: cas.Smart})
		cancel()
	}
	if err != nil {
		s.zone.Abort([]heavy.Ref{ref})
		s.cfg.Log.Debug().Err(err).Str("path", e.Path).Msg("a dead worker's tensor was not moved")
		return false // changed (the next pass sees) or a ticket holder was in the way
	}
	s.zone.Commit([]heavy.Ref{ref})
	s.moves.Add(1)
	return true
}
