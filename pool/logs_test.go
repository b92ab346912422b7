package pool

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

// TestWorkerLogsAreForwarded: JSON lines are embedded, text lines quoted,
// lines split across writes joined, over-long lines cut.
func TestWorkerLogsAreForwarded(t *testing.T) {
	var out bytes.Buffer
	l := &lineLog{log: zerolog.New(&out).With().Int("slot", 3).Logger(), stream: "stderr"}
	l.Write([]byte(`{"level":"info","message":"hi"}` + "\nplain te"))
	l.Write([]byte("xt\n\n"))
	l.Write([]byte(strings.Repeat("x", maxLogLine+10)))
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
}
