package pool

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// TestWorkerLogsAreForwarded: JSON lines are embedded, text lines quoted,
// lines split across writes joined, over-long lines cut.
func TestWorkerLogsAreForwarded(t *testing.T) {
	var out bytes.Buffer
	l := &lineLog{log: zerolog.New(&out).With().Int("slot", 3).Logger(), stream: "stderr", budget: newLogBudget()}
	l.Write([]byte(`{"level":"info","message":"hi"}` + "\nplain te"))
	l.Write([]byte("xt\n\n"))
	l.Write([]byte(strings.Repeat("x", maxLogBuffer+10)))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d entries: %q", len(lines), out.String())
	}
	var first struct {
		Slot int `json:"slot"`
		Log  struct {
			Message string `json:"message"`
		} `json:"worker_log"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil || first.Slot != 3 || first.Log.Message != "hi" {
		t.Fatalf("json line: %s (%v)", lines[0], err)
	}
	if !strings.Contains(lines[1], `"line":"plain text"`) {
		t.Fatalf("text line: %s", lines[1])
	}
	if got := l.last(); len(got) != 3 || got[1] != "plain text" {
		t.Fatalf("tail %q", got)
	}
	var third struct {
		Line string `json:"line"`
		Cut  int    `json:"cut_from"`
	}
	if err := json.Unmarshal([]byte(lines[2]), &third); err != nil || len(third.Line) != maxLogLine || third.Cut != maxLogBuffer+10 {
		t.Fatalf("long line: %d bytes, cut from %d (%v)", len(third.Line), third.Cut, err)
	}
}

// TestLogBudget: a flood is cut to the budget, what is dropped is counted
// and reported once, and the budget refills with time.
func TestLogBudget(t *testing.T) {
	b := newLogBudget()
	now := time.Now()
	sent := 0
	for range 100000 {
		if b.allow(now, 100) {
			sent++
		}
	}
	if max := logBurst/(100+logLineCost) + 1; sent > max || sent < max/2 {
		t.Fatalf("%d lines through a burst of %d bytes, want about %d", sent, logBurst, max)
	}
	if got := b.dropped(); got != uint64(100000-sent) {
		t.Fatalf("dropped %d, want %d", got, 100000-sent)
	}
	var out bytes.Buffer
	b.report(zerolog.New(&out))
	b.report(zerolog.New(&out)) // nothing new: no second entry
	if n := strings.Count(out.String(), "\n"); n != 1 || !strings.Contains(out.String(), fmt.Sprintf(`"dropped_lines":%d`, 100000-sent)) {
		t.Fatalf("report: %q", out.String())
	}
	if !b.allow(now.Add(time.Second), 1000) {
		t.Fatal("the budget did not refill after a second")
	}
}

// TestFloodingWorkerIsBounded: a worker that writes garbage as fast as it
// can, before and after its handshake, costs the supervisor's log at most
// its budget, and the pool still works.
func TestFloodingWorkerIsBounded(t *testing.T) {
	var log countingWriter
	p := start(t, 1, func(c *Config) {
		c.Env = append(c.Env, "THEUS_TEST_BAD_WORKER=flood")
		c.Log = zerolog.New(&log)
	})
	began := time.Now()
	for time.Since(began) < 2*time.Second {
		if _, err := dispatch(t, p, "noop", ""); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	elapsed := time.Since(began) + 10*time.Second // the start, generously
	// Each forwarded line costs at most its budget plus the entry's own
	// fields; allow 2x for them.
	limit := 2 * (logBurst + int64(elapsed.Seconds()*logRate))
	if n := log.n.Load(); n > limit {
		t.Fatalf("the supervisor logged %d bytes of a flooding worker's output, over %d", n, limit)
	}
	p.mu.Lock()
	pr := p.slots[0].cur
	p.mu.Unlock()
	if pr == nil || pr.logs.dropped() == 0 {
		t.Fatal("a flood dropped nothing")
	}
}

type countingWriter struct {
	n atomic.Int64
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.n.Add(int64(len(p)))
	return len(p), nil
}

// A JSON line cut at maxLogLine is no longer JSON: it is logged as text,
// with its length, never embedded as a broken object.
func TestCutJSONLineIsText(t *testing.T) {
	var out bytes.Buffer
	l := &lineLog{log: zerolog.New(&out), stream: "stderr", budget: newLogBudget()}
	long := `{"level":"info","message":"` + strings.Repeat("x", maxLogLine) + `"}`
	l.Write([]byte(long + "\n"))
	var e struct {
		Line string `json:"line"`
		Cut  int    `json:"cut_from"`
	}
	if err := json.Unmarshal(out.Bytes(), &e); err != nil || len(e.Line) != maxLogLine || e.Cut != len(long) {
		t.Fatalf("a cut JSON line: %.200s (%v)", out.String(), err)
	}
}
