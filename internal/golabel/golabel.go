// Package golabel names theus's long-lived goroutines in CPU and goroutine
// profiles, with runtime/pprof labels, so that a profile tells how busy
// each loop is: the reader of one worker's ring or socket, the journal,
// the work of one client connection, a workflow run. A goroutine a
// labeled one starts carries the same labels, so a loop's figure covers
// the goroutines it hands work to. It sets labels; it never reads a
// profile.
package golabel

import (
	"context"
	"runtime/pprof"
	"strconv"
)

// The label keys.
const (
	// Role is what a loop does: one of the roles below.
	Role = "theus.role"
	// Loop names one loop: its role, then what tells it from the
	// role's other loops ("conn 12", "worker-ring 4711": a worker's PID).
	Loop = "theus.loop"
)

// The roles.
const (
	Conn          = "conn"           // the reads and executes of one client connection, several goroutines at times (supervisor)
	WorkerRing    = "worker-ring"    // the reader of one worker's reply ring: one goroutine (pool)
	WorkerSocket  = "worker-socket"  // the reader of one worker's socket: one goroutine (pool)
	Journal       = "journal"        // the durable journal's writer: one goroutine (durable)
	JournalNotify = "journal-notify" // the durable journal's notifier of synced commits: one goroutine (durable)
	FluxRun       = "flux-run"       // one workflow run, or one state machine: its goroutine (flux)
	Flux          = "flux"           // the flux engine's other goroutines: owner watches, signal feeds (flux)
)

// Labels are one loop's labels, made once and set on each goroutine that
// works for the loop (Set allocates nothing).
type Labels struct{ ctx context.Context }

// Of returns the labels of the loop n of role (n < 0: the role's only
// loop).
func Of(role string, n int) Labels {
	if n < 0 {
		return labels(role, role)
	}
	return Named(role, strconv.Itoa(n))
}

// Named returns the labels of the loop of role named name.
func Named(role, name string) Labels { return labels(role, role+" "+name) }

func labels(role, loop string) Labels {
	return Labels{pprof.WithLabels(context.Background(), pprof.Labels(Role, role, Loop, loop))}
}

// Set labels the calling goroutine, and those it starts from now on, with
// l. It replaces the goroutine's labels: call it first thing in a
// goroutine the package owns (internal/gopool's GoAs sets a task's for
// the goroutine that runs it, and clears them when it idles), never in a
// caller's goroutine.
// The zero Labels clear them.
func (l Labels) Set() {
	ctx := l.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	pprof.SetGoroutineLabels(ctx)
}

// Set is Of(role, n).Set().
func Set(role string, n int) { Of(role, n).Set() }
