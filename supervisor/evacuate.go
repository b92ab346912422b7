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
func (s *Supervisor) evacuator() {
	for {
		select {
		case <-s.evacStop:
			return
		case <-s.evac:
			s.evacuate()
		}
	}
}

// evacuate moves each committed tensor of a dead worker's slab: a copy
// into a live slab, committed at its path only if the path still holds
// the same tensor (a CAS on the path, like any commit). A tensor replaced
// meanwhile is skipped; one that finds no room waits for the next slab.
func (s *Supervisor) evacuate() {
	for _, e := range s.zone.Evacuees() {
		select {
		case <-s.evacStop:
			return
		default:
		}
		s.move(e)
	}
}

func (s *Supervisor) move(e heavy.Evacuee) {
	path, err := contract.Parse(e.Path)
	if err != nil {
		return
	}
	snap := s.store.Snapshot() // holds the old block while it is copied
	defer snap.Release()
	cur, ok := snap.Get(path)
	if !ok {
		return
	}
	d, err := shm.ParseDescriptor(cur.Value, s.zone.InlineMax())
	if err != nil || d.Slab != e.Slab || d.Off != e.Off || d.Gen != e.Gen {
		return // replaced
	}
	nd, ref, err := s.zone.Move(d, e.Path)
	if err != nil {
		s.cfg.Log.Debug().Err(err).Str("path", e.Path).Msg("cannot move a dead worker's tensor yet")
		return
	}
	b, err := json.Marshal(nd)
	if err == nil {
		var delta cas.Delta
		delta.Set(path, b)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err = s.store.Commit(ctx, snap.Version(), []contract.Path{path}, delta, cas.Options{Mode: cas.Smart})
		cancel()
	}
	if err != nil {
		s.zone.Abort([]heavy.Ref{ref})
		s.cfg.Log.Debug().Err(err).Str("path", e.Path).Msg("a dead worker's tensor changed while it moved")
		return
	}
	s.zone.Commit([]heavy.Ref{ref})
	s.moves.Add(1)
}
