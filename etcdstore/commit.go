package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/vip"
)

// appendRetries bounds how often a commit is sent again because another
// commit appended to one of its logs meanwhile (appends commute: that is
// not a conflict, only a new entry number).
const appendRetries = 64

// opOverhead is what one operation costs in a Txn request beside its key
// and value: tags, lengths, the compare's target and revision.
const opOverhead = 32

// Commit applies delta in one etcd Txn if what it depends on is unchanged
// since revision snap, as cas.Store.Commit does (see the package doc for
// how). A commit that writes where another holds a VIP ticket conflicts;
// the caller's own ticket (opts.Held) ends with its commit. Its signals
// are written in the same Txn (the signal key), for WatchSignals.
func (s *Store) Commit(ctx context.Context, snap cas.Version, reads []contract.Path, delta cas.Delta, opts cas.Options) (cas.Result, error) {
	if err := cas.CheckCommit(reads, delta, opts); err != nil {
		return cas.Result{}, err
	}
	t, err := s.plan(snap, reads, delta, opts)
	if err != nil {
		return cas.Result{}, err
	}
	if err := t.fits(s.maxOps, s.maxBytes); err != nil {
		return cas.Result{}, err
	}
	leaseRetried := false
	for range appendRetries {
		seqs, err := s.readSeqs(ctx, t.logs)
		if err != nil {
			return cas.Result{}, err
		}
		if t.opts.OpID != "" {
			if t.opLease, err = s.ops.lease(ctx, s.c); err != nil {
				return cas.Result{}, err
			}
		}
		if s.beforeTxn != nil {
			s.beforeTxn()
		}
		r, err := s.c.Txn(ctx).If(t.compares(seqs)...).Then(t.writes(seqs)...).Else(t.readBack...).Commit()
		if err != nil && leaseLost(err) && t.opLease != 0 && !leaseRetried {
			// etcd refused the whole Txn, applying nothing: the op id's
			// lease is gone. Once more, on a new one.
			leaseRetried = true
			s.ops.lost(t.opLease)
			continue
		}
		if err != nil {
			return cas.Result{}, txnError(err)
		}
		if r.Succeeded {
			if t.held != nil {
				t.held.end(vip.Released) // its keys were deleted in the Txn
			}
			v := cas.Version(r.Header.Revision)
			if s.committed != nil {
				s.committed(t.applied(v, seqs))
			}
			return cas.Result{Version: v}, nil
		}
		res, err, again := t.failed(r, seqs)
		if !again {
			return res, err
		}
	}
	return cas.Result{}, fmt.Errorf("etcdstore: %d commits in a row appended to the same logs first", appendRetries)
}

// txn is a commit planned: every key it compares, writes and reads back.
type txn struct {
	s     *Store
	snap  cas.Version
	delta cas.Delta
	opts  cas.Options
	// checked are the paths whose stamps must not have moved past snap,
	// in the order of the read set then the delta (no duplicates).
	checked []contract.Path
	stamps  []contract.Path // every stamp the delta rewrites
	logs    []contract.Path // the LOG roots it appends to, sorted
	// held is the caller's valid ticket of this Store: the commit checks
	// that its keys are still on its lease, and deletes them.
	held *Ticket
	// opLease is the lease the op id's key is put on (0: none).
	opLease clientv3.LeaseID
	// gates are the ticket keys that must not exist: the VIP gate of the
	// written paths the caller holds no ticket on.
	gates []gateKey
	// fence is the owner key the commit is fenced on (Options.Fence).
	fence *Fence
	// readBack is the Else branch: the op id, the checked stamps, the
	// head, the log counters, the gates, the held keys, the fence's owner
	// key (in that order).
	readBack []clientv3.Op
}

// gateKey is a ticket key that blocks a write, compared (and read back)
// alone or, for the written path's own subtree, as a prefix.
type gateKey struct {
	cmp   clientv3.Cmp
	path  contract.Path // the write it blocks
	key   string
	whole bool // the key's prefix
}

