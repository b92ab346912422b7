// Package cas owns the Context: the versioned values at every path, the
// snapshots that read them, and the compare-and-swap commit that changes
// them, with the retry loop (Runner) that re-runs a process until its delta
// commits. It never runs user code itself (the Runner calls a function it is
// given) and never interprets values: they are opaque bytes.
//
// # Basics
//
// Every commit bumps the global Version by one and stamps each path it
// writes with that version. A Snapshot is a version number plus a hold on
// the history it needs, so taking one costs the same for ten paths or ten
// million. Commit(snapshot, reads, delta) succeeds in smart mode iff no path
// in the read set (a read of a subtree covers the whole subtree) and no path
// in the write set changed after the snapshot; in strict mode iff nothing at
// all changed; in training mode always (last writer wins, and the Runner
// releases the snapshot before committing). On conflict it returns a
// *ConflictError listing the paths and applies nothing.
//
// # Concurrency
//
// One mutex, the commit lock, guards the trie, the history and the
// counters. Commit holds it for validation and apply, so commits are
// totally ordered by their version, and publishes the new version's epoch
// before it unlocks. Reads take no lock: Snapshot adds a hold to the
// current epoch and checks the epoch is still current (history.go says why
// that is enough), and Get finds its path in an index built for lock-free
// readers (index.go) and walks the path's versions from an atomic head, so
// commits never wait for readers nor readers for commits. Subtree also
// holds the trie's shape (a read lock that only the commits that add or
// remove a path take). The VIP gate is checked inside the commit lock, and
// while any ticket is held Snapshot also waits out the commit in progress:
// so a commit that passed the gate before a grant is visible in the
// holder's next snapshot, and every commit after the grant waits.
//
// # Caveats
//
// A Snapshot pins the history it may read until Release; a snapshot that is
// never released keeps every later version of every path it could see. A
// commit from a snapshot older than the oldest history kept (one that was
// released first) is refused as a conflict. History that no snapshot can
// read is dropped by the commits: every eighth commit for overwritten
// values, and at the first commit that can for deleted paths and the
// values that Config.Dropped watches (history.go, due).
package cas
