// Package gcfloor keeps a process's garbage collector from running while
// its heap is small. With Go's default (GOGC=100) a cycle starts when the
// heap has doubled since the last one: a process that keeps a few MiB
// live but makes hundreds of MiB a second of short-lived garbage (a
// supervisor serving executes) collects tens of times a second, and each
// cycle scans every goroutine's stack. A Floor makes each cycle's goal at
// least the floor: while the live heap is under half of it, GOGC is
// raised so that the goal is the floor; past that, GOGC is what it was.
//
// It owns no goroutine: it runs for a moment after each collection, as a
// cleanup on the runtime's cleanup goroutine. It never overrides a GOGC
// the user set in the environment, and never lowers GOGC. A library must
// not use it: the setting is the whole process's, for its main to choose.
package gcfloor

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
)

// Floor holds the GC's goal at or above a heap size. Stop ends it.
type Floor struct {
	floor   uint64
	base    int // GOGC when it started: the percent past the floor
	stopped atomic.Bool
	mu      sync.Mutex // orders adjust and Stop's restore
	percent int        // the GOGC it set last (under mu)
	sample  [3]metrics.Sample
}

// Start holds the collector's goal at floor bytes or more, from the next
// cycle on. It does nothing (and Stop is a no-op) when floor is 0, when
// GOGC is set in the environment, or when the collector is off.
func Start(floor uint64) *Floor {
	f := &Floor{floor: floor}
	f.sample[0].Name = "/gc/heap/live:bytes"
	f.sample[1].Name = "/gc/scan/stack:bytes"
	f.sample[2].Name = "/gc/scan/globals:bytes"
	if floor == 0 || os.Getenv("GOGC") != "" {
		f.stopped.Store(true)
		return f
	}
	f.base = debug.SetGCPercent(100)
	debug.SetGCPercent(f.base)
	if f.base < 0 {
		f.stopped.Store(true)
		return f
	}
	f.percent = f.base
	f.arm()
	return f
}

// Stop ends the floor and puts GOGC back. It is idempotent.
func (f *Floor) Stop() {
	if f.stopped.Swap(true) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.percent != f.base {
		debug.SetGCPercent(f.base)
		f.percent = f.base
	}
}

// Percent is the GOGC the floor set last (the one it started with before
// the first cycle).
func (f *Floor) Percent() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.percent
}

// sentinel is garbage from birth: its cleanup runs after the cycle that
// finds it unreachable. It holds a pointer so that it is never one of the
// tiny pointer-free objects the runtime may batch (whose cleanups may
// never run).
type sentinel struct {
	_ *byte
	_ [8]byte
}

// arm schedules adjust for after the next collection.
func (f *Floor) arm() {
	runtime.AddCleanup(&sentinel{}, (*Floor).collected, f)
}

// collected runs after a collection: it adjusts GOGC and re-arms.
func (f *Floor) collected() {
	if f.stopped.Load() {
		return
	}
	f.adjust()
	f.arm()
}

// heapMinimum is the runtime's smallest goal at GOGC=100; it scales with
// GOGC.
const heapMinimum = 4 << 20

// adjust sets GOGC so that the next goal is the floor, or the base
// percent's if that is higher. Go's goal is the larger of the live heap
// plus GOGC percent of the live heap and the roots (stacks and globals),
// and GOGC percent of heapMinimum: the smaller GOGC that takes either to
// the floor is enough.
func (f *Floor) adjust() {
	metrics.Read(f.sample[:])
	live := f.sample[0].Value.Uint64()
	scanned := live + f.sample[1].Value.Uint64() + f.sample[2].Value.Uint64()
	want := f.base
	if live < f.floor {
		p := f.floor * 100 / heapMinimum
		if scanned > 0 {
			p = min(p, (f.floor-live)*100/scanned)
		}
		want = max(f.base, int(p))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped.Load() || want == f.percent {
		return
	}
	debug.SetGCPercent(want)
	f.percent = want
}
