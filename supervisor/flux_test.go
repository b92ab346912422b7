package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/theus-run/theus/client"
	"github.com/theus-run/theus/flux"
	"github.com/theus-run/theus/protocol"
)

// fluxDir writes files (name → YAML) into a new directory.
func fluxDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, src := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func runFlow(t *testing.T, c *client.Client, req flux.RunRequest) *flux.RunView {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var v flux.RunView
	if err := c.Call(ctx, protocol.MethodFluxRun, req, &v); err != nil {
		t.Fatalf("flux.run %+v: %v", req, err)
	}
	return &v
}

func counter(t *testing.T, c *client.Client, key string) int64 {
	t.Helper()
	e, err := c.Get(context.Background(), "domain.counters."+key)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	if err := json.Unmarshal(e.Entries[0].Value, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

const loopFlow = `
name: loop
steps:
  - process: counters.add
    args: {key: a}
  - flux: while
    condition: domain['counters']['a'] < 5
    do:
      - process: counters.add
        args: {key: a}
  - flux: if
    condition: domain.counters.get('a', 0) == 5 and args['mode'] == 'x'
    then:
      - process: counters.add
        args: {key: b, by: 10}
    else:
      - process: counters.add
        args: {key: b, by: 20}
  - process: bank.transfer
    args: {from: nobody, to: noone, amount: 5}
    on_fail:
      - process: counters.add
        args: {key: c}
      - flux: continue
`

func TestFluxRunEndToEnd(t *testing.T) {
	dir := fluxDir(t, map[string]string{"loop.yaml": loopFlow})
	h := start(t, 2, func(c *Config) { c.Flux = dir })
	c := h.dial(t)
	v := runFlow(t, c, flux.RunRequest{Name: "loop", Args: json.RawMessage(`{"mode":"x"}`)})
	if v.Status != flux.StatusComplete {
		t.Fatalf("run: %+v", v)
	}
	if a, b, cc := counter(t, c, "a"), counter(t, c, "b"), counter(t, c, "c"); a != 5 || b != 10 || cc != 1 {
		t.Fatalf("a=%d b=%d c=%d, want 5 10 1; run %+v", a, b, cc, v)
	}
	// 5 adds of a, 1 of b, the failed transfer, 1 add of c.
	if len(v.Steps) != 8 || v.Steps[6].Code == "" || v.Steps[7].Process != "counters.add" {
		t.Fatalf("steps: %+v", v.Steps)
	}
	for i, s := range v.Steps {
		if s.Code == "" && (s.Version == 0 || s.Attempts < 1) {
			t.Fatalf("step %d: %+v", i, s)
		}
	}
	st := runFlow(t, c, flux.RunRequest{Name: "loop", ID: v.Run, Args: json.RawMessage(`{"mode":"x"}`)})
	if st.Run != v.Run || len(st.Steps) != 8 {
		t.Fatalf("the same id again: %+v", st)
	}
	if a := counter(t, c, "a"); a != 5 {
		t.Fatalf("a start with the same id ran again: a=%d", a)
	}
}

// TestFluxExamples runs the examples in examples/flux as docs/FLUX.md
// shows them: the sensor workflow, and the door machine driven through
// closed → opening → open → closed twice by events.
func TestFluxExamples(t *testing.T) {
	h := start(t, 2, func(c *Config) { c.Flux = filepath.Join("..", "examples", "flux") })
	c := h.dial(t)
	ctx := context.Background()
	v, err := c.RunFlow(ctx, client.FlowRequest{Name: "sensor", Args: json.RawMessage(`{"mode":"active","by":3}`)})
	if err != nil || v.Status != flux.StatusComplete {
		t.Fatalf("sensor: %+v %v", v, err)
	}
	if r, a, f := counter(t, c, "readings"), counter(t, c, "active"), counter(t, c, "transfer_failed"); r != 5 || a != 3 || f != 1 {
		t.Fatalf("readings=%d active=%d transfer_failed=%d, want 5 3 1", r, a, f)
	}
	m, err := c.StartMachine(ctx, "door", "front", nil)
	if err != nil || m.State != "closed" || m.Status != "active" {
		t.Fatalf("start: %+v %v", m, err)
	}
	for round := 1; round <= 2; round++ {
		if m, err = c.SendEvent(ctx, "front", "domain.door.cmd_open"); err != nil || m.State != "opening" {
			t.Fatalf("open: %+v %v", m, err)
		}
		if m = waitState(t, c, "front", "open"); m.Status != "active" {
			t.Fatalf("open: %+v", m)
		}
		if n := counter(t, c, "opened"); n != int64(round) {
			t.Fatalf("opened %d times after %d rounds", n, round)
		}
		if _, err := c.SendEvent(ctx, "front", "domain.door.cmd_open"); !errors.Is(err, protocol.ErrBadRequest) {
			t.Fatalf("open when open: %v, want bad_request", err)
		}
		if m, err = c.SendEvent(ctx, "front", "domain.door.cmd_close"); err != nil || m.State != "closed" {
			t.Fatalf("close: %+v %v", m, err)
		}
	}
	if len(m.History) != 6 {
		t.Fatalf("history: %+v", m.History)
	}
	for i := 1; i < len(m.History); i++ {
		if m.History[i].Version <= m.History[i-1].Version {
			t.Fatalf("history versions: %+v", m.History)
		}
	}
}

// waitState polls machine id until it is in state.
func waitState(t *testing.T, c *client.Client, id, state string) *client.Machine {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		m, err := c.MachineStatus(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if m.State == state {
			return m
		}
	}
	t.Fatalf("machine %s never reached %s", id, state)
	return nil
}

// TestFluxCancelAndWatch: a watcher sees a detached run's steps start
// and finish and its end; cancel stops it between steps, its committed
// steps kept, and a second cancel is refused.
func TestFluxCancelAndWatch(t *testing.T) {
	dir := fluxDir(t, map[string]string{"forever.yaml": `
steps:
  - flux: while
    condition: True
    do:
      - process: counters.add
        args: {key: forever}
`})
	h := start(t, 1, func(c *Config) { c.Flux = dir })
	c := h.dial(t)
	ctx := context.Background()
	f, err := c.RunFlow(ctx, client.FlowRequest{Name: "forever", Detach: true, MaxOps: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.WatchFlow(ctx, f.Run)
	if err != nil {
		t.Fatal(err)
	}
	finished := 0
	var last map[string]any
	for item := range st.Items() {
		var ev map[string]any
		if err := json.Unmarshal(item, &ev); err != nil {
			t.Fatal(err)
		}
		last = ev
		if ev["event"] == "step" && ev["state"] == "finished" {
			finished++
			if finished == 5 {
				go c.CancelFlow(ctx, f.Run)
			}
		}
	}
	if err := st.Err(); err != nil {
		t.Fatal(err)
	}
	if last["event"] != "end" || last["status"] != flux.StatusCancelled || last["code"] != flux.CodeCancelled {
		t.Fatalf("last event %v", last)
	}
	v, err := c.FlowStatus(ctx, f.Run)
	if err != nil || v.Status != flux.StatusCancelled {
		t.Fatalf("status %+v %v", v, err)
	}
	if n := counter(t, c, "forever"); n != int64(len(v.Steps)) || n < 5 {
		t.Fatalf("counter %d, %d steps committed", n, len(v.Steps))
	}
	if _, err := c.CancelFlow(ctx, f.Run); !errors.Is(err, protocol.ErrBadRequest) {
		t.Fatalf("cancel of a cancelled run: %v", err)
	}
	// Watching a run that ended sends its end at once.
	st, err = c.WatchFlow(ctx, f.Run)
	if err != nil {
		t.Fatal(err)
	}
	var ends int
	for item := range st.Items() {
		if strings.Contains(string(item), `"event":"end"`) {
			ends++
		}
	}
	if ends != 1 || st.Err() != nil {
		t.Fatalf("watch of an ended run: %d ends, %v", ends, st.Err())
	}
}

// TestFluxWaitAndSignalLatch: a run parks on flux: wait until a signal
// under its path is committed, then a condition sees that signal in
// `signal` (the run's own latch, emptied by the next step); a wait with a timeout fails with
// flux_timeout.
func TestFluxWaitAndSignalLatch(t *testing.T) {
	dir := fluxDir(t, map[string]string{
		"waiter.yaml": `
steps:
  - process: counters.add
    args: {key: waited}
  - flux: wait
    signal: domain.door
    timeout: 60s
  - flux: if
    condition: signal.domain.door.cmd_go == 'yes' and 'cmd_other' in signal.global
    then:
      - process: counters.add
        args: {key: go_yes}
  - process: counters.add
    args: {key: after}
  - flux: if
    condition: signal.get('domain') != None
    then:
      - process: counters.add
        args: {key: stale}
`,
		"impatient.yaml": `
steps:
  - flux: wait
    signal: domain.never.cmd_x
    timeout: 0.2
`})
	h := start(t, 1, func(c *Config) { c.Flux = dir })
	c := h.dial(t)
	ctx := context.Background()
	f, err := c.RunFlow(ctx, client.FlowRequest{Name: "waiter", Detach: true})
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(2 * time.Millisecond) {
		v, err := c.FlowStatus(ctx, f.Run)
		if err != nil {
			t.Fatal(err)
		}
		if v.Status == flux.StatusWaiting {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the run never waited: %+v", v)
		}
	}
	if _, err := c.Signal(ctx, "global.cmd_other", nil); err != nil { // not under domain.door: ignored
		t.Fatal(err)
	}
	if _, err := c.Signal(ctx, "domain.door.cmd_go", "yes"); err != nil {
		t.Fatal(err)
	}
	v, err := c.RunFlow(ctx, client.FlowRequest{Name: "waiter", ID: f.Run})
	if err != nil || v.Status != flux.StatusComplete {
		t.Fatalf("%+v %v", v, err)
	}
	if n := counter(t, c, "go_yes"); n != 1 {
		t.Fatalf("go_yes = %d: the condition did not see the signal", n)
	}
	// The latch holds the signals since the run's previous step only.
	if _, err := c.Get(ctx, "domain.counters.stale"); !errors.Is(err, protocol.ErrNotFound) {
		t.Fatalf("a condition saw a signal from before the previous step: %v", err)
	}
	v, err = c.RunFlow(ctx, client.FlowRequest{Name: "impatient"})
	if err != nil || v.Status != flux.StatusFailed || v.Code != flux.CodeTimeout || v.Step == nil || v.Step.Kind != "wait" {
		t.Fatalf("impatient: %+v %v", v, err)
	}
}

// TestFSMDrivenBySignals: the door machine of examples/flux is driven
// through closed → opening → open → closed three times by committed
// signals alone; each cycle runs its entry block once.
func TestFSMDrivenBySignals(t *testing.T) {
	h := start(t, 2, func(c *Config) { c.Flux = filepath.Join("..", "examples", "flux") })
	c := h.dial(t)
	ctx := context.Background()
	if _, err := c.StartMachine(ctx, "door", "d1", nil); err != nil {
		t.Fatal(err)
	}
	var m *client.Machine
	for round := 1; round <= 3; round++ {
		if _, err := c.Signal(ctx, "domain.door.cmd_open", nil); err != nil {
			t.Fatal(err)
		}
		waitState(t, c, "d1", "open")
		if _, err := c.Signal(ctx, "domain.door.cmd_close", nil); err != nil {
			t.Fatal(err)
		}
		m = waitState(t, c, "d1", "closed")
	}
	if n := counter(t, c, "opened"); n != 3 {
		t.Fatalf("opened %d times in 3 cycles", n)
	}
	var path []string
	for _, tr := range m.History {
		path = append(path, tr.On+"→"+tr.To)
	}
	want := strings.Repeat("domain.door.cmd_open→opening done→open domain.door.cmd_close→closed ", 3)
	if got := strings.Join(path, " ") + " "; got != want {
		t.Fatalf("history %s, want %s", got, want)
	}
}
