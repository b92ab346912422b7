//go:build !linux

package ring

// The rings park on futexes in memfd-backed shared memory: Linux only,
// like the supervisor and its workers.
var _ = theus_runs_workers_on_linux_only
