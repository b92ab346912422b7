// Package signal owns the delivery of committed signals to subscribers, in
// version order, with a bounded buffer per subscriber. It never stores a
// signal and never blocks a commit.
//
// # Basics
//
// A Hub is told of every commit under the store's lock (Committed, which
// only queues it). One goroutine of the Hub takes the queued commits in
// version order, a batch at a time, waits until each is durable
// (Config.Wait) and queues its signals to every subscriber whose prefix
// covers their path. It wakes a subscriber (Sub.Ready) once per batch,
// and the subscriber takes everything queued at once (Sub.Take), so a
// busy Hub costs a subscriber one wakeup per batch, not one per signal.
//
// # Caveats
//
// A subscriber that does not keep up never slows the Hub: a signal that
// does not fit in its buffer is counted as missed, and once it has room
// again it receives one Item with Lagged set to that count, right before
// the next signal it gets (so the count arrives with that signal, not
// when the buffer drains). A subscriber sees the signals of the commits published
// after it subscribed, never older ones; nothing is replayed.
package signal
