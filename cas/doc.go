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
// One RWMutex guards the trie, the history and the counters. Reads take it
// shared; Commit takes it exclusively for validation and apply, so commits
// are totally ordered by their version, and publishes the new version's
// epoch before it unlocks. Snapshot takes no lock: it adds a hold to the
// current epoch and checks the epoch is still current (history.go says why
// that is enough). The VIP gate is checked inside the commit's exclusive
// section, and while any ticket is held Snapshot also takes the lock
// shared: so a commit that passed the gate before a grant is visible in the
// holder's next snapshot, and every commit after the grant waits.
//
// # Caveats
//
// A Snapshot pins the history it may read until Release; a snapshot that is
// never released keeps every later version of every path it could see. A
// commit from a snapshot older than the oldest history kept (one that was
// released first) is refused as a conflict.
package cas
