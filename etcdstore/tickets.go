package etcdstore

import (
	"context"
	"fmt"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/vip"
)

// Defaults for the VIP tickets.
const (
	// DefaultTicketTTL is how long a dead holder's tickets outlive it.
	DefaultTicketTTL = 5 * time.Second
	// DefaultHotFor is how long keys count as contended after a commit
	// on them lost, in this process.
	DefaultHotFor = 100 * time.Millisecond
	// ticketPoll bounds a wait for a ticket between two tries, should a
	// release not be seen (a watch that broke).
	ticketPoll = time.Second
)

var _ cas.Tickets = (*Store)(nil)

// tickets is the Store's side of the VIP tickets: the lease its tickets
// hang on (one etcd session, kept alive while the Store is open) and the
// keys that lost a commit lately.
type tickets struct {
	ttl    time.Duration
	hotFor time.Duration
	mu     sync.Mutex
	sess   *concurrency.Session // nil until the first ticket, or after its lease was lost
	closed bool
	heat   vip.HotKeys // keys that lost a commit, until hotFor after
}

// Ticket is a VIP ticket: a key P t/<k>. for each of its keys, on the
// holder's lease. It is a cas.EngineTicket.
type Ticket struct {
	s     *Store
	sess  *concurrency.Session
	keys  []contract.Path
	owner string
	mu    sync.Mutex
	done  bool
}

func (s *Store) ticketKey(p contract.Path) string { return s.prefix + "t/" + string(p) + "." }

// session returns the lease tickets hang on, starting a new one when
// there is none or the last one was lost.
func (s *Store) session() (*concurrency.Session, error) {
	t := &s.tk
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, fmt.Errorf("etcdstore: vip ticket: the store is closed")
	}
	if t.sess != nil {
		select {
		case <-t.sess.Done():
			t.sess = nil
		default:
			return t.sess, nil
		}
	}
	ttl := max(int((t.ttl+time.Second-1)/time.Second), 1)
	sess, err := concurrency.NewSession(s.c, concurrency.WithTTL(ttl))
	if err != nil {
		if s.c.Ctx().Err() != nil { // the client's own context, not a caller's: it was closed
			err = fmt.Errorf("the etcd client is closed (%v)", err)
		}
		return nil, &UnavailableError{Op: "vip ticket lease", Err: err}
	}
	t.sess = sess
	return sess, nil
}

// Close ends the Store's lease: its tickets end at once. The Store may
// still commit; it takes no ticket after Close.
func (s *Store) Close() error {
	t := &s.tk
	t.mu.Lock()
	sess := t.sess
	t.sess, t.closed = nil, true
	t.mu.Unlock()
	if sess == nil {
		return nil
	}
	return sess.Close()
}

// Acquire waits until no ticket overlaps keys (one at, above or below
// one of them) and takes one, on this Store's lease: should this process
// die, the ticket ends with the lease, after the TTL.
func (s *Store) Acquire(ctx context.Context, owner string, keys []string) (cas.EngineTicket, error) {
	paths := make([]contract.Path, len(keys))
	for i, k := range keys {
		paths[i] = contract.Path(k)
	}
	var cmps []clientv3.Cmp
	seen := map[string]bool{}
	for _, p := range paths {
		for _, g := range s.gate(p, seen) {
			cmps = append(cmps, g.cmp)
		}
	}
	for {
		sess, err := s.session()
		if err != nil {
			return nil, err
		}
		puts := make([]clientv3.Op, len(paths))
		for i, p := range paths {
			puts[i] = clientv3.OpPut(s.ticketKey(p), owner, clientv3.WithLease(sess.Lease()))
		}
		r, err := s.c.Txn(ctx).If(cmps...).Then(puts...).Commit()
		if err != nil {
			return nil, &UnavailableError{Op: "vip ticket", Err: err}
		}
		if r.Succeeded {
			t := &Ticket{s: s, sess: sess, keys: paths, owner: owner}
			s.trace(vip.Granted, t)
			return t, nil
		}
		if err := s.waitRelease(ctx, r.Header.Revision); err != nil {
			return nil, err
		}
	}
}

