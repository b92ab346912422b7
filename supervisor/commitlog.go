package supervisor

import (
	"slices"
	"sync"
	"time"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/protocol"
)

// DefaultCommitLog is Config.CommitLog's default: the commits the log
// keeps.
const DefaultCommitLog = 1024

// commitLog is the META ring: the last commits, in version order, as the
// original keeps its META zone. add runs under the store's lock, for
// every commit: it fills a slot in place (the slot's path slice is
// reused once the ring wraps), so it allocates nothing once every slot
// has been used, and its lock is never held while calling out.
type commitLog struct {
	mu    sync.Mutex
	slots []protocol.LogEntry
	total uint64 // commits ever added: the newest is slots[(total-1)%len]
	// followers are woken (a send that never blocks) after each add.
	followers map[chan struct{}]struct{}
}

func newCommitLog(size int) *commitLog {
	if size <= 0 {
		size = DefaultCommitLog
	}
	return &commitLog{slots: make([]protocol.LogEntry, size), followers: map[chan struct{}]struct{}{}}
}

// add records c, committed now.
func (l *commitLog) add(c cas.Commit) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	e := &l.slots[l.total%uint64(len(l.slots))]
	paths := e.Paths[:0]
	for i := range c.Changes {
		if len(paths) == protocol.MaxLogPaths {
			break
		}
		paths = append(paths, string(c.Changes[i].Path))
	}
	*e = protocol.LogEntry{
		Version: uint64(c.Version), Time: now, Process: c.Origin.Process, OpID: c.OpID,
		Paths: paths, MorePaths: len(c.Changes) - len(paths), Signals: len(c.Signals),
		Attempts: c.Origin.Attempts, Conflicts: c.Origin.Conflicts, VIP: c.Origin.VIP,
	}
	if !c.Origin.Start.IsZero() {
		e.DurationNS = int64(now.Sub(c.Origin.Start))
	}
	l.total++
	for f := range l.followers {
		select {
		case f <- struct{}{}:
		default:
		}
	}
}

// since returns the commits from the next-th (counting from 0 at the
// start) that process made ("" for all), oldest first, at most max of
// them (max ≤ 0: no limit); how many it skipped because they had left the
// ring; and where to go on from.
func (l *commitLog) since(next uint64, process string, max int) (out []protocol.LogEntry, lagged, after uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if oldest := l.total - min(l.total, uint64(len(l.slots))); next < oldest {
		lagged, next = oldest-next, oldest
	}
	for ; next < l.total && (max <= 0 || len(out) < max); next++ {
		e := l.slots[next%uint64(len(l.slots))]
		if process != "" && e.Process != process {
			continue
		}
		e.Paths = slices.Clone(e.Paths) // the slot's slice is reused
		out = append(out, e)
	}
	return out, lagged, next
}

// last returns the newest n commits that process made ("" for all),
// oldest first, and how many commits the log has held.
func (l *commitLog) last(n int, process string) ([]protocol.LogEntry, uint64) {
	l.mu.Lock()
	total, size := l.total, uint64(len(l.slots))
	var out []protocol.LogEntry
	for i := total; i > total-min(total, size) && len(out) < n; i-- {
		e := l.slots[(i-1)%size]
		if process != "" && e.Process != process {
			continue
		}
		e.Paths = slices.Clone(e.Paths)
		out = append(out, e)
	}
	l.mu.Unlock()
	slices.Reverse(out)
	return out, total
}

// start returns where a follower that wants the newest n commits of
// process before the new ones should begin.
func (l *commitLog) start(n int, process string) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	size := uint64(len(l.slots))
	next := l.total
	for seen := 0; next > l.total-min(l.total, size) && seen < n; next-- {
		if process == "" || l.slots[(next-1)%size].Process == process {
			seen++
		}
	}
	return next
}

// follow registers a wake-up channel (size one), woken after every add,
// until the returned func is called.
func (l *commitLog) follow() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	l.mu.Lock()
	l.followers[ch] = struct{}{}
	l.mu.Unlock()
	return ch, func() {
		l.mu.Lock()
		delete(l.followers, ch)
		l.mu.Unlock()
	}
}

// size is how many commits the log keeps.
func (l *commitLog) size() int { return len(l.slots) }

// count is how many commits the log has held since the start.
func (l *commitLog) count() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total
}
