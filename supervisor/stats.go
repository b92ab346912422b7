package supervisor

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/theus-run/theus/protocol"
)

// startObserve registers the observability methods: stats, log and the
// log.follow stream (docs/OPERATIONS.md).
func (s *Supervisor) startObserve() {
	s.registerMethod(protocol.MethodStats, func(_ context.Context, body []byte) (any, error) {
		if err := decodeBody(body, &struct{}{}); err != nil {
			return nil, err
		}
		return s.Stats(), nil
	})
	s.registerMethod(protocol.MethodLog, func(_ context.Context, body []byte) (any, error) {
		var req protocol.LogRequest
		if err := decodeBody(body, &req); err != nil {
			return nil, err
		}
		return s.Log(req)
	})
	s.registerStream(protocol.StreamLog, s.followLog)
}

// Stats returns every counter of the supervisor (protocol.Stats). It
// reads the pools, the store and the zone under their own locks, and the
// flux runs from a snapshot: call it about once a second, not per
// request.
func (s *Supervisor) Stats() protocol.Stats {
	st := protocol.Stats{
		Time: time.Now(), Started: s.started, Version: s.statsVersion(), Mode: s.mode,
		Commits: s.commits.Load(), Conflicts: s.conflicts.Load(), Retries: s.retries.Load(),
		VIP: s.vips.Load(), Failures: s.failures.Load(), Redispatches: s.redispatches.Load(),
		AttemptsPerCommit: s.attempts.State(), ConflictsPerCommit: s.conflictsPer.State(),
		CommitLog: s.log.count(), CommitLogSize: s.log.size(),
		FluxRuns: map[string]int{}, AuditViolations: map[string]uint64{},
	}
	for _, name := range s.names {
		st.Processes = append(st.Processes, s.byProcess[name].state(name))
	}
	if u := s.unknown.state("_unknown"); u.Total() > 0 {
		st.Processes = append(st.Processes, u)
	}
	cs := s.store.Stats()
	st.Store = protocol.StoreStats{Paths: cs.Paths, Snapshots: cs.Snapshots, Epochs: cs.Epochs, History: cs.History}
	st.Tickets = protocol.TicketStats{
		Granted: s.granted.Load(), Released: s.released.Load(), Expired: s.expired.Load(), Revoked: s.revoked.Load(),
		Held: s.held.Load(), GateWaits: cs.GateWaits,
	}
	for i, p := range s.pools {
		plugin := filepath.Base(s.cfg.Plugins[i].Command[0])
		for _, w := range p.WorkerStatus() {
			st.Workers = append(st.Workers, protocol.WorkerStats{
				Plugin: plugin, Slot: w.Slot, PID: w.PID, State: w.State, InFlight: w.InFlight,
				Processed: w.Processed, Restarts: w.Restarts, RSS: rss(w.PID),
			})
		}
		st.DispatchQueue += p.Waiting()
		st.LateWakes += p.LateWakes()
	}
	for i := range st.Workers {
		st.Workers[i].Slot = int64(i) // numbered across the plugins, as Status does
	}
	hs := s.zone.Stats()
	st.Heavy = protocol.HeavyStats{Size: hs.Size, SlabSize: hs.SlabSize, Slabs: int64(hs.Slabs), Retired: int64(hs.Retired),
		Held: hs.Held, InUse: hs.InUse, Blocks: int64(hs.Blocks), LargestFree: hs.LargestFree, InlineMax: int64(hs.InlineMax)}
	for _, sl := range s.zone.Slabs() {
		st.Heavy.PerSlab = append(st.Heavy.PerSlab, protocol.SlabStats{ID: sl.ID, InUse: sl.InUse, Retired: sl.Retired})
	}
	st.Journal = protocol.JournalStats{Mode: "none", Bytes: s.written.Load(), BatchSize: s.batchSize.State(), Fsync: s.fsync.State()}
	if s.journal != nil {
		js := s.journal.Stats()
		st.Journal.Mode, st.Journal.Durable, st.Journal.Batches, st.Journal.Commits = s.cfg.Durability.String(), uint64(js.Durable), js.Batches, js.Commits
	}
	if t := s.lastFlush.Load(); t != 0 {
		st.Journal.LastFlush = time.Unix(0, t)
	}
	s.connMu.Lock()
	st.Clients = len(s.conns)
	s.connMu.Unlock()
	if s.flux != nil {
		if runs, err := s.flux.List(); err == nil {
			for _, r := range runs.Runs {
				st.FluxRuns[r.Status]++
			}
		}
	}
	ss := s.signals.Stats()
	st.Signals = protocol.SignalStats{Published: ss.Published, Missed: ss.Missed, Undelivered: ss.Undelivered, Subscribers: ss.Subscribers, Lagging: ss.Lagging}
	if s.audit != nil {
		maps.Copy(st.AuditViolations, s.audit.tracker.Levels())
	}
	return st
}

