package observe

import (
	"slices"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/theus-run/theus/protocol"
)

// Source is what observe reads: the supervisor. Stats is called once
// per scrape and once a second for the page; Log per /api/log request.
type Source interface {
	Stats() protocol.Stats
	Log(protocol.LogRequest) (protocol.LogReply, error)
}

// NewRegistry returns a Prometheus registry with the supervisor's
// metrics (read from src at each scrape), Go's runtime metrics and the
// process's (CPU, memory, descriptors).
func NewRegistry(src Source) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newCollector(src), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// metric is one metric of the collector: its description and how to
// read it from a Stats.
type metric struct {
	desc    *prometheus.Desc
	collect func(st *protocol.Stats, emit func(m prometheus.Metric))
}

// collector turns a Stats into metrics at each scrape: it keeps no
// value between scrapes.
type collector struct {
	src     Source
	metrics []metric
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range c.metrics {
		ch <- m.desc
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.src.Stats()
	for _, m := range c.metrics {
		m.collect(&st, func(pm prometheus.Metric) { ch <- pm })
	}
}

// constHistogram is a protocol.Histogram as a Prometheus histogram
// (cumulative buckets).
func constHistogram(desc *prometheus.Desc, h protocol.Histogram, labels ...string) prometheus.Metric {
	buckets := make(map[float64]uint64, len(h.Bounds))
	var cum uint64
	for i, b := range h.Bounds {
		cum += h.Counts[i]
		buckets[b] = cum
	}
	return prometheus.MustNewConstHistogram(desc, h.Count, h.Sum, buckets, labels...)
}

// The metric builders. Each name gets the theus_ prefix.
func counter(name, help string, v func(*protocol.Stats) uint64) metric {
	d := prometheus.NewDesc("theus_"+name, help, nil, nil)
	return metric{d, func(st *protocol.Stats, emit func(prometheus.Metric)) {
		emit(prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v(st))))
	}}
}

func gauge(name, help string, v func(*protocol.Stats) float64) metric {
	d := prometheus.NewDesc("theus_"+name, help, nil, nil)
	return metric{d, func(st *protocol.Stats, emit func(prometheus.Metric)) {
		emit(prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v(st)))
	}}
}

func histogram(name, help string, v func(*protocol.Stats) protocol.Histogram) metric {
	d := prometheus.NewDesc("theus_"+name, help, nil, nil)
	return metric{d, func(st *protocol.Stats, emit func(prometheus.Metric)) {
		emit(constHistogram(d, v(st)))
	}}
}

// labeled is a metric with labels: collect emits one per label set.
func labeled(name, help string, labels []string, collect func(d *prometheus.Desc, st *protocol.Stats, emit func(prometheus.Metric))) metric {
	d := prometheus.NewDesc("theus_"+name, help, labels, nil)
	return metric{d, func(st *protocol.Stats, emit func(prometheus.Metric)) { collect(d, st, emit) }}
}

func newCollector(src Source) *collector {
	return &collector{src: src, metrics: slices.Concat(engineMetrics(), poolMetrics(), zoneMetrics())}
}

