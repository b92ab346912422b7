package supervisor

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/flux"
	"github.com/theus-run/theus/protocol"
)

// stepsFlow is a workflow of n counters.add steps on key, one after the
// other: a step applied twice or skipped shows in the counter.
func stepsFlow(n int, key string) string {
	var b strings.Builder
	b.WriteString("steps:\n")
	for range n {
		fmt.Fprintf(&b, "  - process: counters.add\n    args: {key: %s}\n", key)
	}
	return b.String()
}

// TestFluxRunSurvivesSupervisorKills: a workflow of 200 counters.add
// steps (each followed by a 2 ms spin) runs while the supervisor is
// SIGKILLed at random points and restarted on the same state, 20 times.
// Each restart resumes the run from what it committed; in the end the
// counter is exactly 200 and the history holds every step, the counter
// steps at strictly increasing versions: no step applied twice or skipped.
func TestFluxRunSurvivesSupervisorKills(t *testing.T) {
	const steps, kills = 200, 20
	// Each counter step is followed by 2 ms of bench.spin (a step that
	// writes nothing), so the run moves slowly enough for every kill to
	// land in it, whatever the machine's speed.
	var flow strings.Builder
	flow.WriteString("steps:\n")
	for range steps {
		flow.WriteString("  - process: counters.add\n    args: {key: long}\n  - process: bench.spin\n    args: {us: 2000}\n")
	}
	dir := fluxDir(t, map[string]string{"long.yaml": flow.String()})
	t.Setenv("THEUS_TEST_FLUX", dir)
	state := t.TempDir()
	sock := filepath.Join(t.TempDir(), "run", "theus.sock")
	req := flux.RunRequest{Name: "long", ID: "crash-run", Detach: true}
	var at []int // the steps committed at each kill
	done := 0
	for round := 0; round <= kills; round++ {
		cmd, c := durableSupervisor(t, sock, state)
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		if round == 0 {
			var v flux.RunView
			if err := c.Call(ctx, protocol.MethodFluxRun, req, &v); err != nil {
				t.Fatal(err)
			}
		}
		if round == kills { // the last start: let it finish
			req.Detach = false
			var v flux.RunView
			if err := c.Call(ctx, protocol.MethodFluxRun, req, &v); err != nil {
				t.Fatal(err)
			}
			cancel()
			if v.Status != flux.StatusComplete || len(v.Steps) != 2*steps {
				t.Fatalf("after %d kills: status %s, %d steps (%s: %s)", kills, v.Status, len(v.Steps), v.Code, v.Error)
			}
			for i := 2; i < len(v.Steps); i += 2 { // the counter steps; a spin commits nothing
				if v.Steps[i].Version <= v.Steps[i-2].Version {
					t.Fatalf("step %d at version %d after step %d at %d", i, v.Steps[i].Version, i-2, v.Steps[i-2].Version)
				}
			}
			if n := counter(t, c, "long"); n != steps {
				t.Fatalf("counter %d after %d steps and %d kills", n, steps, kills)
			}
			c.Close()
			cmd.Process.Kill()
			cmd.Wait()
			t.Logf("killed after %v steps", at)
			return
		}
		// Kill once the run has made 1 to 4 more steps than it had at the
		// last kill, a random moment into the next: every kill lands while
		// the run is going (20 rounds take about 100 of its 400 steps).
		want := done + 1 + rand.IntN(4)
		for {
			var v flux.RunView
			if err := c.Call(ctx, protocol.MethodFluxStatus, map[string]string{"run": req.ID}, &v); err != nil {
				t.Fatal(err)
			}
			if v.Status != flux.StatusRunning {
				t.Fatalf("round %d: the run is %s (%s: %s) after %d steps", round, v.Status, v.Code, v.Error, len(v.Steps))
			}
			if len(v.Steps) >= want {
				done = len(v.Steps)
				break
			}
			time.Sleep(100 * time.Microsecond)
		}
		time.Sleep(time.Duration(rand.IntN(500)) * time.Microsecond)
		at = append(at, done)
		cancel()
		cmd.Process.Kill()
		cmd.Wait()
		c.Close()
	}
}