func (s *Store) plan(snap cas.Version, reads []contract.Path, delta cas.Delta, opts cas.Options) (*txn, error) {
	t := &txn{s: s, snap: snap, delta: delta, opts: opts}
	if opts.Fence != nil {
		f, ok := opts.Fence.(Fence)
		if !ok {
			return nil, fmt.Errorf("%w: etcdstore takes its own Fence, not %T", cas.ErrInvalidDelta, opts.Fence)
		}
		t.fence = &f
	}
	if opts.Mode == cas.Smart {
		for _, r := range reads {
			if !slices.Contains(t.checked, r) {
				t.checked = append(t.checked, r)
			}
		}
		for _, w := range delta {
			if w.Op != contract.OpAppend && !slices.Contains(t.checked, w.Path) {
				t.checked = append(t.checked, w.Path)
			}
		}
	}
	seen := map[contract.Path]bool{}
	for _, w := range delta {
		if w.Op == contract.OpAppend && !slices.Contains(t.logs, w.Path) {
			t.logs = append(t.logs, w.Path)
		}
		// An entry's own stamp is new (its number is too); its log's
		// root and the root's ancestors are what readers compare.
		for _, a := range stampsOf(w.Path) {
			if !seen[a] {
				seen[a] = true
				t.stamps = append(t.stamps, a)
			}
		}
	}
	slices.Sort(t.logs)
	if h, ok := opts.Held.(*Ticket); ok && h.s == s && h.Valid() {
		t.held = h
	}
	seenGate := map[string]bool{}
	for _, w := range delta {
		if t.held != nil && t.held.covers(w.Path) {
			continue
		}
		t.gates = append(t.gates, s.gate(w.Path, seenGate)...)
	}
	t.readBack = append(t.readBack, clientv3.OpGet(s.opKey(opts.OpID)))
	for _, p := range t.checked {
		t.readBack = append(t.readBack, clientv3.OpGet(s.stampKey(p), clientv3.WithKeysOnly()))
	}
	t.readBack = append(t.readBack, clientv3.OpGet(s.headKey(), clientv3.WithKeysOnly()))
	for _, l := range t.logs {
		t.readBack = append(t.readBack, clientv3.OpGet(s.seqKey(l)))
	}
	for _, g := range t.gates {
		opts := []clientv3.OpOption{clientv3.WithCountOnly()}
		if g.whole {
			opts = append(opts, clientv3.WithPrefix())
		}
		t.readBack = append(t.readBack, clientv3.OpGet(g.key, opts...))
	}
	if t.held != nil {
		for _, k := range t.held.keys {
			// In full: a keys-only range answers from etcd's index,
			// without the lease that failed compares against.
			t.readBack = append(t.readBack, clientv3.OpGet(s.ticketKey(k)))
		}
	}
	if t.fence != nil {
		// In full: a keys-only range answers from etcd's index, without
		// the lease that failed compares against.
		t.readBack = append(t.readBack, clientv3.OpGet(s.ownerKey(t.fence.Unit)))
	}
	return t, nil
}

// stampsOf returns p and its ancestors, up to p's PRIVATE root if it has
// one (a read above it must not conflict with the supervisor's records).
func stampsOf(p contract.Path) []contract.Path {
	stop := contract.Path("")
	if root, ok := p.PrivateRoot(); ok {
		stop, _ = root.Parent()
	}
	var out []contract.Path
	for a, ok := p, true; ok && a != stop; a, ok = a.Parent() {
		out = append(out, a)
	}
	return out
}

// seq is a log's counter as read before the Txn: the next entry number and
// the counter key's mod revision (0: absent).
type seq struct {
	next uint64
	rev  int64
}

func (s *Store) readSeqs(ctx context.Context, logs []contract.Path) ([]seq, error) {
	if len(logs) == 0 {
		return nil, nil
	}
	ops := make([]clientv3.Op, len(logs))
	for i, l := range logs {
		ops[i] = clientv3.OpGet(s.seqKey(l))
	}
	r, err := s.c.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		return nil, &UnavailableError{Op: "log counters", Err: err}
	}
	out := make([]seq, len(logs))
	for i, op := range r.Responses {
		if kvs := op.GetResponseRange().Kvs; len(kvs) > 0 {
			n, err := strconv.ParseUint(string(kvs[0].Value), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("etcdstore: log %s: counter %q: %w", logs[i], kvs[0].Value, err)
			}
			out[i] = seq{next: n, rev: kvs[0].ModRevision}
		}
	}
	return out, nil
}

func (t *txn) compares(seqs []seq) []clientv3.Cmp {
	s := t.s
	var cs []clientv3.Cmp
	if t.opts.OpID != "" {
		cs = append(cs, clientv3.Compare(clientv3.CreateRevision(s.opKey(t.opts.OpID)), "=", 0))
	}
	after := int64(t.snap) + 1
	switch t.opts.Mode {
	case cas.Smart:
		for _, p := range t.checked {
			cs = append(cs, clientv3.Compare(clientv3.ModRevision(s.stampKey(p)), "<", after))
		}
	case cas.Strict:
		cs = append(cs, clientv3.Compare(clientv3.ModRevision(s.headKey()), "<", after))
	}
	for i, l := range t.logs {
		cs = append(cs, clientv3.Compare(clientv3.ModRevision(s.seqKey(l)), "=", seqs[i].rev))
	}
	for _, g := range t.gates {
		cs = append(cs, g.cmp)
	}
	if t.held != nil {
		for _, k := range t.held.keys {
			cs = append(cs, clientv3.Compare(clientv3.LeaseValue(s.ticketKey(k)), "=", t.held.sess.Lease()))
		}
	}
	if t.fence != nil {
		cs = append(cs, t.fence.holds(s)...)
	}
	return cs
}