// engineMetrics: executes, commits, conflicts, VIP tickets, the store.
func engineMetrics() []metric {
	return []metric{
		labeled("info", "Always 1: the supervisor's commit mode and durability in labels.", []string{"mode", "durability"},
			func(d *prometheus.Desc, st *protocol.Stats, emit func(prometheus.Metric)) {
				emit(prometheus.MustNewConstMetric(d, prometheus.GaugeValue, 1, st.Mode, st.Journal.Mode))
			}),
		gauge("start_time_seconds", "When the supervisor started, in seconds since the Unix epoch.", func(st *protocol.Stats) float64 {
			return float64(st.Started.UnixNano()) / 1e9
		}),
		gauge("context_version", "The Context's newest version: the number of commits since the store was created.", func(st *protocol.Stats) float64 { return float64(st.Version) }),
		gauge("context_paths", "Paths holding a value in the Context.", func(st *protocol.Stats) float64 { return float64(st.Store.Paths) }),
		labeled("executes_total", "Executes by process and outcome: ok, duplicate (an op id seen before), or the error code (process_error for a code of the process's own).", []string{"process", "outcome"},
			func(d *prometheus.Desc, st *protocol.Stats, emit func(prometheus.Metric)) {
				for _, p := range st.Processes {
					for outcome, n := range p.Outcomes {
						emit(prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(n), p.Name, outcome))
					}
				}
			}),
		labeled("execute_duration_seconds", "Time of an execute in the supervisor, from the request to the reply (commit and fsync included), by process.", []string{"process"},
			func(d *prometheus.Desc, st *protocol.Stats, emit func(prometheus.Metric)) {
				for _, p := range st.Processes {
					emit(constHistogram(d, p.Latency, p.Name))
				}
			}),
		counter("commits_total", "Commits of executes and signal.publish (read-only executes commit nothing).", func(st *protocol.Stats) uint64 { return st.Commits }),
		counter("conflicts_total", "Attempts that lost to another commit and ran again.", func(st *protocol.Stats) uint64 { return st.Conflicts }),
		counter("retries_total", "Attempts after the first.", func(st *protocol.Stats) uint64 { return st.Retries }),
		counter("failures_total", "Executes that ended with an error after they were admitted.", func(st *protocol.Stats) uint64 { return st.Failures }),
		counter("redispatches_total", "Dispatches sent again because their worker crashed.", func(st *protocol.Stats) uint64 { return st.Redispatches }),
		counter("late_wakes_total", "Workers woken late, by a heartbeat or at a dispatch's deadline, for dispatches left in their ring without a wake-up: lost wake-ups in the supervisor, mended (a bug: 0 expected).", func(st *protocol.Stats) uint64 { return st.LateWakes }),
		histogram("commit_attempts", "Attempts an invocation took to commit, observed per commit.", func(st *protocol.Stats) protocol.Histogram { return st.AttemptsPerCommit }),
		histogram("commit_conflicts", "Conflicts an invocation met before it committed, observed per commit.", func(st *protocol.Stats) protocol.Histogram { return st.ConflictsPerCommit }),
		counter("vip_commits_total", "Commits made under a VIP ticket.", func(st *protocol.Stats) uint64 { return st.VIP }),
		counter("vip_tickets_granted_total", "VIP tickets granted.", func(st *protocol.Stats) uint64 { return st.Tickets.Granted }),
		labeled("vip_tickets_ended_total", "VIP tickets ended, by reason: released (commit or failure), expired (lease ran out), revoked.", []string{"reason"},
			func(d *prometheus.Desc, st *protocol.Stats, emit func(prometheus.Metric)) {
				emit(prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(st.Tickets.Released), "released"))
				emit(prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(st.Tickets.Expired), "expired"))
				emit(prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(st.Tickets.Revoked), "revoked"))
			}),
		gauge("vip_tickets_held", "VIP tickets held now.", func(st *protocol.Stats) float64 { return float64(st.Tickets.Held) }),
		counter("vip_waits_total", "Commits that waited for a VIP ticket held by another invocation.", func(st *protocol.Stats) uint64 { return st.Tickets.GateWaits }),
		gauge("snapshots_held", "Snapshots of the Context held now (one per attempt running, plus reads).", func(st *protocol.Stats) float64 { return float64(st.Store.Snapshots) }),
		gauge("snapshot_versions_held", "Versions older than the newest that held snapshots keep alive.", func(st *protocol.Stats) float64 { return float64(st.Store.Epochs) }),
		gauge("history_length", "Paths whose replaced values are kept for held snapshots or the next collect, waiting to be dropped.", func(st *protocol.Stats) float64 { return float64(st.Store.History) }),
		counter("commit_log_total", "Commits recorded in the commit log (it keeps the newest theus_commit_log_size).", func(st *protocol.Stats) uint64 { return st.CommitLog }),
		gauge("commit_log_size", "Commits the commit log keeps (--commit-log).", func(st *protocol.Stats) float64 { return float64(st.CommitLogSize) }),
	}
}

