package cas

import (
	"strings"
	"sync"
	"sync/atomic"

	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/vip"
)

// Version numbers commits. Version 0 is the empty store; each commit adds one.
type Version uint64

// Mode selects how a commit is validated.
type Mode uint8

// Modes. The zero value is Smart.
const (
	// Smart commits iff nothing the commit read or writes changed since its
	// snapshot. Commits are serializable.
	Smart Mode = iota
	// Strict commits iff nothing changed at all since the snapshot.
	Strict
	// Training commits without validation: last writer wins, and a commit
	// never conflicts. Only the atomicity of one delta (and its op id)
	// remains: for single-writer pipelines that want speed.
	Training
)

func (m Mode) String() string {
	switch m {
	case Strict:
		return "strict"
	case Training:
		return "training"
	}
	return "smart"
}

// Config tunes a Store. The zero value is usable.
type Config struct {
	// Arbiter, when set, gates commits that overlap a held VIP ticket.
	Arbiter *vip.Arbiter
	// OpIDWindow is how many recent op ids are remembered for idempotency;
	// default DefaultOpIDWindow. A negative value disables the window.
	OpIDWindow int
	// Dropped, when set, is called with every value that no snapshot can
	// see any more (replaced or deleted, and older than every live
	// snapshot), for the paths Watch selects. It runs under the store's
	// lock: it must be quick and must not call the store. The HEAVY
	// zone frees a tensor's block here.
	Dropped func(path contract.Path, value []byte)
	// Watch selects the paths whose dropped values go to Dropped; nil
	// selects none. A commit calls it, under the store's locks, for each
	// path it creates: like Dropped it must be quick and must not call the
	// store.
	Watch func(contract.Path) bool
	// Committed, when set, is called with every commit as it is applied,
	// under the store's lock and in version order: what a journal
	// needs to make it durable. It must be quick (queue it) and must not
	// call the store. The Commit and its slices are the callee's to keep.
	Committed func(Commit)
}

// Commit is one applied commit, as a journal records it.
type Commit struct {
	Version  Version
	Changes  []Change
	OpID     string   // "" for none
	OpDigest OpDigest // stored with OpID; zero for unknown
	Result   []byte   // stored with OpID
	// Signals are the commit's transient events (Options.Signals): never
	// applied, handed on for publication in version order.
	Signals []Write
	Origin  Origin // Options.Origin, passed on
}

// Change is one path's new state in a commit. An append is the set of its
// entry's path; Root and Seq name the LOG and the entry's number.
type Change struct {
	Path    contract.Path
	Value   []byte // nil when Deleted
	Deleted bool
	Root    contract.Path // for an append: the LOG root ("" otherwise)
	Seq     uint64        // for an append: the entry's number
}

// DefaultOpIDWindow is the number of op ids remembered when
// Config.OpIDWindow is zero.
const DefaultOpIDWindow = 1 << 16

// Store is the Context: every path's versioned value. It is safe for
// concurrent use.
type Store struct {
	arb       *vip.Arbiter
	dropped   func(contract.Path, []byte)
	watch     func(contract.Path) bool
	committed func(Commit)

	// mu is the commit lock: it guards everything below but for what
	// Snapshot reads without it (the index, node.head, hist.cur).
	mu    sync.Mutex
	root  *node      // the empty path; its children are first segments
	index *pathIndex // every node of the trie, by path
	// tree guards node.children for Subtree, which walks them without
	// mu: a commit takes it too (after mu) to add or remove a node.
	tree sync.RWMutex
	live int // paths holding a value now (not tombstones)
	hist history
	ids  opIDs
	// gateWaits counts commits that waited for a VIP ticket not theirs.
	gateWaits atomic.Uint64
}

// New returns an empty store.
func New(cfg Config) *Store {
	s := &Store{
		arb:       cfg.Arbiter,
		dropped:   cfg.Dropped,
		watch:     cfg.Watch,
		committed: cfg.Committed,
		root:      &node{},
		index:     newPathIndex(),
	}
	s.hist.cur.Store(&epoch{})
	s.ids.init(cfg.OpIDWindow)
	return s
}

// Version returns the version of the newest commit: the epoch it
// published, which the commit lock orders. It takes no lock; it holds
// the epoch while it reads it, since an epoch is reused once no one
// holds it.
func (s *Store) Version() Version {
	e := s.hist.hold()
	v := e.ver
	e.holds.Add(-1)
	return v
}

// ensure returns the node for p, creating it and its ancestors.
func (s *Store) ensure(p contract.Path) *node {
	if n := s.index.get(p); n != nil {
		return n
	}
	s.tree.Lock()
	defer s.tree.Unlock()
	return s.create(p)
}

// create returns the node for p, creating it and its ancestors (mu and
// tree held).
func (s *Store) create(p contract.Path) *node {
	if n := s.index.get(p); n != nil {
		return n
	}
	parent, seg := s.root, string(p)
	if i := strings.LastIndexByte(seg, '.'); i >= 0 {
		parent, seg = s.create(p[:i]), seg[i+1:]
	}
	n := parent.child(seg, p)
	n.watched = s.dropped != nil && s.watch != nil && s.watch(p)
	s.index.put(n)
	return n
}

// unlink removes n if it is dead for every live snapshot (no value, no
// children, nothing written below it after horizon), then each ancestor the
// removal leaves dead too.
func (s *Store) unlink(n *node, horizon Version) {
	if n == s.root || n.gone || !n.dead(horizon) {
		return
	}
	s.tree.Lock()
	defer s.tree.Unlock()
	for n != s.root && n.dead(horizon) {
		delete(n.parent.children, n.seg)
		if len(n.parent.children) == 0 {
			n.parent.children = nil
		}
		s.index.remove(n)
		n.gone = true
		n = n.parent
	}
}

// Collect drops the history that no live snapshot can see now. Commits do
// it as they go (every eighth commit, or at the first commit that can for
// deleted paths and watched values); Collect is for when commits stop
// while snapshots are released (values waiting for Dropped are then
// passed to it).
func (s *Store) Collect() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hist.collect(s)
}
