package supervisor

import (
	"context"
	"errors"
	"fmt"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/durable"
	"github.com/theus-run/theus/protocol"
	"github.com/theus-run/theus/shm"
)

// dropLostTensors removes, in one commit, the HEAVY paths of a restored
// state that name arena tensors: the arena lives in memory only, so
// those tensors did not survive the restart. Inline tensors did.
func (s *Supervisor) dropLostTensors(st cas.State) error {
	var delta cas.Delta
	for _, e := range st.Entries {
		if !e.Path.InZone(contract.ZoneHeavy) {
			continue
		}
		if d, err := shm.ParseDescriptor(e.Value, 1<<30); err == nil && d.Inline() {
			continue
		}
		delta.Delete(e.Path)
	}
	if len(delta) == 0 {
		return nil
	}
	sn := s.store.Snapshot()
	defer sn.Release()
	r, err := s.store.Commit(context.Background(), sn.Version(), nil, delta, cas.Options{})
	if err == nil && s.journal != nil {
		err = s.journal.Wait(context.Background(), r.Version)
	}
	if err != nil {
		return fmt.Errorf("supervisor: remove the paths of lost tensors: %w", err)
	}
	s.lost = len(delta)
	paths := make([]string, 0, min(len(delta), 10))
	for _, w := range delta[:min(len(delta), 10)] {
		paths = append(paths, string(w.Path))
	}
	s.cfg.Log.Warn().Int("tensors", len(delta)).Strs("paths", paths).Msg("HEAVY tensors do not survive a restart: their paths were removed")
	return nil
}

// durableAt waits until version v is on disk (Sync). Its error says
// whether the commit is known to be lost.
func (s *Supervisor) durableAt(ctx context.Context, v cas.Version) *protocol.Error {
	if s.journal == nil {
		return nil
	}
	err := s.journal.Wait(ctx, v)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, durable.ErrFailed):
		return protocol.Errorf(protocol.CodeNotDurable, "version %d was applied but could not be written to disk (%v); the supervisor acknowledges nothing more. After a restart, retry with the same op id: it applies at most once", v, err)
	}
	return protocol.Errorf(protocol.CodeTimeout, "version %d was applied but is not on disk yet: %v (retry with the same op id: it applies at most once)", v, err)
}

// journalErr refuses new work once the journal has failed.
func (s *Supervisor) journalErr() *protocol.Error {
	if s.journal == nil {
		return nil
	}
	if err := s.journal.Err(); err != nil {
		return protocol.Errorf(protocol.CodeNotDurable, "the supervisor can no longer write to disk: %v", err)
	}
	return nil
}

// failed is closed when the journal fails (never without one).
func (s *Supervisor) failed() <-chan struct{} {
	if s.journal == nil {
		return nil
	}
	return s.journal.Failed()
}