func (t *txn) writes(seqs []seq) []clientv3.Op {
	s := t.s
	ops := make([]clientv3.Op, 0, len(t.delta)+len(t.stamps)+len(t.logs)+2)
	next := map[contract.Path]uint64{}
	for i, l := range t.logs {
		next[l] = seqs[i].next
	}
	for _, w := range t.delta {
		switch w.Op {
		case contract.OpSet:
			ops = append(ops, clientv3.OpPut(s.valueKey(w.Path), string(w.Value)))
		case contract.OpDelete:
			ops = append(ops, clientv3.OpDelete(s.valueKey(w.Path)))
		case contract.OpAppend:
			n := next[w.Path]
			next[w.Path] = n + 1
			ops = append(ops, clientv3.OpPut(s.valueKey(cas.EntryPath(w.Path, n)), string(w.Value)))
		}
	}
	for _, p := range t.stamps {
		ops = append(ops, clientv3.OpPut(s.stampKey(p), ""))
	}
	for _, l := range t.logs {
		ops = append(ops, clientv3.OpPut(s.seqKey(l), strconv.FormatUint(next[l], 10)))
	}
	ops = append(ops, clientv3.OpPut(s.headKey(), ""))
	if len(t.opts.Signals) > 0 {
		ops = append(ops, clientv3.OpPut(s.signalKey(), string(encodeSignals(t.opts.Signals))))
	}
	if t.held != nil {
		for _, k := range t.held.keys {
			ops = append(ops, clientv3.OpDelete(s.ticketKey(k)))
		}
	}
	if t.fence != nil && t.fence.End {
		ops = append(ops, clientv3.OpDelete(s.ownerKey(t.fence.Unit)))
	}
	if t.opts.OpID != "" {
		rec := make([]byte, 0, len(t.opts.OpDigest)+len(t.opts.Result))
		rec = append(rec, t.opts.OpDigest[:]...)
		rec = append(rec, t.opts.Result...)
		var opts []clientv3.OpOption
		if t.opLease != 0 {
			opts = append(opts, clientv3.WithLease(t.opLease))
		}
		ops = append(ops, clientv3.OpPut(s.opKey(t.opts.OpID), string(rec), opts...))
	}
	return ops
}

// applied describes the commit that t's Txn, sent with seqs, made at
// version v, as cas.Config.Committed receives it.
func (t *txn) applied(v cas.Version, seqs []seq) cas.Commit {
	c := cas.Commit{Version: v, OpID: t.opts.OpID, OpDigest: t.opts.OpDigest, Result: t.opts.Result, Signals: t.opts.Signals, Origin: t.opts.Origin}
	next := map[contract.Path]uint64{}
	for i, l := range t.logs {
		next[l] = seqs[i].next
	}
	c.Changes = make([]cas.Change, 0, len(t.delta))
	for _, w := range t.delta {
		switch w.Op {
		case contract.OpSet:
			c.Changes = append(c.Changes, cas.Change{Path: w.Path, Value: w.Value})
		case contract.OpDelete:
			c.Changes = append(c.Changes, cas.Change{Path: w.Path, Deleted: true})
		case contract.OpAppend:
			n := next[w.Path]
			next[w.Path] = n + 1
			c.Changes = append(c.Changes, cas.Change{Path: cas.EntryPath(w.Path, n), Value: w.Value, Root: w.Path, Seq: n})
		}
	}
	return c
}

