package protocol

import (
	"math"
	"time"
)

// The JSON bodies of the observability methods (MethodStats, MethodLog,
// StreamLog), described in docs/OPERATIONS.md. The supervisor fills them
// from its own counters; /metrics, the status page, theusctl status and
// theusctl top all read these, so every number shown anywhere is the
// same.

// Stats is the reply of a stats Call: every counter of the supervisor at
// Time. Counters count from Started; gauges are values at Time.
type Stats struct {
	Time    time.Time `json:"time"`
	Started time.Time `json:"started"`
	Version uint64    `json:"version"`
	Mode    string    `json:"mode"`

	Commits      uint64 `json:"commits"`   // commits of executes and signal.publish
	Conflicts    uint64 `json:"conflicts"` // attempts that lost to another commit
	Retries      uint64 `json:"retries"`   // attempts after the first
	VIP          uint64 `json:"vip"`       // commits made under a VIP ticket
	Failures     uint64 `json:"failures"`  // executes that ended with an error
	Redispatches uint64 `json:"redispatches"`
	// LateWakes counts the workers woken late (by a heartbeat, or at a
	// dispatch's deadline) for dispatches published to their ring
	// without a wake-up: each is a lost wake-up in the supervisor,
	// mended (0 unless there is a bug).
	LateWakes uint64 `json:"late_wakes"`
	// Processes are the registered processes, sorted by name.
	Processes []ProcessStats `json:"processes"`
	// AttemptsPerCommit and ConflictsPerCommit are observed once per
	// commit of a process.
	AttemptsPerCommit  Histogram `json:"attempts_per_commit"`
	ConflictsPerCommit Histogram `json:"conflicts_per_commit"`

	Tickets TicketStats   `json:"tickets"`
	Store   StoreStats    `json:"store"`
	Workers []WorkerStats `json:"workers"`
	// DispatchQueue is the dispatches waiting for a worker with room.
	DispatchQueue int64        `json:"dispatch_queue"`
	Heavy         HeavyStats   `json:"heavy"`
	Journal       JournalStats `json:"journal"`
	Clients       int          `json:"clients"` // client connections open
	// FluxRuns counts the workflow runs on record by status (pending,
	// running, waiting, complete, failed, cancelled).
	FluxRuns map[string]int `json:"flux_runs"`
	Signals  SignalStats    `json:"signals"`
	// AuditViolations counts the violations logged by level (I, S, A, B,
	// C); empty without --audit.
	AuditViolations map[string]uint64 `json:"audit_violations"`
	// CommitLog is how many commits the log has held since the start
	// (the newest CommitLogSize are kept).
	CommitLog     uint64 `json:"commit_log"`
	CommitLogSize int    `json:"commit_log_size"`
}

// ProcessStats is one process's executes.
type ProcessStats struct {
	Name string `json:"name"`
	// Outcomes counts the executes by how they ended: "ok" (committed or
	// read only), "duplicate" (an op id seen before), or the error code
	// (a theus code, or "process_error" for a code of the process's own).
	Outcomes map[string]uint64 `json:"outcomes"`
	// Latency is the executes' time in the supervisor, from the request
	// to the reply (durable included), in seconds.
	Latency Histogram `json:"latency"`
}

// Total is the executes of every outcome.
func (p ProcessStats) Total() uint64 {
	var n uint64
	for _, v := range p.Outcomes {
		n += v
	}
	return n
}

// TicketStats counts VIP tickets: granted, ended by their holder's
// commit or failure (Released), by their lease (Expired) or by the
// supervisor (Revoked); Held is the tickets held now; GateWaits the
// commits that waited for a ticket not theirs.
type TicketStats struct {
	Granted   uint64 `json:"granted"`
	Released  uint64 `json:"released"`
	Expired   uint64 `json:"expired"`
	Revoked   uint64 `json:"revoked"`
	Held      int64  `json:"held"`
	GateWaits uint64 `json:"gate_waits"`
}

// StoreStats describes the Context's history: the snapshots held, the
// older versions they pin and the replaced values kept for them.
type StoreStats struct {
	Paths     int   `json:"paths"`
	Snapshots int64 `json:"snapshots"`
	Epochs    int   `json:"epochs"`
	History   int   `json:"history"`
}

// WorkerStats is one worker slot.
type WorkerStats struct {
	Plugin    string `json:"plugin"` // the plugin's command
	Slot      int64  `json:"slot"`
	PID       int64  `json:"pid"`
	State     string `json:"state"` // starting, ready, backoff, stopped
	InFlight  int64  `json:"in_flight"`
	Processed uint64 `json:"processed"`
	Restarts  uint64 `json:"restarts"`
	RSS       int64  `json:"rss"` // resident bytes; 0 when unknown
}

// HeavyStats is the HEAVY zone (HeavyStatus, in JSON).
type HeavyStats struct {
	Size        int64 `json:"size"`
	SlabSize    int64 `json:"slab_size"`
	Slabs       int64 `json:"slabs"`
	Retired     int64 `json:"retired"`
	Held        int64 `json:"held"`
	InUse       int64 `json:"in_use"`
	Blocks      int64 `json:"blocks"`
	LargestFree int64 `json:"largest_free"`
	InlineMax   int64 `json:"inline_max"`
	// Slabs one by one (each SlabSize bytes), by id.
	PerSlab []SlabStats `json:"per_slab"`
}

