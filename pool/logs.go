package pool

import (
	"bytes"
	"encoding/json"
	"sync"

	"github.com/rs/zerolog"
)

// maxLogLine bounds one forwarded line; longer lines are cut.
const maxLogLine = 64 << 10

// lineLog forwards a worker's output to the supervisor's log, one entry a
// line, tagged with the worker. A JSON line (the SDK's zerolog output) is
// embedded as is; anything else is logged as text.
type lineLog struct {
	log    zerolog.Logger
	stream string
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
			if len(l.buf) > maxLogLine {
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
	if len(line) > maxLogLine {
		line = line[:maxLogLine]
	}
	l.tail = append(l.tail, string(line))
	if len(l.tail) > 5 {
		l.tail = l.tail[1:]
	}
	if json.Valid(line) && line[0] == '{' {
		l.log.Info().Str("stream", l.stream).RawJSON("worker_log", line).Send()
		return
	}
	l.log.Info().Str("stream", l.stream).Str("line", string(line)).Send()
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