// failed explains a Txn whose compares failed from what it read back: a
// repeat of the op id, a conflict, or (again) a log counter that moved.
func (t *txn) failed(r *clientv3.TxnResponse, seqs []seq) (res cas.Result, err error, again bool) {
	cur := cas.Version(r.Header.Revision)
	got := r.Responses
	if t.fence != nil { // first: a fenced committer must stop, whatever else changed
		var now Fence
		if kvs := got[len(got)-1].GetResponseRange().Kvs; len(kvs) > 0 {
			now = Fence{Unit: t.fence.Unit, Rev: kvs[0].CreateRevision, Lease: kvs[0].Lease}
		}
		if now.Rev != t.fence.Rev || now.Lease != t.fence.Lease {
			return cas.Result{}, &FencedError{Fence: *t.fence, Now: now}, false
		}
	}
	if kvs := got[0].GetResponseRange().Kvs; t.opts.OpID != "" && len(kvs) > 0 {
		v, result, _, err := decodeOp(t.opts.OpID, kvs[0].Value, cas.Version(kvs[0].ModRevision), t.opts.OpDigest)
		if err != nil {
			return cas.Result{}, err, false
		}
		return cas.Result{Version: v, Duplicate: true, Result: result}, nil, false
	}
	var changed []contract.Path
	for i, p := range t.checked {
		if kvs := got[1+i].GetResponseRange().Kvs; len(kvs) > 0 && cas.Version(kvs[0].ModRevision) > t.snap {
			changed = append(changed, p)
		}
	}
	if t.opts.Mode == cas.Strict {
		if kvs := got[1+len(t.checked)].GetResponseRange().Kvs; len(kvs) > 0 && cas.Version(kvs[0].ModRevision) > t.snap {
			return cas.Result{}, &cas.ConflictError{Snapshot: t.snap, Current: cur, Reason: "strict"}, false
		}
	}
	if len(changed) > 0 {
		return cas.Result{}, &cas.ConflictError{Snapshot: t.snap, Current: cur, Paths: changed}, false
	}
	next := 1 + len(t.checked) + 1 + len(t.logs)
	var blocked []contract.Path
	for i, g := range t.gates {
		if got[next+i].GetResponseRange().Count > 0 && !slices.Contains(blocked, g.path) {
			blocked = append(blocked, g.path)
		}
	}
	if len(blocked) > 0 {
		return cas.Result{}, &cas.ConflictError{Snapshot: t.snap, Current: cur, Paths: blocked, Reason: "another holds a VIP ticket"}, false
	}
	next += len(t.gates)
	if t.held != nil {
		for i := range t.held.keys {
			kvs := got[next+i].GetResponseRange().Kvs
			if len(kvs) == 0 || kvs[0].Lease != int64(t.held.sess.Lease()) {
				t.held.end(vip.Expired)
				return cas.Result{}, &cas.ConflictError{Snapshot: t.snap, Current: cur, Reason: "VIP ticket lost"}, false
			}
		}
	}
	return cas.Result{}, nil, true
}

// fits checks the Txn against etcd's limits: operations per branch and
// the request's bytes (estimated from above).
func (t *txn) fits(maxOps, maxBytes int) error {
	s := t.s
	held := 0
	if t.held != nil {
		held = len(t.held.keys)
	}
	compares := len(t.checked) + len(t.logs) + 1 + len(t.gates) + held
	writes := len(t.delta) + len(t.stamps) + len(t.logs) + 2 + held
	if t.fence != nil {
		compares += 2
		if t.fence.End {
			writes++
		}
	}
	if len(t.opts.Signals) > 0 {
		writes++
	}
	ops := max(compares, writes, len(t.readBack))
	if ops > maxOps {
		return &LimitError{What: "operations", Got: ops, Max: maxOps}
	}
	n := 0
	for _, w := range t.delta {
		n += len(s.valueKey(w.Path)) + len(w.Value) + opOverhead
		if w.Op == contract.OpAppend {
			n += seqDigits + 1
		}
	}
	for _, p := range t.stamps {
		n += len(s.stampKey(p)) + opOverhead
	}
	for _, p := range t.checked {
		n += 2 * (len(s.stampKey(p)) + opOverhead) // compared and read back
	}
	for _, l := range t.logs {
		n += 3 * (len(s.seqKey(l)) + opOverhead + seqDigits)
	}
	n += 3*(len(s.opKey(t.opts.OpID))+opOverhead) + len(t.opts.OpDigest) + len(t.opts.Result)
	n += 3 * (len(s.headKey()) + opOverhead)
	if len(t.opts.Signals) > 0 {
		n += len(s.signalKey()) + opOverhead + signalsSize(t.opts.Signals)
	}
	for _, g := range t.gates {
		n += 2 * (len(g.key) + opOverhead)
	}
	if t.fence != nil {
		n += 4 * (len(s.ownerKey(t.fence.Unit)) + opOverhead)
	}
	if n > maxBytes {
		return &LimitError{What: "bytes", Got: n, Max: maxBytes}
	}
	return nil
}

// txnError classifies a failed Txn: refused before it applied (a limit
// the cluster enforces lower than configured here, a key written twice)
// or of unknown outcome.
func txnError(err error) error {
	switch {
	case errors.Is(err, rpctypes.ErrTooManyOps):
		return &LimitError{What: "operations (the cluster's limit)", Err: err}
	case errors.Is(err, rpctypes.ErrRequestTooLarge):
		return &LimitError{What: "bytes (the cluster's limit)", Err: err}
	case errors.Is(err, rpctypes.ErrDuplicateKey):
		return fmt.Errorf("%w: %w", cas.ErrInvalidDelta, err)
	case leaseLost(err): // refused whole, before anything applied
		return &UnavailableError{Op: "commit", Err: err}
	}
	return &UncertainError{Err: err}
}

// seqDigits is the width of a log entry's number (cas.EntryPath).
const seqDigits = 20