// SlabStats is one HEAVY slab: the bytes in its blocks, and whether it
// is retired (its worker died; it keeps committed tensors until they are
// freed or moved to a live slab).
type SlabStats struct {
	ID      uint32 `json:"id"`
	InUse   int64  `json:"in_use"`
	Retired bool   `json:"retired,omitempty"`
}

// JournalStats describes durability: Mode (sync, async or none), the
// newest version on disk, the batches (one fsync each) and the commits
// and record bytes they wrote, when the last one ended, and histograms
// of commits per batch and of the seconds a batch took to write and
// fsync.
type JournalStats struct {
	Mode      string    `json:"mode"`
	Durable   uint64    `json:"durable"`
	Batches   uint64    `json:"batches"`
	Commits   uint64    `json:"commits"`
	Bytes     uint64    `json:"bytes"`
	LastFlush time.Time `json:"last_flush"` // zero before the first
	BatchSize Histogram `json:"batch_size"`
	Fsync     Histogram `json:"fsync"`
}

// SignalStats counts signals: handed to subscribers (once per
// subscriber), missed by a subscriber whose buffer was full (it lagged),
// never published (their commit did not become durable); and the
// subscribers now, and how many of them are lagging.
type SignalStats struct {
	Published   uint64 `json:"published"`
	Missed      uint64 `json:"missed"`
	Undelivered uint64 `json:"undelivered"`
	Subscribers int64  `json:"subscribers"`
	Lagging     int64  `json:"lagging"` // subscribers that missed signals not yet reported to them
}

// Histogram is a histogram's state: Counts[i] observations at most
// Bounds[i] (and above Bounds[i-1]), the last count above every bound;
// Count observations in all, adding up to Sum.
type Histogram struct {
	Bounds []float64 `json:"bounds"`
	Counts []uint64  `json:"counts"`
	Count  uint64    `json:"count"`
	Sum    float64   `json:"sum"`
}

// Sub returns what h observed since prev, an earlier state of the same
// histogram (prev with no counts is the start).
func (h Histogram) Sub(prev Histogram) Histogram {
	out := Histogram{Bounds: h.Bounds, Counts: make([]uint64, len(h.Counts)), Count: h.Count - prev.Count, Sum: h.Sum - prev.Sum}
	for i, c := range h.Counts {
		if i < len(prev.Counts) {
			c -= prev.Counts[i]
		}
		out.Counts[i] = c
	}
	return out
}

// Quantile estimates the q-quantile (0 < q ≤ 1) by linear interpolation
// inside its bucket, as Prometheus's histogram_quantile does; NaN when
// nothing was observed. Above the last bound it answers the last bound.
func (h Histogram) Quantile(q float64) float64 {
	if h.Count == 0 || len(h.Counts) == 0 {
		return math.NaN()
	}
	rank := q * float64(h.Count)
	var seen float64
	for i, c := range h.Counts {
		if seen+float64(c) < rank || c == 0 {
			seen += float64(c)
			continue
		}
		if i == len(h.Bounds) { // above every bound
			return h.Bounds[len(h.Bounds)-1]
		}
		lo := 0.0
		if i > 0 {
			lo = h.Bounds[i-1]
		}
		return lo + (h.Bounds[i]-lo)*(rank-seen)/float64(c)
	}
	return h.Bounds[len(h.Bounds)-1]
}

// Mean is Sum/Count, NaN when nothing was observed.
func (h Histogram) Mean() float64 {
	if h.Count == 0 {
		return math.NaN()
	}
	return h.Sum / float64(h.Count)
}

// LogRequest is the body of a log Call and of a log.follow Subscribe:
// the newest N commits (0: 20; at most the log's size), only those of
// Process when it is set. log.follow sends them, then every commit
// after.
type LogRequest struct {
	N       int    `json:"n,omitempty"`
	Process string `json:"process,omitempty"`
}

// LogReply is the reply of a log Call: the commits, oldest first, how
// many the log has held since the start, and how many it keeps.
type LogReply struct {
	Entries []LogEntry `json:"entries"`
	Total   uint64     `json:"total"`
	Size    int        `json:"size"`
}

// LogEntry is one commit of the commit log. Paths holds the first
// MaxLogPaths paths it changed; MorePaths counts the rest. Process is
// empty for a commit the supervisor made of its own (an outbox ack, an
// audit record). A log.follow item with Lagged set (and nothing else)
// says how many commits the follower missed because it did not keep up.
type LogEntry struct {
	Version   uint64    `json:"version,omitempty"`
	Time      time.Time `json:"time,omitzero"`
	Process   string    `json:"process,omitempty"`
	OpID      string    `json:"op_id,omitempty"`
	Paths     []string  `json:"paths,omitempty"`
	MorePaths int       `json:"more_paths,omitempty"`
	Signals   int       `json:"signals,omitempty"`
	Attempts  int       `json:"attempts,omitempty"`
	Conflicts int       `json:"conflicts,omitempty"`
	VIP       bool      `json:"vip,omitempty"`
	// DurationNS is the invocation's time from its start to the commit.
	DurationNS int64  `json:"duration_ns,omitempty"`
	Lagged     uint64 `json:"lagged,omitempty"`
}

// MaxLogPaths bounds LogEntry.Paths.
const MaxLogPaths = 16
