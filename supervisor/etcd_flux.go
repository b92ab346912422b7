package supervisor

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/etcdstore"
	"github.com/theus-run/theus/flux"
	"github.com/theus-run/theus/protocol"
)

// etcdFluxHost is the flux engine's host with the etcd store: the runs
// and machines are the Context's, shared by every supervisor on the
// prefix, so each is owned by one supervisor at a time through a key on
// this supervisor's lease (etcdstore.Claim), every commit it makes for
// one is fenced on that key, and the units whose owner went away are
// taken over (flux.Owners; docs/DISTRIBUTED.md).
type etcdFluxHost struct{ fluxHost }

var _ flux.Owners = etcdFluxHost{}

// ownerTimeout bounds a release, which no caller's context bounds.
const ownerTimeout = 5 * time.Second

func (h etcdFluxHost) Claim(ctx context.Context, unit string) (*flux.Claim, error) {
	b := h.s.etcd
	return claimed(b.store.Claim(ctx, unit, b.host))
}

func (h etcdFluxHost) Take(ctx context.Context, unit string) (*flux.Claim, error) {
	b := h.s.etcd
	return claimed(b.store.Take(ctx, unit, b.host))
}

// claimed is an etcdstore claim as the engine sees it.
func claimed(f etcdstore.Fence, lost <-chan struct{}, err error) (*flux.Claim, error) {
	if errors.Is(err, etcdstore.ErrOwned) {
		return nil, flux.ErrOwned
	}
	if err != nil {
		return nil, err
	}
	end := f
	end.End = true
	return &flux.Claim{Unit: f.Unit, Fence: f, End: end, Lost: lost}, nil
}

// Release deletes the claim's owner key if it is still the claim's; an
// error leaves it to the lease.
func (h etcdFluxHost) Release(c *flux.Claim) {
	f, ok := c.Fence.(etcdstore.Fence)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), ownerTimeout)
	defer cancel()
	if err := h.s.etcd.store.Release(ctx, f); err != nil {
		h.s.cfg.Log.Warn().Err(err).Str("unit", c.Unit).Msg("flux: owner key left to the lease")
	}
}

// Watch reports the owner keys that other supervisors put (they took a
// unit) or that were deleted (a unit ended, or its owner died), from
// now on. Its goroutine is the watch's: stop ends it and closes changes.
func (h etcdFluxHost) Watch() (<-chan flux.OwnerChange, func()) {
	s, b := h.s, h.s.etcd
	out := make(chan flux.OwnerChange, 64)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	deliver := func(ch flux.OwnerChange) {
		select {
		case out <- ch:
		case <-ctx.Done():
		}
	}
	// The watch starts after what the engine's scan, next, reads; if etcd
	// does not answer now, it starts later with a rescan.
	rctx, rcancel := context.WithTimeout(ctx, ownerTimeout)
	from, err := b.store.Version(rctx)
	rcancel()
	wg.Go(func() {
		defer close(out)
		for err != nil {
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
				return
			}
			if from, err = b.store.Version(ctx); err == nil {
				deliver(flux.OwnerChange{Rescan: true})
			}
		}
		log := s.cfg.Log.With().Str("store", "etcd").Logger()
		_ = b.store.WatchOwners(ctx, from, etcdstore.OwnerWatch{
			Changed: func(unit, holder string) {
				switch holder {
				case b.host: // this supervisor's own claim
				case "":
					deliver(flux.OwnerChange{Unit: unit, Gone: true})
				default:
					deliver(flux.OwnerChange{Unit: unit})
				}
			},
			Rescan: func() { deliver(flux.OwnerChange{Rescan: true}) },
			Broken: func(err error) { log.Debug().Err(err).Msg("owner watch ended; watching again") },
		}) // ends with ctx
	})
	var once sync.Once
	return out, func() {
		once.Do(func() {
			cancel()
			wg.Wait()
		})
	}
}

// etcdFluxCommit commits the flux engine's records to etcd, fenced on
// the run's owner key: a supervisor that lost the run commits nothing.
func (s *Supervisor) etcdFluxCommit(ctx context.Context, sys cas.Delta, fence cas.Fence) (uint64, error) {
	st := s.etcd.store
	for range cas.DefaultMaxAttempts {
		v, err := st.Version(ctx)
		if err != nil {
			return 0, fmt.Errorf("supervisor: flux record: %w", err)
		}
		r, err := st.Commit(ctx, v, nil, sys, cas.Options{Mode: s.cfg.Mode, Fence: fence})
		if errors.Is(err, cas.ErrConflict) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("supervisor: flux record: %w", err)
		}
		return uint64(r.Version), nil
	}
	return 0, &flux.Failure{Code: protocol.CodeRetryLimit, Message: "a flux record kept conflicting"}
}
