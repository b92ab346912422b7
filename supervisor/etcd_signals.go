package supervisor

import (
	"context"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/etcdstore"
)

// watchSignals publishes, through this supervisor's Hub, the signals of
// every commit on the etcd prefix after revision from, whichever
// supervisor made it: each commit's signals once, in version order
// (etcdstore.WatchSignals). The watch belongs to the backend: its close
// stops it (it ends with ctx).
func (s *Supervisor) watchSignals(ctx context.Context, from cas.Version) {
	b := s.etcd
	log := s.cfg.Log.With().Str("store", "etcd").Logger()
	w := etcdstore.SignalWatch{
		Committed: s.signals.Committed,
		Lost: func(from, to cas.Version) {
			log.Warn().Uint64("from", uint64(from)).Uint64("to", uint64(to)).Msg("signals lost: etcd compacted their history while the watch was away")
		},
		Broken: func(err error) { log.Debug().Err(err).Msg("signal watch ended; watching again") },
	}
	b.watches.Go(func() {
		_ = b.store.WatchSignals(ctx, from, w) // ends with ctx
	})
}

// stopWatches stops the backend's watches, if it has any, and waits for
// them.
func (b *etcdBackend) stopWatches() {
	if b.stopWatch != nil {
		b.stopWatch()
		b.watches.Wait()
	}
}