// poolMetrics: workers, the dispatch queue, clients, durability, the
// parts beside the engine.
func poolMetrics() []metric {
	worker := []string{"plugin", "slot"}
	perWorker := func(v func(w protocol.WorkerStats) float64, kind prometheus.ValueType) func(*prometheus.Desc, *protocol.Stats, func(prometheus.Metric)) {
		return func(d *prometheus.Desc, st *protocol.Stats, emit func(prometheus.Metric)) {
			for _, w := range st.Workers {
				emit(prometheus.MustNewConstMetric(d, kind, v(w), w.Plugin, strconv.FormatInt(w.Slot, 10)))
			}
		}
	}
	return []metric{
		labeled("workers", "Worker slots by state: starting, ready, backoff (waiting to restart), stopped.", []string{"state"},
			func(d *prometheus.Desc, st *protocol.Stats, emit func(prometheus.Metric)) {
				n := map[string]int{"starting": 0, "ready": 0, "backoff": 0, "stopped": 0}
				for _, w := range st.Workers {
					n[w.State]++
				}
				for state, c := range n {
					emit(prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(c), state))
				}
			}),
		labeled("worker_restarts_total", "Restarts of a worker slot.", worker, perWorker(func(w protocol.WorkerStats) float64 { return float64(w.Restarts) }, prometheus.CounterValue)),
		labeled("worker_dispatches_total", "Dispatches a worker slot has answered.", worker, perWorker(func(w protocol.WorkerStats) float64 { return float64(w.Processed) }, prometheus.CounterValue)),
		labeled("worker_in_flight", "Dispatches running on a worker now.", worker, perWorker(func(w protocol.WorkerStats) float64 { return float64(w.InFlight) }, prometheus.GaugeValue)),
		labeled("worker_resident_memory_bytes", "A worker's resident memory (0 when unknown).", worker, perWorker(func(w protocol.WorkerStats) float64 { return float64(w.RSS) }, prometheus.GaugeValue)),
		gauge("dispatch_queue", "Dispatches waiting for a worker with room (every worker at its in-flight limit).", func(st *protocol.Stats) float64 { return float64(st.DispatchQueue) }),
		gauge("client_connections", "Client connections open.", func(st *protocol.Stats) float64 { return float64(st.Clients) }),
		gauge("journal_durable_version", "The newest version on disk (equal to theus_context_version when caught up).", func(st *protocol.Stats) float64 { return float64(st.Journal.Durable) }),
		counter("journal_batches_total", "Batches the journal wrote: one bbolt transaction, two fsyncs, each.", func(st *protocol.Stats) uint64 { return st.Journal.Batches }),
		counter("journal_commits_total", "Commits the journal wrote.", func(st *protocol.Stats) uint64 { return st.Journal.Commits }),
		counter("journal_written_bytes_total", "Bytes of records (keys and values) the journal wrote; bbolt writes whole pages, so the disk sees more.", func(st *protocol.Stats) uint64 { return st.Journal.Bytes }),
		gauge("journal_last_flush_timestamp_seconds", "When the last batch was on disk, in seconds since the Unix epoch (0 before the first).", func(st *protocol.Stats) float64 {
			if st.Journal.LastFlush.IsZero() {
				return 0
			}
			return float64(st.Journal.LastFlush.UnixNano()) / 1e9
		}),
		histogram("journal_batch_commits", "Commits per batch (group commit: one fsync for all of them).", func(st *protocol.Stats) protocol.Histogram { return st.Journal.BatchSize }),
		histogram("journal_fsync_duration_seconds", "Time to write a batch and fsync it (one bbolt transaction).", func(st *protocol.Stats) protocol.Histogram { return st.Journal.Fsync }),
		labeled("flux_runs", "Workflow runs on record, by status.", []string{"status"},
			func(d *prometheus.Desc, st *protocol.Stats, emit func(prometheus.Metric)) {
				for status, n := range st.FluxRuns {
					emit(prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(n), status))
				}
			}),
		counter("signals_published_total", "Signals handed to subscribers (once per subscriber).", func(st *protocol.Stats) uint64 { return st.Signals.Published }),
		counter("signals_missed_total", "Signals a subscriber missed because its buffer was full (it lagged).", func(st *protocol.Stats) uint64 { return st.Signals.Missed }),
		counter("signals_undelivered_total", "Signals never published: their commit did not become durable.", func(st *protocol.Stats) uint64 { return st.Signals.Undelivered }),
		gauge("signal_subscribers", "Signal subscribers (theusctl watch) now.", func(st *protocol.Stats) float64 { return float64(st.Signals.Subscribers) }),
		gauge("signal_subscribers_lagging", "Signal subscribers that missed signals not yet reported to them (they do not keep up).", func(st *protocol.Stats) float64 { return float64(st.Signals.Lagging) }),
		labeled("audit_violations_total", "Audit violations logged, by level (I, S, A, B, C).", []string{"level"},
			func(d *prometheus.Desc, st *protocol.Stats, emit func(prometheus.Metric)) {
				for level, n := range st.AuditViolations {
					emit(prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(n), level))
				}
			}),
	}
}

// zoneMetrics: the HEAVY zone.
func zoneMetrics() []metric {
	return []metric{
		gauge("heavy_size_bytes", "The HEAVY zone's budget (--heavy-size).", func(st *protocol.Stats) float64 { return float64(st.Heavy.Size) }),
		gauge("heavy_in_use_bytes", "Bytes in HEAVY blocks (tensors committed or being written).", func(st *protocol.Stats) float64 { return float64(st.Heavy.InUse) }),
		gauge("heavy_free_bytes", "Bytes of the slabs not in blocks.", func(st *protocol.Stats) float64 { return float64(st.Heavy.Held - st.Heavy.InUse) }),
		gauge("heavy_largest_free_bytes", "The largest tensor one worker could write now.", func(st *protocol.Stats) float64 { return float64(st.Heavy.LargestFree) }),
		labeled("heavy_slabs", "HEAVY slabs: live (one per worker) and retired (a dead worker's, holding committed tensors).", []string{"state"},
			func(d *prometheus.Desc, st *protocol.Stats, emit func(prometheus.Metric)) {
				emit(prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(st.Heavy.Slabs), "live"))
				emit(prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(st.Heavy.Retired), "retired"))
			}),
		gauge("heavy_blocks", "HEAVY blocks allocated.", func(st *protocol.Stats) float64 { return float64(st.Heavy.Blocks) }),
	}
}
