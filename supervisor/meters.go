package supervisor

import (
	"sync/atomic"
	"time"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/durable"
	"github.com/theus-run/theus/observe"
	"github.com/theus-run/theus/protocol"
	"github.com/theus-run/theus/vip"
)

// meters are the supervisor's counters: the one source that Status, the
// stats method (and so theusctl top), /metrics, the status page and the
// commit log all read. Supervisor embeds them. What runs on every
// execute is an atomic add, a histogram observation (two atomic adds)
// and a map read, with no lock and no allocation; what runs on every
// commit runs under the store's lock and is as cheap (commitLog.add).
type meters struct {
	commits, conflicts, retries, vips, failures, redispatches, moves atomic.Uint64

	// off turns off the per-process outcomes and latencies, the
	// per-commit histograms and the commit log: the
	// baseline of BenchmarkObserve. Set by Start.
	off     bool
	started time.Time
	// byProcess has an entry per registered process, made in Start and
	// never changed after: read without a lock. unknown counts the
	// executes of names no worker registered.
	byProcess map[string]*procMeter
	unknown   procMeter
	// attempts and conflictsPer are observed per commit of a process.
	attempts, conflictsPer *observe.Histogram
	log                    *commitLog

	// VIP tickets, from the arbiter's trace.
	granted, released, expired, revoked atomic.Uint64
	held                                atomic.Int64

	// The journal's batches (durable.Flush).
	batchSize, fsync *observe.Histogram
	written          atomic.Uint64
	lastFlush        atomic.Int64 // Unix ns; 0 before the first
}

// procMeter counts one process's executes.
type procMeter struct {
	outcomes [len(outcomeNames)]atomic.Uint64
	latency  *observe.Histogram
}

// outcomeNames are the outcome labels of an execute: how it ended.
var outcomeNames = [...]string{
	"ok", "duplicate",
	protocol.CodeUnknownProcess, protocol.CodeBadArgs, protocol.CodeContractViolation, protocol.CodeRetryLimit,
	protocol.CodeWorkerCrashed, protocol.CodeTimeout, protocol.CodeCanceled, protocol.CodeShuttingDown,
	protocol.CodeBadRequest, protocol.CodeProcessFailed, protocol.CodeInternal, protocol.CodeArenaFull,
	protocol.CodeBadTensor, protocol.CodeNotDurable, protocol.CodeOpIDConflict, protocol.CodeSchemaViolation,
	protocol.CodeAuditAbort, protocol.CodeAuditBlock, protocol.CodeAuditStop,
	"process_error", // a code of the process's own
}

// outcome is the index in outcomeNames of how rep ended.
func outcome(rep *protocol.Reply) int {
	switch {
	case rep.Err == nil && rep.Duplicate:
		return 1
	case rep.Err == nil:
		return 0
	}
	for i := 2; i < len(outcomeNames)-1; i++ {
		if outcomeNames[i] == rep.Err.Code {
			return i
		}
	}
	return len(outcomeNames) - 1
}

// The buckets. An execute of noop takes tens of microseconds; a commit
// attempt is retried at most cas.DefaultMaxAttempts times.
func newLatency() *observe.Histogram { return observe.NewDurationHistogram(25*time.Microsecond, 20) } // to 13 s

// newMeters makes the histograms and the commit log of logSize commits;
// off is Config.noMeters.
func newMeters(logSize int, off bool) *meters {
	return &meters{
		off:          off,
		started:      time.Now(),
		unknown:      procMeter{latency: newLatency()},
		attempts:     observe.NewHistogram([]int64{1, 2, 3, 4, 5, 6, 8, 12, 16, 24, 32}, 1),
		conflictsPer: observe.NewHistogram([]int64{0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32}, 1),
		batchSize:    observe.NewHistogram(observe.Exponential(1, 2, 12), 1), // to 2048
		fsync:        observe.NewDurationHistogram(100*time.Microsecond, 15), // to 1.6 s
		log:          newCommitLog(logSize),
	}
}

// addProcesses makes an entry per process, before the first execute: names
// are the registered processes.
func (m *meters) addProcesses(names []string) {
	m.byProcess = make(map[string]*procMeter, len(names))
	for _, n := range names {
		m.byProcess[n] = &procMeter{latency: newLatency()}
	}
}

// executed counts an execute of process that began at start and ends
// with rep (read when executed runs: call it deferred).
func (m *meters) executed(process string, start time.Time, rep *protocol.Reply) {
	if m.off {
		return
	}
	pm := m.byProcess[process]
	if pm == nil {
		pm = &m.unknown
	}
	pm.outcomes[outcome(rep)].Add(1)
	pm.latency.Observe(int64(time.Since(start)))
}

// committed sees every commit, under the store's lock (cas.Config.Committed).
func (m *meters) committed(c cas.Commit) {
	if m.off {
		return
	}
	if c.Origin.Process != "" {
		m.attempts.Observe(int64(c.Origin.Attempts))
		m.conflictsPer.Observe(int64(c.Origin.Conflicts))
	}
	m.log.add(c)
}

// ticket sees every VIP ticket event (vip.Config.Trace), under the
// arbiter's lock.
func (m *meters) ticket(e vip.Event) {
	switch e.Kind {
	case vip.Granted:
		m.granted.Add(1)
		m.held.Add(1)
		return
	case vip.Released:
		m.released.Add(1)
	case vip.Expired:
		m.expired.Add(1)
	case vip.Revoked:
		m.revoked.Add(1)
	}
	m.held.Add(-1)
}

// flushed sees every batch the journal wrote (durable.Config.Flushed).
func (m *meters) flushed(f durable.Flush) {
	m.batchSize.Observe(int64(f.Commits))
	m.fsync.Observe(int64(f.Took))
	m.written.Add(uint64(f.Bytes))
	m.lastFlush.Store(f.At.UnixNano())
}
