package cas

import (
	"context"
	"fmt"
	"slices"
	"strconv"

	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/vip"
)

// Options modify one commit.
type Options struct {
	Mode Mode
	// OpID, when set, makes the commit idempotent within the store's op id
	// window: a second commit with the same id applies nothing and returns
	// the first one's outcome.
	OpID string
	// OpDigest, when known, binds OpID to the call it identifies: a commit
	// whose id is in the window with another known digest is refused with
	// an *OpIDConflictError and applies nothing.
	OpDigest OpDigest
	// Result is stored with OpID and returned to a repeat (the reply the
	// caller got the first time).
	Result []byte
	// Ticket is the caller's own VIP ticket, which does not block it.
	Ticket *vip.Ticket
	// Held is the caller's own ticket from an Engine's Tickets (the
	// Engine's counterpart of Ticket).
	Held EngineTicket
	// Signals ride with the commit without being applied: Config.Committed
	// receives them in Commit.Signals, in version order with every other
	// commit. A commit with signals and an empty delta still takes a
	// version. Their paths are checked like the delta's.
	Signals []Write
	// Origin describes the invocation behind the commit for Config.Committed
	// (Commit.Origin); the store never reads it.
	Origin Origin
	// Fence, when set, is an Engine's own condition on the commit, checked
	// in its transaction (etcdstore.Fence: a workflow run is still owned
	// by the one committing for it). A Store refuses it: one process has
	// nothing to fence against.
	Fence Fence
	// NoWait makes a commit that would wait for a VIP ticket (not its
	// own) fail with ErrWouldWait instead, applying nothing: for a caller
	// that must not wait (Runner.First).
	NoWait bool
}

// Fence is a condition on a commit that only an Engine can check, in the
// commit's own transaction. A commit whose fence does not hold applies
// nothing and fails with an error that errors.Is ErrFenced.
type Fence interface {
	// String describes the condition, for errors.
	String() string
}

// Result is a commit's outcome.
type Result struct {
	Version   Version // the commit's version (the first commit's, for a repeat)
	Duplicate bool    // OpID had committed already; nothing was applied now
	Result    []byte  // the Result stored with OpID by its first commit
}

// Commit applies delta atomically if what it depends on is unchanged since
// the snapshot at version snap. reads is the read set: each path covers its
// subtree. In Smart mode the commit conflicts iff a path under a read, or a
// path the delta sets or deletes, was written after snap; appends never
// conflict with each other. In Strict mode it conflicts iff any commit
// landed after snap. In Training mode it never conflicts (last writer
// wins), and snap need not be held.
//
// With an op id already in the window it applies nothing and returns the
// first commit's outcome (Duplicate), or an *OpIDConflictError if that
// commit had another digest; the check and the apply are under one lock.
//
// On conflict it returns a *ConflictError and applies nothing; on invalid
// input an error wrapping ErrInvalidDelta (or contract.ErrInvalidPath) and
// applies nothing. If a VIP ticket other than opts.Ticket overlaps the
// commit's keys, Commit waits for it to end, or for ctx.
//
// The caller must hold a Snapshot at snap (or newer) until Commit returns;
// a commit from a snapshot whose history was already dropped is refused as
// a conflict ("snapshot too old"), never checked against partial history.
func (s *Store) Commit(ctx context.Context, snap Version, reads []contract.Path, delta Delta, opts Options) (Result, error) {
	// The nodes of the paths the delta writes, looked up before the lock
	// (the index takes none): a path the index holds is valid, so check
	// need not parse it, and apply and the conflict check need not look
	// it up again (known).
	var buf [nodesOnStack]*node
	var nodes []*node
	if len(delta) <= len(buf) {
		nodes = buf[:len(delta)]
		for i := range delta {
			if len(delta[i].Path) <= contract.MaxPathLen { // a longer one is refused unhashed
				nodes[i] = s.index.get(delta[i].Path)
			}
		}
	}
	if err := checkCommit(reads, delta, &opts, nodes); err != nil {
		return Result{}, err
	}
	if opts.Fence != nil {
		return Result{}, fmt.Errorf("%w: a Store takes no fence (%s)", ErrInvalidDelta, opts.Fence)
	}
	if err := s.lockUngated(ctx, reads, delta, &opts); err != nil {
		return Result{}, err
	}
	defer s.mu.Unlock()

	if opts.OpID != "" {
		if r, done, err := s.repeat(&opts); done {
			return r, err
		}
	}
	if err := s.validate(snap, reads, delta, nodes, opts.Mode); err != nil {
		return Result{}, err
	}
	v := s.hist.version() + 1
	changes := s.apply(v, delta, nodes)
	s.hist.advance(v)
	if opts.OpID != "" || s.committed != nil {
		s.record(v, changes, &opts)
	}
	if s.hist.due() {
		s.hist.collect(s)
	}
	return Result{Version: v}, nil
}

