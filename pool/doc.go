// Package pool owns the worker OS processes of one plugin binary: it
// launches them with an inherited socketpair, runs the handshake, sends
// each Dispatch to the least-loaded worker and returns its Result, and
// supervises: a worker that crashes is replaced (with a restart-intensity
// limit so a crash loop cannot spin), a worker that stops answering
// heartbeats or runs a dispatch past its deadline is killed (SIGTERM, then
// SIGKILL) and replaced.
//
// Workers never outlive the supervisor: each one is a process-group
// leader, is told of its parent's death by Pdeathsig (set on a spawner
// goroutine locked to one OS thread, because Linux ties Pdeathsig to the
// forking thread, golang/go#27505) and sees EOF on its socket. A worker is
// signalled only before it is reaped, so no signal reaches a reused PID.
// With Orphans (the process as a child subreaper), a worker's descendants
// that leave its process group die too; without it, and after SIGKILL of
// the supervisor, they are init's.
//
// It never commits, retries on conflict or interprets a delta: that is the
// supervisor's job. It never reads a worker's stdout or stderr other than
// to forward the lines to the log.
package pool