// TestFluxRunSurvivesWorkerKills: a workflow of 200 counter steps runs
// while its workers are SIGKILLed every few steps. Steps whose worker
// died are dispatched again (and the run retries a step that ran out of
// redispatches, under the same op id); the counter ends exactly at 200.
func TestFluxRunSurvivesWorkerKills(t *testing.T) {
	const steps = 200
	// Each counter step is followed by 0.5 ms of bench.spin (a step that
	// writes nothing), so the run cannot outrun the killer, which looks
	// at the store every 200 µs, whatever the machine's speed; a kill in
	// the spin interrupts a step too.
	var flow strings.Builder
	flow.WriteString("steps:\n")
	for range steps {
		flow.WriteString("  - process: counters.add\n    args: {key: w}\n  - process: bench.spin\n    args: {us: 500}\n")
	}
	dir := fluxDir(t, map[string]string{"long.yaml": flow.String()})
	h := start(t, 2, func(c *Config) { c.Flux = dir })
	c := h.dial(t)
	stop := make(chan struct{})
	killed := make(chan int)
	go func() {
		n := 0
		defer func() { killed <- n }()
		next := h.s.store.Version() + 1
		for {
			// A kill each time the run has committed 1 to 10 more steps.
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Microsecond):
			}
			if h.s.store.Version() < next {
				continue
			}
			pids := h.s.WorkerPIDs()
			if len(pids) > 0 && syscall.Kill(pids[rand.IntN(len(pids))], syscall.SIGKILL) == nil {
				n++
				next = h.s.store.Version() + 1 + cas.Version(rand.IntN(10))
			}
		}
	}()
	v := runFlow(t, c, flux.RunRequest{Name: "long"})
	close(stop)
	n := <-killed
	if v.Status != flux.StatusComplete || len(v.Steps) != 2*steps {
		t.Fatalf("status %s, %d steps (%s: %s)", v.Status, len(v.Steps), v.Code, v.Error)
	}
	if got := counter(t, c, "w"); got != steps {
		t.Fatalf("counter %d after %d steps", got, steps)
	}
	if n < 15 {
		t.Fatalf("only %d workers killed", n)
	}
	t.Logf("%d workers killed during the run", n)
}

// TestFSMSurvivesSupervisorKill: after a kill -9 a machine is in the
// state it last committed, and goes on from there.
func TestFSMSurvivesSupervisorKill(t *testing.T) {
	t.Setenv("THEUS_TEST_FLUX", filepath.Join("..", "examples", "flux"))
	state := t.TempDir()
	sock := filepath.Join(t.TempDir(), "run", "theus.sock")
	ctx := context.Background()
	cmd, c := durableSupervisor(t, sock, state)
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if _, err := c.StartMachine(ctx, "door", "d9", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Signal(ctx, "domain.door.cmd_open", nil); err != nil {
		t.Fatal(err)
	}
	waitState(t, c, "d9", "open")
	cmd.Process.Kill()
	cmd.Wait()
	c.Close()
	cmd2, c := durableSupervisor(t, sock, state)
	t.Cleanup(func() { cmd2.Process.Kill(); cmd2.Wait() })
	defer c.Close()
	m, err := c.MachineStatus(ctx, "d9")
	if err != nil || m.State != "open" || len(m.History) != 2 {
		t.Fatalf("after kill -9: %+v %v", m, err)
	}
	if _, err := c.Signal(ctx, "domain.door.cmd_close", nil); err != nil {
		t.Fatal(err)
	}
	waitState(t, c, "d9", "closed")
	if n := counter(t, c, "opened"); n != 1 {
		t.Fatalf("the entry block ran %d times", n)
	}
}