// state reads a process's counters.
func (pm *procMeter) state(name string) protocol.ProcessStats {
	ps := protocol.ProcessStats{Name: name, Outcomes: map[string]uint64{}, Latency: pm.latency.State()}
	for i := range pm.outcomes {
		if n := pm.outcomes[i].Load(); n > 0 {
			ps.Outcomes[outcomeNames[i]] = n
		}
	}
	return ps
}

// defaultLog is how many commits a log call without n returns.
const defaultLog = 20

// Log returns the newest commits of the commit log (protocol.LogRequest).
func (s *Supervisor) Log(req protocol.LogRequest) (protocol.LogReply, error) {
	n, err := s.logCount(req.N)
	if err != nil {
		return protocol.LogReply{}, err
	}
	entries, total := s.log.last(n, req.Process)
	if entries == nil {
		entries = []protocol.LogEntry{}
	}
	return protocol.LogReply{Entries: entries, Total: total, Size: s.log.size()}, nil
}

// logCount checks a log request's n: 0 is defaultLog, more than the log
// keeps is all it keeps.
func (s *Supervisor) logCount(n int) (int, error) {
	switch {
	case n < 0:
		return 0, protocol.Errorf(protocol.CodeBadRequest, "log: n %d: want 0 (the default, %d) or more", n, defaultLog)
	case n == 0:
		return defaultLog, nil
	}
	return min(n, s.log.size()), nil
}

// logFollowing is log.follow's first item: the stream is in place, and
// every commit from then on will be sent.
type logFollowing struct {
	Following string `json:"following"` // the process followed, "" for all
}

// followLog streams an item logFollowing, the newest n commits, then each
// new one, until the client unsubscribes; a follower that falls more
// than the log's size behind gets an item {"lagged": N} where commits
// went missing.
func (s *Supervisor) followLog(ctx context.Context, body []byte, send func(...any) error) error {
	var req protocol.LogRequest
	if err := decodeBody(body, &req); err != nil {
		return err
	}
	n, err := s.logCount(req.N)
	if err != nil {
		return err
	}
	wake, stop := s.log.follow()
	defer stop()
	next := s.log.start(n, req.Process)
	if err := send(logFollowing{Following: req.Process}); err != nil {
		return err
	}
	var items []any
	for {
		entries, lagged, after := s.log.since(next, req.Process, 256)
		next = after
		items = items[:0]
		if lagged > 0 {
			items = append(items, protocol.LogEntry{Lagged: lagged})
		}
		for _, e := range entries {
			items = append(items, e)
		}
		if len(items) > 0 {
			if err := send(items...); err != nil {
				return err
			}
		}
		if len(entries) == 256 {
			continue // more is waiting
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// rss returns a process's resident set in bytes, 0 when it cannot be
// read (no /proc, or the process is gone).
func rss(pid int64) int64 {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.FormatInt(pid, 10) + "/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0
	}
	return pages * int64(os.Getpagesize())
}
