// Package vip owns the fairness of optimistic commits: exponential backoff
// with jitter between retries, and VIP tickets that give a writer who keeps
// losing a guaranteed turn. It never reads or writes state and never imports
// the store; it only decides who may commit over which keys, and when.
//
// # Basics
//
// After K conflicts an invocation asks the Arbiter for a Ticket over its key
// set (what it reads and what it writes). Tickets over overlapping key sets
// are granted one at a time, in FIFO order of request. While a ticket is
// held, the store makes every other commit that overlaps its keys wait
// (Arbiter.Blocker), so the holder's next attempt cannot lose. Keys are
// dot-separated paths; a key overlaps another when one is a prefix of the
// other at a dot boundary (a subtree and anything inside it).
//
// # Caveats
//
// A ticket is a lease. It ends when the holder releases it, when the
// arbiter closes, or when the lease times out; after that, the holder's commit is checked like any other and may
// conflict. In strict mode every ticket covers every key.
package vip
