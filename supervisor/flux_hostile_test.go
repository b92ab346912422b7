package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/theus-run/theus/client"
	"github.com/theus-run/theus/flux"
	"github.com/theus-run/theus/pool"
	"github.com/theus-run/theus/protocol"
)

// TestFluxManyRunsAtOnce: 50 detached runs, half on one shared key and
// half on a key each, all end complete and every counter is exact.
func TestFluxManyRunsAtOnce(t *testing.T) {
	const runs, steps = 50, 6
	dir := fluxDir(t, map[string]string{"many.yaml": `
steps:
  - flux: while
    condition: run.ops <= 2 * 6
    do:
      - process: counters.add
        args: {key: "${ args['key'] }"}
`})
	h := start(t, 2, func(c *Config) { c.Flux = dir })
	c := h.dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	ids := make([]string, runs)
	var wg sync.WaitGroup
	errs := make(chan error, runs)
	for i := range runs {
		key := "shared"
		if i%2 == 1 {
			key = fmt.Sprintf("own%d", i)
		}
		wg.Go(func() {
			f, err := c.RunFlow(ctx, client.FlowRequest{Name: "many", Detach: true, Args: json.RawMessage(`{"key":"` + key + `"}`)})
			if err != nil {
				errs <- err
				return
			}
			ids[i] = f.Run
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, id := range ids {
		v, err := c.RunFlow(ctx, client.FlowRequest{Name: "many", ID: id, Args: nil})
		if err == nil {
			t.Fatalf("the id of a run with other args was taken again: %+v", v)
		}
		var f *client.Flow
		for f == nil || f.Status == flux.StatusRunning {
			if f, err = c.FlowStatus(ctx, id); err != nil {
				t.Fatal(err)
			}
			time.Sleep(5 * time.Millisecond)
		}
		if f.Status != flux.StatusComplete || len(f.Steps) != steps {
			t.Fatalf("run %s: %+v", id, f)
		}
	}
	if n := counter(t, c, "shared"); n != runs/2*steps {
		t.Fatalf("shared = %d, want %d", n, runs/2*steps)
	}
	for i := 1; i < runs; i += 2 {
		if n := counter(t, c, fmt.Sprintf("own%d", i)); n != steps {
			t.Fatalf("own%d = %d, want %d", i, n, steps)
		}
	}
}

// TestFluxSameIDConcurrently: 10 clients start a run with one id at once:
// one run exists, its steps applied once, and every client gets it.
func TestFluxSameIDConcurrently(t *testing.T) {
	dir := fluxDir(t, map[string]string{"five.yaml": stepsFlow(5, "same")})
	h := start(t, 2, func(c *Config) { c.Flux = dir })
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	views := make([]*client.Flow, 10)
	errs := make([]error, 10)
	for i := range views {
		c := h.dial(t)
		wg.Go(func() {
			views[i], errs[i] = c.RunFlow(ctx, client.FlowRequest{Name: "five", ID: "one"})
		})
	}
	wg.Wait()
	for i, v := range views {
		if errs[i] != nil || v.Run != "one" || v.Status != flux.StatusComplete || len(v.Steps) != 5 {
			t.Fatalf("client %d: %+v %v", i, v, errs[i])
		}
	}
	c := h.dial(t)
	if n := counter(t, c, "same"); n != 5 {
		t.Fatalf("counter %d, want 5", n)
	}
	l, err := c.ListFlows(ctx)
	if err != nil || len(l.Runs) != 1 {
		t.Fatalf("list: %+v %v", l, err)
	}
}

// TestFluxWatchRacesTheEnd: a watcher of a run that ends while it
// subscribes always gets the end (or an error), never hangs.
func TestFluxWatchRacesTheEnd(t *testing.T) {
	dir := fluxDir(t, map[string]string{"one.yaml": stepsFlow(1, "w1")})
	h := start(t, 2, func(c *Config) { c.Flux = dir })
	c := h.dial(t)
	for i := range 40 {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		f, err := c.RunFlow(ctx, client.FlowRequest{Name: "one", Detach: true})
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			time.Sleep(time.Duration(i) * 100 * time.Microsecond)
		}
		st, err := c.WatchFlow(ctx, f.Run)
		if err != nil {
			t.Fatal(err)
		}
		var last string
		for item := range st.Items() {
			last = string(item)
		}
		if st.Err() != nil || !strings.Contains(last, `"event":"end"`) || !strings.Contains(last, flux.StatusComplete) {
			t.Fatalf("watch %d: last %s, err %v", i, last, st.Err())
		}
		cancel()
	}
}

// TestFluxBadBodies: every malformed flux.* and fsm.* body is a
// bad_request (or not_found for an id that names nothing) and starts
// nothing.
func TestFluxBadBodies(t *testing.T) {
	dir := fluxDir(t, map[string]string{"one.yaml": stepsFlow(1, "bad"), "fin.yaml": "initial: a\nstates:\n  a:\n"})
	h := start(t, 1, func(c *Config) { c.Flux = dir })
	c := h.dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	big := strings.Repeat("#", flux.MaxSource) + "\nsteps: [counters.add]\n"
	cases := []struct {
		method string
		body   any
	}{
		{protocol.MethodFluxRun, `[]`},
		{protocol.MethodFluxRun, `"one"`},
		{protocol.MethodFluxRun, `{"name":5}`},
		{protocol.MethodFluxRun, `{"name":"one","colour":"red"}`},
		{protocol.MethodFluxRun, `{"name":"one","args":[1]}`},
		{protocol.MethodFluxRun, `{"name":"one","args":"x"}`},
		{protocol.MethodFluxRun, `{"name":"one","args":5}`},
		{protocol.MethodFluxRun, `{"name":"one","id":"a.b"}`},
		{protocol.MethodFluxRun, `{"name":"one","id":"` + strings.Repeat("x", 65) + `"}`},
		{protocol.MethodFluxRun, `{"name":"one","id":"a__1"}`},
		{protocol.MethodFluxRun, `{"name":"one","max_ops":-1}`},
		{protocol.MethodFluxRun, `{"name":"one","max_ops":1e30}`},
		{protocol.MethodFluxRun, `{"name":"one","timeout_ms":-5}`},
		{protocol.MethodFluxRun, `{"name":"one","timeout_ms":9223372036854775807}`},
		{protocol.MethodFluxRun, `{"name":"one","source":"steps: [counters.add]"}`},
		{protocol.MethodFluxRun, `{}`},
		{protocol.MethodFluxRun, `{"name":"fin"}`},
		{protocol.MethodFluxRun, `{"file":"x.yaml","source":"steps: [nope]"}`},
		{protocol.MethodFluxRun, `{"file":"x.yaml","source":"initial: a\nstates: {a: }"}`},
		{protocol.MethodFluxRun, map[string]string{"file": "big.yaml", "source": big}},
		{protocol.MethodFluxStatus, `{"run":""}`},
		{protocol.MethodFluxStatus, `{"run":"../x"}`},
		{protocol.MethodFluxStatus, `{"run":1}`},
		{protocol.MethodFluxCancel, `{"run":"a.b"}`},
		{protocol.MethodFluxList, `{"x":1}`},
		{protocol.MethodFSMStart, `{"name":"fin","id":"a b"}`},
		{protocol.MethodFSMStart, `{"name":"fin","args":[1]}`},
		{protocol.MethodFSMStart, `{"name":"fin","id":"x__0"}`},
		{protocol.MethodFSMStart, `{"name":"fin","extra":true}`},
		{protocol.MethodFSMSend, `{"id":"a.b","event":"done"}`},
		{protocol.MethodFSMSend, `{"id":"x","event":5}`},
		{protocol.MethodFSMStatus, `{"id":""}`},
		{protocol.MethodFSMList, `[]`},
		{protocol.MethodFluxValidate, `{"file":"x.yaml","source":5}`},
	}
	before := h.s.store.Version()
	for _, tc := range cases {
		body := tc.body
		if s, ok := body.(string); ok {
			body = json.RawMessage(s)
		}
		err := c.Call(ctx, tc.method, body, nil)
		var pe *protocol.Error
		if !errors.As(err, &pe) || pe.Code != protocol.CodeBadRequest && pe.Code != protocol.CodeNotFound {
			t.Errorf("%s %.80v: %v, want bad_request", tc.method, tc.body, err)
		}
	}
	if v := h.s.store.Version(); v != before {
		t.Fatalf("bad requests committed: version %d, was %d", v, before)
	}
}

// TestFluxShutdownMidStep: a drain while a run's step is in flight stops
// the run where it committed; it resumes at the next start on the same
// state and ends complete, each step applied once.
func TestFluxShutdownMidStep(t *testing.T) {
	dir := fluxDir(t, map[string]string{"slow.yaml": `
steps:
  - flux: while
    condition: domain.get('counters', {}).get('slow', 0) < 6
    do:
      - process: fault.sleep
        args: {ms: 50}
      - process: counters.add
        args: {key: slow}
`})
	state := t.TempDir()
	tune := func(c *Config) { c.Flux, c.StateDir = dir, state }
	h := startNoCleanupWith(t, tune)
	c, err := client.Dial(h.sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	f, err := c.RunFlow(ctx, client.FlowRequest{Name: "slow", ID: "slow", Detach: true})
	if err != nil {
		t.Fatal(err)
	}
	for {
		v, err := c.FlowStatus(ctx, f.Run)
		if err != nil {
			t.Fatal(err)
		}
		if len(v.Steps) >= 3 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.Close()
	if err := h.s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	h = startNoCleanupWith(t, tune)
	defer h.s.Shutdown(context.Background())
	c, err = client.Dial(h.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	v, err := c.RunFlow(ctx, client.FlowRequest{Name: "slow", ID: "slow"})
	if err != nil || v.Status != flux.StatusComplete || len(v.Steps) != 12 {
		t.Fatalf("after the restart: %+v %v", v, err)
	}
	if n := counter(t, c, "slow"); n != 6 {
		t.Fatalf("slow = %d, want 6", n)
	}
}

// startNoCleanupWith starts a supervisor serving a socket, tuned, that
// the test shuts down itself.
func startNoCleanupWith(t *testing.T, tune func(*Config)) *harness {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "run", "s.sock")
	cfg := Config{Plugins: testPlugins(t), Workers: 2, Socket: sock, Log: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.ErrorLevel),
		Pool: pool.Config{RestartBackoff: 20 * time.Millisecond, Env: quickExit()}}
	tune(&cfg)
	s, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(context.Background())
	return &harness{s: s, sock: sock}
}
