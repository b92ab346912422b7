package etcdstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/vip"
)

// Defaults, etcd's own: --max-txn-ops and --max-request-bytes.
const (
	DefaultPrefix          = "theus/"
	DefaultMaxTxnOps       = 128
	DefaultMaxRequestBytes = 3 << 19 // 1.5 MiB
)

// Config describes a Store. Client is required.
type Config struct {
	Client *clientv3.Client
	// Prefix is prepended to every key; default DefaultPrefix. Two
	// Contexts on one cluster use two prefixes.
	Prefix string
	// MaxTxnOps and MaxRequestBytes are the cluster's limits
	// (--max-txn-ops, --max-request-bytes); a delta that would exceed
	// them is refused before it is sent.
	MaxTxnOps       int
	MaxRequestBytes int
	// TicketTTL is how long a VIP ticket outlives a holder that died (its
	// lease's TTL, in whole seconds); default DefaultTicketTTL. HotFor is
	// how long keys count as contended here after a commit on them lost;
	// default DefaultHotFor, negative for never.
	TicketTTL time.Duration
	HotFor    time.Duration
	// Committed, when set, is called with every commit this Store
	// applied, once its Txn returned: what cas.Config.Committed is on one
	// machine, for the commits made through this Store only (others'
	// carry no Origin here). Concurrent commits may reach it out of
	// version order. It must be quick and must not call the Store.
	Committed func(cas.Commit)
	// Trace, when set, is told of each VIP ticket this Store granted
	// (Granted) and of its end: Released (its holder's commit or
	// Release) or Expired (its lease was found lost), as
	// vip.Config.Trace is of a local arbiter's. Event.Ticket is 0.
	Trace func(vip.Event)
	// OpIDRetention is how long a committed op id is kept at least: a
	// request repeated with it within that time returns its first
	// outcome; later, etcd has deleted it (its key is on a lease) and the
	// request would run again. Default DefaultOpIDRetention; negative
	// keeps op ids for ever.
	OpIDRetention time.Duration
}

// Store is the Context in etcd. It is safe for concurrent use, by any
// number of Stores on the same cluster and prefix.
type Store struct {
	c         *clientv3.Client
	prefix    string
	maxOps    int
	maxBytes  int
	tk        tickets
	views     views // the live views, for WatchDropped
	committed func(cas.Commit)
	traceFn   func(vip.Event)
	ops       opLeases
	beforeTxn func() // tests only (export_test.go): runs just before a commit's Txn
}

// New returns a Store on cfg.Client. It does not contact etcd. Close
// ends its VIP tickets' lease.
func New(cfg Config) (*Store, error) {
	if cfg.Client == nil {
		return nil, errors.New("etcdstore: no client")
	}
	return &Store{
		c:         cfg.Client,
		prefix:    cmp.Or(cfg.Prefix, DefaultPrefix),
		maxOps:    cmp.Or(cfg.MaxTxnOps, DefaultMaxTxnOps),
		maxBytes:  cmp.Or(cfg.MaxRequestBytes, DefaultMaxRequestBytes),
		tk:        tickets{ttl: cmp.Or(cfg.TicketTTL, DefaultTicketTTL), hotFor: cmp.Or(cfg.HotFor, DefaultHotFor), heat: vip.HotKeys{Max: 4096}},
		committed: cfg.Committed,
		traceFn:   cfg.Trace,
		ops:       newOpLeases(cfg.OpIDRetention),
	}, nil
}

func (s *Store) valueKey(p contract.Path) string { return s.prefix + "v/" + string(p) + "." }
func (s *Store) stampKey(p contract.Path) string { return s.prefix + "s/" + string(p) + "." }
func (s *Store) seqKey(p contract.Path) string   { return s.prefix + "q/" + string(p) + "." }
func (s *Store) opKey(id string) string          { return s.prefix + "o/" + id }
func (s *Store) headKey() string                 { return s.prefix + "h" }
func (s *Store) pathOf(key []byte) contract.Path {
	return contract.Path(strings.TrimSuffix(string(key[len(s.prefix)+2:]), "."))
}

// View reads every value under inputs at one revision, the newest (a
// linearizable read), in one round trip. Until its Release, the values
// it may read are not handed to WatchDropped's Dropped.
func (s *Store) View(ctx context.Context, inputs []contract.Path) (*cas.Snapshot, error) {
	ops := make([]clientv3.Op, 0, len(inputs)+1)
	ops = append(ops, clientv3.OpGet(s.headKey(), clientv3.WithCountOnly()))
	for _, in := range inputs {
		ops = append(ops, clientv3.OpGet(s.valueKey(in), clientv3.WithPrefix()))
	}
	s.views.open()
	r, err := s.c.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		s.views.failed()
		return nil, &UnavailableError{Op: "snapshot", Err: err}
	}
	release := s.views.opened(r.Header.Revision)
	var entries []cas.Entry
	seen := map[contract.Path]bool{}
	for _, op := range r.Responses[1:] {
		for _, kv := range op.GetResponseRange().Kvs {
			p := s.pathOf(kv.Key)
			if seen[p] { // two inputs overlap
				continue
			}
			seen[p] = true
			entries = append(entries, cas.Entry{Path: p, Value: kv.Value, Version: cas.Version(kv.ModRevision)})
		}
	}
	return cas.FrozenHeld(cas.Version(r.Header.Revision), entries, release), nil
}

// Version returns the cluster's newest revision (a linearizable read).
func (s *Store) Version(ctx context.Context) (cas.Version, error) {
	r, err := s.c.Get(ctx, s.headKey(), clientv3.WithCountOnly())
	if err != nil {
		return 0, &UnavailableError{Op: "version", Err: err}
	}
	return cas.Version(r.Header.Revision), nil
}

// LookupOp returns the outcome recorded for op id: the version its commit
// made and the result stored with it. An op id committed for another call
// (both digests known and different) is a *cas.OpIDConflictError.
func (s *Store) LookupOp(ctx context.Context, id string, d cas.OpDigest) (cas.Version, []byte, bool, error) {
	if id == "" {
		return 0, nil, false, nil
	}
	r, err := s.c.Get(ctx, s.opKey(id))
	if err != nil {
		return 0, nil, false, &UnavailableError{Op: "op id lookup", Err: err}
	}
	if len(r.Kvs) == 0 {
		return 0, nil, false, nil
	}
	return decodeOp(id, r.Kvs[0].Value, cas.Version(r.Kvs[0].ModRevision), d)
}

// decodeOp reads an op id's record (digest then result).
func decodeOp(id string, b []byte, v cas.Version, d cas.OpDigest) (cas.Version, []byte, bool, error) {
	var first cas.OpDigest
	if len(b) < len(first) {
		return 0, nil, false, fmt.Errorf("etcdstore: op id %q: record of %d bytes, want at least %d", id, len(b), len(first))
	}
	copy(first[:], b)
	if d.Known() && first.Known() && d != first {
		return 0, nil, false, &cas.OpIDConflictError{OpID: id, Version: v}
	}
	return v, b[len(first):], true, nil
}
