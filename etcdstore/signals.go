package etcdstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
)

// signalKey is the key a commit with signals rewrites, in its own Txn,
// with those signals as its value: the key's history (one revision per
// commit that carried signals, in commit order) is the signal log every
// Store on the prefix watches. etcd keeps that history until the cluster
// is compacted; only the newest value stays after.
func (s *Store) signalKey() string { return s.prefix + "g" }

// rewatchPause is how long WatchSignals waits before watching again after
// etcd ended its watch (no leader, a member gone).
const rewatchPause = 100 * time.Millisecond

// encodeSignals writes a commit's signals as a value: for each, its path
// and its value, each length-prefixed (uvarint).
func encodeSignals(ws []cas.Write) []byte {
	b := make([]byte, 0, signalsSize(ws))
	for _, w := range ws {
		b = binary.AppendUvarint(b, uint64(len(w.Path)))
		b = append(b, w.Path...)
		b = binary.AppendUvarint(b, uint64(len(w.Value)))
		b = append(b, w.Value...)
	}
	return b
}

// signalsSize is the length of encodeSignals(ws), from above.
func signalsSize(ws []cas.Write) int {
	n := 0
	for _, w := range ws {
		n += 2*binary.MaxVarintLen32 + len(w.Path) + len(w.Value)
	}
	return n
}

// decodeSignals reads what encodeSignals wrote.
func decodeSignals(b []byte) ([]cas.Write, error) {
	var out []cas.Write
	field := func() ([]byte, error) {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return nil, errors.New("truncated")
		}
		f := b[k : k+int(n)]
		b = b[k+int(n):]
		return f, nil
	}
	for len(b) > 0 {
		p, err := field()
		if err != nil {
			return nil, err
		}
		v, err := field()
		if err != nil {
			return nil, err
		}
		out = append(out, cas.Write{Path: contract.Path(p), Op: contract.OpSet, Value: v})
	}
	return out, nil
}

// SignalWatch tells WatchSignals's caller what it delivers.
type SignalWatch struct {
	// Committed receives each commit's signals, in version order, once.
	Committed func(cas.Commit)
	// Lost, when set, is told that the commits with signals from
	// revision from up to before revision to can no longer be read
	// (etcd compacted its history while the watch was away): their
	// signals are not delivered.
	Lost func(from, to cas.Version)
	// Broken, when set, is told each time etcd ended the watch (err),
	// before it is watched again from where it stopped.
	Broken func(err error)
}

// WatchSignals delivers the signals of every commit on the prefix after
// revision after, in version order, each once, until ctx ends (it then
// returns ctx's error). A watch that etcd ends (no leader, a member
// stopped; the client already resumes one cut off by a reconnect) is
// watched again from the revision after the last commit delivered, so
// nothing is delivered twice and nothing older than after is delivered
// at all. A commit whose record does not decode is skipped and reported
// through Broken.
func (s *Store) WatchSignals(ctx context.Context, after cas.Version, w SignalWatch) error {
	return s.keepWatching(ctx, after, w.Broken, func(ctx context.Context, next *int64) error {
		return s.watchFrom(ctx, next, w)
	})
}

// keepWatching runs watch from the revision after after, and again from
// where it stopped (watch moves next) each time etcd ends it, until ctx
// ends; broken, when set, is told why each watch ended.
func (s *Store) keepWatching(ctx context.Context, after cas.Version, broken func(error), watch func(ctx context.Context, next *int64) error) error {
	next := int64(after) + 1
	for {
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		err := watch(wctx, &next)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if broken != nil {
			broken(err)
		}
		select {
		case <-time.After(rewatchPause):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// watchFrom watches the signal key from *next until etcd ends the watch,
// moving *next past each commit delivered.
func (s *Store) watchFrom(ctx context.Context, next *int64, w SignalWatch) error {
	for resp := range s.c.Watch(ctx, s.signalKey(), clientv3.WithRev(*next)) {
		if resp.CompactRevision > *next {
			if w.Lost != nil {
				w.Lost(cas.Version(*next), cas.Version(resp.CompactRevision))
			}
			*next = resp.CompactRevision
			return fmt.Errorf("etcdstore: signals: history compacted at revision %d", resp.CompactRevision)
		}
		if err := resp.Err(); err != nil {
			return fmt.Errorf("etcdstore: signals: %w", err)
		}
		for _, ev := range resp.Events {
			rev := ev.Kv.ModRevision
			if ev.Type != clientv3.EventTypePut || rev < *next {
				continue
			}
			*next = rev + 1
			sigs, err := decodeSignals(ev.Kv.Value)
			if err != nil {
				if w.Broken != nil {
					w.Broken(fmt.Errorf("etcdstore: signals of revision %d: %w", rev, err))
				}
				continue
			}
			w.Committed(cas.Commit{Version: cas.Version(rev), Signals: sigs})
		}
	}
	return errors.New("etcdstore: signals: etcd ended the watch")
}
