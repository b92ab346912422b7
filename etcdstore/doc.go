// Package etcdstore keeps the Context's DATA zone in etcd, so that several
// supervisors on several hosts share one serializable state: it is a
// cas.Engine. It owns the key layout under its prefix, the snapshot (an
// etcd revision), and the commit (one etcd Txn). It never runs user code,
// never interprets values (opaque bytes, as in cas), never holds HEAVY
// tensor bytes (they stay in one host's arena), and never runs consensus
// of its own: etcd's Raft orders every commit.
//
// # Keys
//
// Under the prefix P (default "theus/"), a path p is written as p + "."
// so that the keys of p's subtree are exactly those that start with it:
//
//	P v/<p>.   the value at p (absent when p holds none)
//	P s/<p>.   p's subtree stamp: rewritten by every commit that sets,
//	           deletes or appends at p or below it; only its mod
//	           revision matters
//	P q/<r>.   the next entry number of the LOG rooted at r
//	P o/<id>   an op id: the call's digest (32 bytes) and its result
//	P h        the head: rewritten by every commit (strict mode)
//	P t/<k>.   a VIP ticket on key k, on its holder's lease
//	P g        the signals of the last commit that carried any; its
//	           history is the signal log (see Signals)
//	P r/<u>    the owner of a workflow run or machine u: its holder,
//	           on the owning Store's lease (see Owners)
//
// # Commit
//
// A snapshot is the revision of one read-only Txn that reads every value
// under the invocation's inputs (cas.Frozen serves the run from them). A
// commit from revision S is one Txn: if the op id is absent, and (smart)
// the stamp of every path read and of every path set or deleted has a mod
// revision at most S (strict: the head's; training: nothing), and the LOG
// counters are those just read, then apply the delta, rewrite the stamps
// and the head, and store the op id; else read back what failed. A stamp
// covers its subtree's deletes, which a prefix compare on the values
// cannot see. The commit's version is the Txn's revision. As in cas, a
// PRIVATE path stamps nothing above its PRIVATE root.
//
// A set or delete conflicts with a change anywhere in its own subtree
// since S (cas looks at the path alone): a rare false conflict, never a
// missed one. A delta larger than etcd takes in one Txn (operations or
// bytes) is a *LimitError (bad_request) and changes nothing.
//
// # VIP tickets
//
// The Store is a cas.Tickets: a Runner on it takes tickets that every
// Store on the prefix honours. A ticket is a key per contract key, put
// in one Txn if no ticket exists at, below or above any of them, on the
// Store's lease (one etcd session, kept alive until Close): a holder
// that dies loses its tickets after the TTL. Every commit compares that
// no ticket exists at, below or above each path it writes, except under
// its own ticket (Options.Held), whose keys it deletes: another's ticket
// makes it a conflict, so a holder's next attempt cannot lose.
//
// # Signals
//
// A commit's signals (Options.Signals) are never applied: they are put,
// encoded, at the signal key in the commit's own Txn, so the key's
// history holds one revision per commit that carried signals, in commit
// order. WatchSignals watches that key from a revision on and delivers
// each commit's signals once, in version order; a watch that etcd ends
// or a reconnect resumes after the last commit delivered, never before.
// Signals older than etcd's compacted revision are lost to a watcher
// that was away (SignalWatch.Lost says so).
//
// # Owners
//
// Claim puts a unit's owner key on the Store's lease if it has none;
// Take moves it onto the lease from another owner. A commit with a Fence
// (Options.Fence) applies only while the key has the create revision and
// the lease of the claim, and with Fence.End deletes it; otherwise it is
// a *FencedError (cas.ErrFenced). WatchOwners reports each key put or
// deleted, by any Store, so that another takes over the units whose
// owner died.
//
// # Dropped values
//
// A Store counts its live views by revision. WatchDropped watches the
// values of the prefix with their previous values and hands each old
// value the caller selects, replaced or deleted by any Store, to its
// Dropped once no live view older than that commit remains: what
// cas.Config.Dropped is on one machine (a supervisor frees its HEAVY
// arena tensors there).
//
// # Failures
//
// An etcd error during a commit is an *UncertainError: the Txn may or may
// not have applied (a timeout after it was sent); never a success. A
// caller retrying with the same op id gets the first outcome. Op ids are
// kept until deleted (there is no window yet).
package etcdstore
