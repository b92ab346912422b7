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
// With the etcd store the path is read from etcd, and the moved tensor
// is committed there with this supervisor's host id; the old block is
// then freed by the tensor watch (etcd_heavy.go), as any replaced one.
func (s *Supervisor) move(e heavy.Evacuee) bool {
	path, err := contract.Parse(e.Path)
	if err != nil {
		return true
	}
	wait := evacWait
	if s.etcd != nil {
		wait = s.cfg.DefaultTimeout // a view and a commit: two round trips to etcd
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	snap, err := s.view(ctx, path) // holds the old block while it is copied
	if err != nil {
		s.cfg.Log.Debug().Err(err).Str("path", e.Path).Msg("cannot read a dead worker's tensor yet")
		return false
	}
	defer snap.Release()
	cur, ok := snap.Get(path)
	if !ok {
		return true
	}
	value, perr := s.localTensor(path, cur.Value)
	if perr != nil {
		return true // another host's tensor now: replaced
	}
	d, err := shm.ParseDescriptor(value, s.zone.InlineMax())
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
		b, err = s.hostTensor(nd, b)
	}
	if err == nil {
		var delta cas.Delta
		delta.Set(path, b)
		err = s.commitMove(ctx, snap.Version(), path, delta)
	}
	if err != nil {
		if outcomeUnknown(err) {
			s.zone.Commit([]heavy.Ref{ref}) // the move may have applied: keep the copy's block
		} else {
			s.zone.Abort([]heavy.Ref{ref})
		}
		s.cfg.Log.Debug().Err(err).Str("path", e.Path).Msg("a dead worker's tensor was not moved")
		return false // changed (the next pass sees) or a ticket holder was in the way
	}
	s.zone.Commit([]heavy.Ref{ref})
	s.moves.Add(1)
	return true
}

// commitMove commits a moved tensor's new descriptor at path if path is
// unchanged since snap: in this process's store, or in etcd.
func (s *Supervisor) commitMove(ctx context.Context, snap cas.Version, path contract.Path, delta cas.Delta) error {
	reads := []contract.Path{path}
	if s.etcd != nil {
		_, err := s.etcd.store.Commit(ctx, snap, reads, delta, cas.Options{Mode: cas.Smart})
		return err
	}
	_, err := s.store.Commit(ctx, snap, reads, delta, cas.Options{Mode: cas.Smart})
	return err
}