// repeat looks opts.OpID up (the store's lock held). done is true when it
// is in the window: the first commit's outcome then, or the id's
// conflict, is the commit's.
//
// It and record are apart from Commit so that a commit without an op id
// or a journal does not pay for their locals: inlined, they made Commit's
// frame 1,040 bytes; it is 400 without them (go build -gcflags=-S).
//
//go:noinline
func (s *Store) repeat(opts *Options) (r Result, done bool, err error) {
	o, ok, err := s.ids.find(opts.OpID, opts.OpDigest)
	if err != nil {
		return Result{}, true, err
	}
	if !ok {
		return Result{}, false, nil
	}
	return Result{Version: o.ver, Duplicate: true, Result: o.result}, true, nil
}

// record keeps the op id of the commit at v and hands the commit to
// Config.Committed (the store's lock held).
//
//go:noinline
func (s *Store) record(v Version, changes []Change, opts *Options) {
	var result []byte
	if opts.OpID != "" {
		result = slices.Clone(opts.Result)
		s.ids.put(opts.OpID, outcome{ver: v, result: result, digest: opts.OpDigest})
	}
	if s.committed != nil {
		c := Commit{Version: v, Changes: changes, OpID: opts.OpID, Result: result, Signals: opts.Signals, Origin: opts.Origin}
		if opts.OpID != "" {
			c.OpDigest = opts.OpDigest
		}
		s.committed(c)
	}
}

// CheckCommit is what Commit checks before it looks at the store: valid
// paths in the delta, the signals and the read set, known ops and mode,
// bounded values and op id. An Engine runs it too. Its errors wrap
// ErrInvalidDelta (or contract.ErrInvalidPath).
func CheckCommit(reads []contract.Path, delta Delta, opts Options) error {
	return checkCommit(reads, delta, &opts, nil)
}

// nodesOnStack is the most writes whose nodes Commit looks up before its
// lock; a larger delta is parsed and looked up as it is applied.
const nodesOnStack = 8

// checkCommit is CheckCommit without the copy of opts (216 bytes), which
// is a measurable share of a one-path commit. nodes, when not nil, holds
// the node the store's index has for each write's path, or nil: a path
// with a node was valid when it was created, and is not parsed again.
func checkCommit(reads []contract.Path, delta Delta, opts *Options, nodes []*node) error {
	if err := delta.check(nodes); err != nil {
		return err
	}
	for i, w := range opts.Signals {
		if _, err := contract.Parse(string(w.Path)); err != nil {
			return fmt.Errorf("%w: signal %d: %w", ErrInvalidDelta, i, err)
		}
		if len(w.Value) > MaxValueLen {
			return fmt.Errorf("%w: signal at %s is %d bytes, over %d", ErrInvalidDelta, w.Path, len(w.Value), MaxValueLen)
		}
	}
	for _, r := range reads {
		if delta.writes(r) {
			continue // parsed with the delta: a read-modify-write names it twice
		}
		if _, err := contract.Parse(string(r)); err != nil {
			return fmt.Errorf("%w: read set: %w", ErrInvalidDelta, err)
		}
	}
	if err := checkOpID(opts.OpID); err != nil {
		return err
	}
	if opts.Mode > Training {
		return fmt.Errorf("%w: unknown mode %d", ErrInvalidDelta, opts.Mode)
	}
	return nil
}

