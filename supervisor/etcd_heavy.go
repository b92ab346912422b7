package supervisor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/etcdstore"
	"github.com/theus-run/theus/protocol"
	"github.com/theus-run/theus/shm"
)

// hostedTensor is an arena descriptor as the etcd store keeps it: the
// descriptor, and the supervisor whose arena holds its bytes. A tensor
// is read only on its host (docs/HEAVY.md, several supervisors).
type hostedTensor struct {
	Host string `json:"host"`
	shm.Descriptor
}

// newHostID names this supervisor's arena for as long as it runs: its
// host name, its pid and a random part, since a restarted supervisor's
// arena is a new one (the old tensors' bytes died with it).
func newHostID() (string, error) {
	host, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("supervisor: host id: %w", err)
	}
	var r [4]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", fmt.Errorf("supervisor: host id: %w", err)
	}
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(r[:])), nil
}

// hostTensor returns the value to commit for an arena tensor d claimed
// here: with the etcd store, d with this supervisor's host id; without,
// value as the worker wrote it.
func (s *Supervisor) hostTensor(d shm.Descriptor, value []byte) ([]byte, error) {
	if s.etcd == nil {
		return value, nil
	}
	b, err := json.Marshal(hostedTensor{Host: s.etcd.host, Descriptor: d})
	if err != nil {
		return nil, fmt.Errorf("supervisor: tensor descriptor: %w", err)
	}
	return b, nil
}

// localTensor returns the value at a HEAVY path p as this supervisor's
// workers and clients read it: with the etcd store, an arena tensor of
// this host without the host id, and a remote_tensor error for one of
// another host. Values that are not hosted tensors (inline tensors,
// deletes' absence, anything else) are returned as they are.
func (s *Supervisor) localTensor(p contract.Path, value []byte) ([]byte, *protocol.Error) {
	if s.etcd == nil || !p.InZone(contract.ZoneHeavy) {
		return value, nil
	}
	var h hostedTensor
	if err := json.Unmarshal(value, &h); err != nil || h.Host == "" {
		return value, nil
	}
	if h.Host != s.etcd.host {
		return nil, &protocol.Error{Code: protocol.CodeRemoteTensor, Path: string(p), Message: fmt.Sprintf(
			"%s is a tensor in the HEAVY arena of supervisor %s, not this one (%s): tensors are not copied between hosts; run the process, or read the tensor, through that supervisor", p, h.Host, s.etcd.host)}
	}
	b, err := json.Marshal(h.Descriptor)
	if err != nil {
		return nil, protocol.Errorf(protocol.CodeInternal, "tensor descriptor at %s: %v", p, err)
	}
	return b, nil
}

// watchTensors frees the block of each arena tensor of this supervisor
// that a commit through any supervisor replaced or deleted, once no view
// of this one that could read it (an attempt's, a Get's) is live
// (etcdstore.WatchDropped): what cas.Config.Dropped does on one machine.
// Without an arena (--heavy-size 0) no tensor is hosted here and nothing
// is watched. The watch ends with ctx.
func (s *Supervisor) watchTensors(ctx context.Context, from cas.Version) {
	if s.cfg.HeavySize <= 0 {
		return
	}
	b := s.etcd
	log := s.cfg.Log.With().Str("store", "etcd").Logger()
	w := etcdstore.DropWatch{
		Select: func(p contract.Path, v []byte) bool {
			if !p.InZone(contract.ZoneHeavy) {
				return false
			}
			var h hostedTensor
			return json.Unmarshal(v, &h) == nil && h.Host == b.host
		},
		Dropped: func(p contract.Path, v []byte) {
			if d, perr := s.localTensor(p, v); perr == nil {
				s.zone.Drop(d)
			}
		},
		Lost: func(from, to cas.Version) {
			log.Warn().Uint64("from", uint64(from)).Uint64("to", uint64(to)).Msg("tensors replaced in these versions stay in the arena: etcd compacted their history while the watch was away")
		},
		Broken: func(err error) { log.Debug().Err(err).Msg("tensor watch ended; watching again") },
	}
	b.watches.Go(func() {
		_ = b.store.WatchDropped(ctx, from, w) // ends with ctx
	})
}

// outcomeUnknown reports whether err is a commit that may have applied
// (etcd did not answer its Txn). The tensors it names then keep their
// blocks: freeing them could leave a committed descriptor pointing at a
// block a later tensor reuses, and a reader would get that tensor's
// bytes. A block so kept is freed when a later commit replaces its value
// (watchTensors), or stays taken until the restart if the commit did
// not apply.
func outcomeUnknown(err error) bool {
	var ue *etcdstore.UncertainError
	return errors.As(err, &ue)
}
