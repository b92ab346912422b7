package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

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
	r, err := s.store.Commit(context.Background(), sn.Version(), nil, delta, cas.Options{})
	sn.Release()
	// Drop the lost descriptors now, while the zone has no slab: collected
	// later, one could name a block of this run's slab with the same id
	// and offset, and free it.
	s.store.Collect()
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
	return diskErr(v, s.journal.Wait(ctx, v))
}

// replyNames returns the version a reply of r or err tells the client
// about, which must be on disk before the reply goes: the commit, the
// first commit of a duplicate op id, the snapshot a read-only run saw,
// or, for an op id used by another call, that call's commit.
func replyNames(r cas.Report, err error) (cas.Version, bool) {
	if err == nil {
		return r.Version, true
	}
	var oc *cas.OpIDConflictError
	if errors.As(err, &oc) {
		return oc.Version, true
	}
	return 0, false
}

// diskErr is the reply's error for version v when waiting for the disk
// ended with err: not_durable when the journal failed (or closed) before
// writing it, a timeout when the wait ended first.
func diskErr(v cas.Version, err error) *protocol.Error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, durable.ErrFailed), errors.Is(err, durable.ErrClosed):
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

// restoreFrom reads cfg.Restore, a backup, in full and, with a journal,
// installs it as the state file of cfg.StateDir: what the start then
// opens. Without one it returns the state to start from.
func restoreFrom(cfg Config) (cas.State, error) {
	st, err := durable.ReadBackup(cfg.Restore)
	if err != nil {
		return cas.State{}, fmt.Errorf("supervisor: restore: %w", err)
	}
	log := cfg.Log.Warn().Str("backup", cfg.Restore).Uint64("version", uint64(st.Version)).Int("paths", len(st.Entries))
	if cfg.StateDir != "" && cfg.Durability != durable.None {
		kept, err := durable.Install(cfg.StateDir, st)
		if err != nil {
			return cas.State{}, fmt.Errorf("supervisor: restore: %w", err)
		}
		if kept != "" {
			log = log.Str("previous_state", kept)
		}
	}
	log.Msg("starting from a backup")
	return st, nil
}

// Backup writes a consistent copy of the DATA zone to req.Path while
// commits go on: the store's state at one version, once that version is
// on disk, as a state file (what --restore reads).
func (s *Supervisor) Backup(ctx context.Context, req *protocol.Backup) *protocol.BackupReply {
	rep := &protocol.BackupReply{ID: req.ID}
	if !filepath.IsAbs(req.Path) {
		rep.Err = protocol.Errorf(protocol.CodeBadRequest, "backup: %q is not an absolute path", req.Path)
		return rep
	}
	if s.etcd != nil {
		rep.Err = errEtcdLocal("backup (etcdctl snapshot save backs up the cluster)")
		return rep
	}
	st := s.store.Export()
	if err := s.durableAt(ctx, st.Version); err != nil {
		rep.Err = err
		return rep
	}
	write := durable.WriteBackup
	if s.journal != nil {
		write = s.journal.WriteBackup // noted: a kill leaves no temporary file after the next start
	}
	if err := write(req.Path, st); err != nil {
		rep.Err = protocol.Errorf(protocol.CodeBadRequest, "%v", err)
		return rep
	}
	rep.Version, rep.Paths, rep.OpIDs = uint64(st.Version), int64(len(st.Entries)), int64(len(st.OpIDs))
	if fi, err := os.Stat(req.Path); err == nil {
		rep.Bytes = fi.Size()
	}
	s.cfg.Log.Info().Str("file", req.Path).Uint64("version", rep.Version).Int64("paths", rep.Paths).Msg("backup written")
	return rep
}