// gate returns the ticket keys that must not exist for p to be written
// by someone without a ticket on it: none at or below p (a prefix
// compare: etcd compares every key in the range, and an empty range as a
// key that does not exist), none at an ancestor. seen drops the keys
// gated already.
func (s *Store) gate(p contract.Path, seen map[string]bool) []gateKey {
	var out []gateKey
	k := s.ticketKey(p)
	if !seen[k+"*"] {
		seen[k+"*"] = true
		out = append(out, gateKey{cmp: clientv3.Compare(clientv3.CreateRevision(k), "=", 0).WithPrefix(), path: p, key: k, whole: true})
	}
	for a, ok := p.Parent(); ok; a, ok = a.Parent() {
		if k := s.ticketKey(a); !seen[k] {
			seen[k] = true
			out = append(out, gateKey{cmp: clientv3.Compare(clientv3.CreateRevision(k), "=", 0), path: p, key: k})
		}
	}
	return out
}

// waitRelease waits for a ticket to end after revision rev (any, under
// the prefix: the caller tries again), at most ticketPoll.
func (s *Store) waitRelease(ctx context.Context, rev int64) error {
	wctx, cancel := context.WithTimeout(ctx, ticketPoll)
	defer cancel()
	wch := s.c.Watch(clientv3.WithRequireLeader(wctx), s.prefix+"t/", clientv3.WithPrefix(), clientv3.WithRev(rev+1), clientv3.WithFilterPut())
	for resp := range wch {
		if len(resp.Events) > 0 || resp.Err() != nil {
			break
		}
	}
	return ctx.Err()
}

// Heat notes that a commit on keys lost.
func (s *Store) Heat(keys []string) {
	t := &s.tk
	if t.hotFor <= 0 {
		return
	}
	now := time.Now().UnixNano()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.heat.Add(keys, now, now+t.hotFor.Nanoseconds())
}

// Contended reports whether one of keys, or a key above or below it,
// lost a commit in this process within the last HotFor.
func (s *Store) Contended(keys []string) bool {
	t := &s.tk
	if t.hotFor <= 0 {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.heat.Contended(keys, time.Now().UnixNano(), false)
}

// Valid reports whether the ticket is held: not released, not ended by
// its holder's commit, its lease not lost.
func (t *Ticket) Valid() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done {
		return false
	}
	select {
	case <-t.sess.Done():
		return false
	default:
		return true
	}
}

// Release deletes the ticket's keys, if they are still its own.
func (t *Ticket) Release() {
	if !t.end(vip.Released) {
		return
	}
	s := t.s
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cmps := make([]clientv3.Cmp, len(t.keys))
	dels := make([]clientv3.Op, len(t.keys))
	for i, p := range t.keys {
		cmps[i] = clientv3.Compare(clientv3.LeaseValue(s.ticketKey(p)), "=", t.sess.Lease())
		dels[i] = clientv3.OpDelete(s.ticketKey(p))
	}
	// An error leaves the keys to the lease: they end with it.
	s.c.Txn(ctx).If(cmps...).Then(dels...).Commit()
}

// end marks the ticket ended (how: Released, or Expired with its lease)
// and traces it; false if it was already.
func (t *Ticket) end(how vip.EventKind) bool {
	t.mu.Lock()
	was := t.done
	t.done = true
	t.mu.Unlock()
	if !was {
		t.s.trace(how, t)
	}
	return !was
}

// trace reports a ticket's event to Config.Trace, if set.
func (s *Store) trace(kind vip.EventKind, t *Ticket) {
	if s.traceFn == nil {
		return
	}
	keys := make([]string, len(t.keys))
	for i, k := range t.keys {
		keys[i] = string(k)
	}
	s.traceFn(vip.Event{Kind: kind, Owner: t.owner, Keys: keys})
}

// covers reports whether the ticket covers p (p at or below a key).
func (t *Ticket) covers(p contract.Path) bool {
	for _, k := range t.keys {
		if k.Covers(p) {
			return true
		}
	}
	return false
}