// lockUngated takes the store's lock at a moment when no VIP ticket but the
// caller's own overlaps the commit's keys. It returns with the lock held,
// or with an error and the lock free.
func (s *Store) lockUngated(ctx context.Context, reads []contract.Path, delta Delta, opts *Options) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	if s.arb == nil || !s.arb.Active() {
		return nil
	}
	return s.lockGated(ctx, reads, delta, opts)
}

// lockGated is lockUngated once a ticket is held somewhere (the lock held):
// apart, so that a commit while none is held does not pay for its frame.
func (s *Store) lockGated(ctx context.Context, reads []contract.Path, delta Delta, opts *Options) error {
	var keys []string
	var buf [8]string // the keys of a small commit stay on the stack (Blocker keeps none)
	for {
		if opts.OpID != "" {
			if _, dup, err := s.ids.find(opts.OpID, opts.OpDigest); dup || err != nil {
				return nil // a repeat or a conflict applies nothing: no reason to wait
			}
		}
		if keys == nil {
			keys = keysOf(buf[:0], reads, delta)
		}
		done := s.arb.Blocker(keys, opts.Ticket)
		if done == nil {
			return nil
		}
		s.mu.Unlock()
		if opts.NoWait {
			return ErrWouldWait
		}
		s.gateWaits.Add(1)
		select {
		case <-done:
		case <-ctx.Done():
			return ctx.Err()
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		s.mu.Lock()
		if !s.arb.Active() {
			return nil
		}
	}
}

// keysOf appends the commit's keys (its reads and its writes) to keys.
func keysOf(keys []string, reads []contract.Path, delta Delta) []string {
	for _, r := range reads {
		keys = append(keys, string(r))
	}
	for _, w := range delta {
		keys = append(keys, string(w.Path))
	}
	return keys
}

// validate decides whether a commit from snap may apply (the store's lock held).
func (s *Store) validate(snap Version, reads []contract.Path, delta Delta, nodes []*node, mode Mode) error {
	cur := s.hist.version()
	if snap > cur {
		return fmt.Errorf("%w: %d > %d", ErrFutureSnap, snap, cur)
	}
	if mode == Training {
		return nil // nothing is validated: the snapshot may be gone already
	}
	if snap < s.hist.trimmed {
		return &ConflictError{Snapshot: snap, Current: cur, Reason: "snapshot too old"}
	}
	if snap == cur {
		return nil
	}
	changed := s.changed(snap, reads, delta, nodes)
	if mode == Strict {
		return &ConflictError{Snapshot: snap, Current: cur, Paths: changed, Reason: "strict"}
	}
	if len(changed) > 0 {
		return &ConflictError{Snapshot: snap, Current: cur, Paths: changed}
	}
	return nil
}

// changed lists the read and written paths written after snap.
func (s *Store) changed(snap Version, reads []contract.Path, delta Delta, nodes []*node) []contract.Path {
	var out []contract.Path
	for _, r := range reads {
		if n := s.index.get(r); n != nil && n.subtree > snap {
			out = append(out, r)
		}
	}
	for i, w := range delta {
		if w.Op == contract.OpAppend {
			continue
		}
		n := known(nodes, i)
		if n == nil {
			n = s.index.get(w.Path)
		}
		if n == nil {
			continue
		}
		if hd := n.head.Load(); hd != nil && hd.ver > snap && !slices.Contains(out, w.Path) {
			out = append(out, w.Path)
		}
	}
	return out
}

// known returns the node Commit found for the i-th write's path before
// its lock, or nil: none found then (nodes is nil past nodesOnStack
// writes), or trimmed out of the trie since, the path perhaps with a new
// node now. The store's lock held: a node that is not gone is the path's.
func known(nodes []*node, i int) *node {
	if nodes == nil || nodes[i] == nil || nodes[i].gone {
		return nil
	}
	return nodes[i]
}

// apply writes delta at version v (the store's lock held, delta checked) and,
// when a journal listens, returns the changes it made.
func (s *Store) apply(v Version, delta Delta, nodes []*node) []Change {
	var changes []Change
	if s.committed != nil {
		changes = make([]Change, 0, len(delta))
	}
	for i, w := range delta {
		n := known(nodes, i)
		if n == nil {
			n = s.ensure(w.Path)
		}
		switch w.Op {
		case contract.OpSet:
			r := s.push(n, v, w.Value, false)
			if changes != nil {
				changes = append(changes, Change{Path: w.Path, Value: r.val})
			}
		case contract.OpDelete:
			s.push(n, v, nil, true)
			if changes != nil {
				changes = append(changes, Change{Path: w.Path, Deleted: true})
			}
		case contract.OpAppend:
			root := n
			seq := root.nextSeq
			root.nextSeq++
			p := entryPath(w.Path, seq)
			r := s.push(s.ensure(p), v, w.Value, false)
			if changes != nil {
				changes = append(changes, Change{Path: p, Value: r.val, Root: w.Path, Seq: seq})
			}
		}
	}
	return changes
}

// entryPath names the seq-th entry of the log at root.
func entryPath(root contract.Path, seq uint64) contract.Path {
	var buf [seqDigits]byte
	digits := strconv.AppendUint(buf[:0], seq, 10)
	b := make([]byte, 0, len(root)+1+seqDigits)
	b = append(b, root...)
	b = append(b, '.')
	for range seqDigits - len(digits) {
		b = append(b, '0')
	}
	b = append(b, digits...)
	return contract.Path(b)
}

// A value of up to smallValue bytes is stored in the same allocation as
// its rev, sized to one of the runtime's size classes: up to tinyValue
// bytes in a 48-byte block (a counter's 8-byte value), up to smallValue
// in a 64-byte one. TestRevSizes holds the sizes to the classes.
const (
	tinyValue  = 8
	smallValue = 24
)

// revTiny and revSmall are revs with room for a small value.
type revTiny struct {
	rev
	buf [tinyValue]byte
}

type revSmall struct {
	rev
	buf [smallValue]byte
}

// newRev returns a deletion, or a rev holding a copy of val (the caller
// may reuse val). A set's value is never nil, even when val is: nil marks
// a deletion.
func newRev(v Version, val []byte, deleted bool, prev *rev) *rev {
	switch {
	case deleted:
		return &rev{ver: v, prev: prev}
	case len(val) <= tinyValue:
		rs := &revTiny{rev: rev{ver: v, prev: prev}}
		rs.val = rs.buf[:copy(rs.buf[:], val):len(val)]
		return &rs.rev
	case len(val) <= smallValue:
		rs := &revSmall{rev: rev{ver: v, prev: prev}}
		rs.val = rs.buf[:copy(rs.buf[:], val):len(val)]
		return &rs.rev
	}
	return &rev{ver: v, val: slices.Clone(val), prev: prev}
}

// push links a new rev at n, stamps n and its ancestors with v, and
// returns the rev.
func (s *Store) push(n *node, v Version, val []byte, deleted bool) *rev {
	old := n.head.Load()
	wasLive := old != nil && !old.deleted()
	r := newRev(v, val, deleted, old)
	n.head.Store(r)
	switch {
	case wasLive && deleted:
		s.live--
	case !wasLive && !deleted:
		s.live++
	}
	stamp(n, v)
	eager := deleted || n.watched // its entry makes this commit collect (due)
	switch {
	case (old != nil || deleted) && !n.queued:
		s.hist.queue(n, v, eager)
	case eager && n.queued:
		s.hist.hurry(n) // queued by a set that did not hurry it
	}
	return r
}

// stamp records that n changed at v: n and its ancestors, whose subtree
// reads it invalidates. A PRIVATE path stamps nothing above its PRIVATE
// root: no process can read it, so a read of an ancestor (global) must not
// conflict with the supervisor's own records (workflow runs, the outbox)
// kept there.
func stamp(n *node, v Version) {
	var stop *node
	if n.private != nil {
		stop = n.private.parent
	}
	for a := n; a != nil && a != stop && a.subtree < v; a = a.parent {
		a.subtree = v
	}
}
