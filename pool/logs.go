package pool

import (
	"bytes"
	"encoding/json"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/time/rate"
)

// Bounds on what a worker's output costs the supervisor. A line longer
// than maxLogLine is cut there (longer runs without a newline are split
// at maxLogBuffer first); every forwarded line spends len+logLineCost
// bytes of its worker's budget, logRate a second with logBurst in
// reserve, and a line over the budget is dropped and counted.
const (
	maxLogLine   = 4 << 10
	maxLogBuffer = 64 << 10
	logLineCost  = 128
	logRate      = 256 << 10
	logBurst     = 1 << 20
)

// logBudget is the log budget one worker's stdout and stderr share, and
// what it dropped.
type logBudget struct {
	lim *rate.Limiter

	mu           sync.Mutex
	lines, bytes uint64 // dropped since the last report
	total        uint64 // lines dropped over the worker's life
}

func newLogBudget() *logBudget {
	return &logBudget{lim: rate.NewLimiter(logRate, logBurst)}
}

// allow spends n bytes of the budget, or counts the line as dropped.
func (b *logBudget) allow(now time.Time, n int) bool {
	if b.lim.AllowN(now, n+logLineCost) {
		return true
	}
	b.mu.Lock()
	b.lines++
	b.bytes += uint64(n)
	b.total++
	b.mu.Unlock()
	return false
}

// report logs, once, how much was dropped since the last report.
func (b *logBudget) report(log zerolog.Logger) {
	b.mu.Lock()
	lines, n := b.lines, b.bytes
	b.lines, b.bytes = 0, 0
	b.mu.Unlock()
	if lines > 0 {
		log.Warn().Uint64("dropped_lines", lines).Uint64("dropped_bytes", n).
			Msg("worker output over its log budget was dropped")
	}
}

// dropped returns the lines dropped over the worker's life.
func (b *logBudget) dropped() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.total
}

// lineLog forwards a worker's output to the supervisor's log, one entry a
// line, tagged with the worker, within the worker's budget. A JSON line
// (the SDK's zerolog output) is embedded as is; anything else is logged
// as text.
type lineLog struct {
	log    zerolog.Logger
	stream string
	budget *logBudget // shared by the worker's streams
	mu     sync.Mutex
	buf    []byte
	tail   []string // the last lines, for errors at start
}

func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			if len(l.buf) > maxLogBuffer {
				l.emit(l.buf)
				l.buf = l.buf[:0]
			}
			return len(p), nil
		}
		l.emit(l.buf[:i])
		l.buf = l.buf[:copy(l.buf, l.buf[i+1:])]
	}
}

func (l *lineLog) emit(line []byte) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return
	}
	cut := 0
	if len(line) > maxLogLine {
		cut, line = len(line), line[:maxLogLine]
	}
	if !l.budget.allow(time.Now(), len(line)) {
		return
	}
	l.budget.report(l.log) // what was dropped before this line
	l.tail = append(l.tail, string(line))
	if len(l.tail) > 5 {
		l.tail = l.tail[1:]
	}
	e := l.log.Info().Str("stream", l.stream)
	if cut > 0 {
		e = e.Int("cut_from", cut)
	}
	if cut == 0 && line[0] == '{' && json.Valid(line) {
		e.RawJSON("worker_log", line).Send()
		return
	}
	e.Str("line", string(line)).Send()
}

// last returns the last lines written, for an error message.
func (l *lineLog) last() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.tail...)
}

func (l *lineLog) setLog(log zerolog.Logger) {
	l.mu.Lock()
	l.log = log
	l.mu.Unlock()
}
