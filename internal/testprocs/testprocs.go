// Package testprocs owns the processes that the supervisor's tests run on
// their workers: the demo's, the fault injectors, and the test-only ones
// (attacks on the HEAVY zone, outbox emitters, a signal deleter, a schema
// logger, large writers and results). Its command, testworker, is the
// worker those tests start: a binary that links only the worker side, so
// that each of the kill tests' worker restarts (over a thousand a run) costs
// a worker's start, not the whole test binary's (etcd, gRPC, Prometheus
// and JSON Schema initialize in the supervisor's).
//
// It is for tests only: no program of the module imports it, and it never
// starts anything itself.
package testprocs

import (
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"

	"github.com/rs/zerolog"

	"github.com/theus-run/theus/demo"
	"github.com/theus-run/theus/worker"
)

// Processes are every process a test worker serves. The fault.* ones are
// served as with theus-supervisor --faults.
func Processes() []worker.Def {
	return slices.Concat(demo.Processes(), demo.Faults(), evilProcesses(), outboxProcesses(), signalProcesses(), schemaProcesses(), []worker.Def{fillProcess(), bigResultProcess()})
}

// Main serves Processes as a worker and exits, or with
// THEUS_WORKER_CPUPROFILE=prefix the demo's processes under a CPU
// profile (profiled).
func Main() {
	if prefix := os.Getenv("THEUS_WORKER_CPUPROFILE"); prefix != "" {
		os.Exit(profiled(prefix))
	}
	worker.Main(Processes()...)
}

// profiled serves the demo processes with a CPU profile written to
// prefix.<pid>, and what Serve returned to prefix.done.<pid> (set
// THEUS_WORKER_CPUPROFILE to profile the workers of benchmarks).
func profiled(prefix string) int {
	f, err := os.Create(prefix + "." + strconv.Itoa(os.Getpid()))
	if err != nil {
		return 1
	}
	pprof.StartCPUProfile(f)
	err = worker.Serve(zerolog.Nop().WithContext(context.Background()), demo.Processes()...)
	os.WriteFile(prefix+".done."+strconv.Itoa(os.Getpid()), []byte(fmt.Sprint(err)), 0o644)
	pprof.StopCPUProfile()
	f.Close()
	if err != nil {
		return 1
	}
	return 0
}
