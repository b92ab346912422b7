package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/theus-run/theus/client"
	"github.com/theus-run/theus/etcdstore"
	"github.com/theus-run/theus/internal/etcdtest"
	"github.com/theus-run/theus/internal/outbuf"
)

// fluxLeaseTTL is the supervisors' lease (etcdstore.DefaultTicketTTL):
// how long a dead or paused owner keeps its units.
const fluxLeaseTTL = etcdstore.DefaultTicketTTL

// longSteps is how many counters.add steps the long run makes, each
// after a short fault.sleep, so that a kill lands mid-run.
const longSteps = 30

// etcdFluxFiles are the workflows and machine the supervisors of
// TestEtcdFlux load.
func etcdFluxFiles(t *testing.T) string {
	t.Helper()
	var long strings.Builder
	long.WriteString("steps:\n")
	for range longSteps {
		long.WriteString("  - process: fault.sleep\n    args: {ms: 40}\n  - process: counters.add\n    args: {key: long}\n")
	}
	files := map[string]string{
		"long.yaml": long.String(),
		// paused: its second step is in flight when its owner is paused;
		// then it waits for a signal.
		"paused.yaml": `steps:
  - process: counters.add
    args: {key: paused}
  - process: fault.sleep
    args: {ms: 2000}
  - process: counters.add
    args: {key: paused}
  - flux: wait
    signal: domain.paused.sig_go
  - process: counters.add
    args: {key: paused}
`,
		"door.yaml": `initial: closed
states:
  closed:
    on:
      domain.door.cmd_open: opening
  opening:
    entry:
      - process: counters.add
        args: {key: opened}
    on:
      done: open
  open:
    on:
      domain.door.cmd_close: closed
`,
	}
	dir := t.TempDir()
	for name, src := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestEtcdFlux: theus-supervisor processes with --flux on one 3-member
// etcd cluster; the owner of a run is killed with SIGKILL, or paused
// with SIGSTOP past its lease, and the other supervisor takes its units
// over (docs/DISTRIBUTED.md, workflow runs and state machines).
func TestEtcdFlux(t *testing.T) {
	cl, err := etcdtest.Start(t.TempDir(), 3)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	dir := etcdFluxFiles(t)
	t.Run("Kill9", func(t *testing.T) { etcdFluxKill9(t, cl, dir) })
	t.Run("Paused", func(t *testing.T) { etcdFluxPaused(t, cl, dir) })
}

// fluxPair starts two supervisors, A and B, on prefix with the flux
// files of dir, and a client of each.
func fluxPair(t *testing.T, cl *etcdtest.Cluster, dir, prefix string) (a *supervisorProc, b *supervisorProc) {
	t.Helper()
	start := func() *supervisorProc {
		cmd, sock, stderr := startEtcdSupervisor(t, cl.Endpoints(), prefix, "--flux", dir, "--faults")
		c, err := client.Dial(sock)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return &supervisorProc{cmd: cmd, c: c, stderr: stderr}
	}
	return start(), start()
}

type supervisorProc struct {
	cmd    *exec.Cmd
	c      *client.Client
	stderr *outbuf.Buffer
}

// counter reads domain.counters.<key> through c (0 when it is unset or
// cannot be read).
func counter(ctx context.Context, c *client.Client, key string) int64 {
	v, err := c.Get(ctx, "domain.counters."+key)
	if err != nil || len(v.Entries) == 0 {
		return 0
	}
	n, _ := strconv.ParseInt(string(v.Entries[0].Value), 10, 64)
	return n
}

// poll calls check every 20 ms until it reports true, or fails the test
// when ctx ends.
func poll(t *testing.T, ctx context.Context, what string, check func() bool) {
	t.Helper()
	for !check() {
		if ctx.Err() != nil {
			t.Fatalf("%s: not seen in time", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A supervisor that runs a long workflow run and owns a state machine is
// killed with SIGKILL mid-run. The other takes both over within the
// lease's TTL and a margin: the run completes through it with each of
// its steps committed once, and the machine takes events through it.
func etcdFluxKill9(t *testing.T, cl *etcdtest.Cluster, dir string) {
	a, b := fluxPair(t, cl, dir, "fluxkill9/")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := a.c.StartMachine(ctx, "door", "d", nil); err != nil {
		t.Fatal(err)
	}
	if m, err := a.c.SendEvent(ctx, "d", "domain.door.cmd_open"); err != nil || m.State != "opening" && m.State != "open" {
		t.Fatalf("send through its owner: %+v, %v", m, err)
	}
	poll(t, ctx, "the door open", func() bool {
		m, err := b.c.MachineStatus(ctx, "d")
		return err == nil && m.State == "open"
	})
	if _, err := a.c.RunFlow(ctx, client.FlowRequest{Name: "long", ID: "long", Detach: true}); err != nil {
		t.Fatal(err)
	}
	poll(t, ctx, "3 steps of the long run", func() bool { return counter(ctx, b.c, "long") >= 3 })
	a.cmd.Process.Kill()
	a.cmd.Wait()
	killed := time.Now()
	f, err := b.c.FlowStatus(ctx, "long")
	if err != nil {
		t.Fatal(err)
	}
	if f.Status != "running" || len(f.Steps) >= 2*longSteps {
		t.Fatalf("the run at the kill: %s with %d steps: the kill was not mid-run", f.Status, len(f.Steps))
	}
	at := len(f.Steps)

	f, err = b.c.RunFlow(ctx, client.FlowRequest{Name: "long", ID: "long"}) // the same start: waits for it
	if err != nil || f.Status != "complete" || len(f.Steps) != 2*longSteps {
		t.Fatalf("the run after its owner was killed: %+v, %v; want complete through B with %d steps", f, err, 2*longSteps)
	}
	if took := time.Since(killed); took > fluxLeaseTTL+30*time.Second {
		t.Fatalf("B took %v to finish the run, want the lease's TTL (%v) and a margin", took, fluxLeaseTTL)
	}
	if n := counter(ctx, b.c, "long"); n != longSteps {
		t.Fatalf("counter %d after a run of %d adds moved at step %d: each must commit once\n%s", n, longSteps, at, b.stderr)
	}
	if f, err := b.c.FlowStatus(ctx, "long"); err != nil || f.Status != "complete" || f.Code != "" {
		t.Fatalf("status through B: %+v, %v", f, err)
	}

	m, err := b.c.SendEvent(ctx, "d", "domain.door.cmd_close")
	if err != nil || m.State != "closed" {
		t.Fatalf("send through B after A was killed: %+v, %v; want closed", m, err)
	}
	if len(m.History) != 3 || counter(ctx, b.c, "opened") != 1 {
		t.Fatalf("machine history %+v, opened %d: want 3 transitions, 1 entry step", m.History, counter(ctx, b.c, "opened"))
	}
	t.Logf("the run moved at step %d of %d; B finished it %v after the kill", at, 2*longSteps, time.Since(killed).Round(time.Millisecond))
}

// A supervisor is paused (SIGSTOP) while a step of its run is in flight,
// past its lease: B takes the run over, runs the step again and goes on
// to a wait. A is continued (SIGCONT) and its late step finds the run
// gone: it commits nothing for the run (its lease-loss detection stops
// it, or the fence on the owner key refuses its commit), does not report
// it failed, and its watch of the run ends with the end B committed.
func etcdFluxPaused(t *testing.T, cl *etcdtest.Cluster, dir string) {
	const prefix = "fluxpaused/"
	a, b := fluxPair(t, cl, dir, prefix)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ec, err := clientv3.New(clientv3.Config{Endpoints: cl.Endpoints(), DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer ec.Close()
	owner := func() (rev, lease int64) { // the run's owner key
		r, err := ec.Get(ctx, prefix+"r/run/p")
		if err != nil || len(r.Kvs) == 0 {
			return 0, 0
		}
		return r.Kvs[0].CreateRevision, r.Kvs[0].Lease
	}

	if _, err := a.c.RunFlow(ctx, client.FlowRequest{Name: "paused", ID: "p", Detach: true}); err != nil {
		t.Fatal(err)
	}
	st, err := a.c.WatchFlow(ctx, "p") // A's events for the run: what its copy does
	if err != nil {
		t.Fatal(err)
	}
	var events []map[string]any
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for raw := range st.Items() {
			var ev map[string]any
			if json.Unmarshal(raw, &ev) == nil {
				events = append(events, ev)
			}
		}
	}()
	poll(t, ctx, "the first step", func() bool { return counter(ctx, b.c, "paused") == 1 })
	aRev, aLease := owner()
	if err := a.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := true
	defer func() {
		if stopped {
			a.cmd.Process.Signal(syscall.SIGCONT)
		}
	}()
	if f, err := b.c.FlowStatus(ctx, "p"); err != nil || len(f.Steps) != 1 || aRev == 0 {
		t.Fatalf("at the pause: %+v, %v, owner key at revision %d: want A in the run's second step", f, err, aRev)
	}
	// B takes the run over once A's lease expires, runs the step A had in
	// flight again, and the next, and waits.
	var bRev, bLease int64
	poll(t, ctx, "B owning the run", func() bool {
		bRev, bLease = owner()
		return bRev != 0 && bRev != aRev
	})
	poll(t, ctx, "the run waiting through B", func() bool {
		f, err := b.c.FlowStatus(ctx, "p")
		return err == nil && f.Status == "waiting"
	})
	if err := a.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	stopped = false
	// A serves again; the signal it commits wakes the run where it runs.
	if _, err := a.c.Signal(ctx, "domain.paused.sig_go", 1); err != nil {
		t.Fatalf("a signal through A after its pause: %v", err)
	}
	f, err := b.c.RunFlow(ctx, client.FlowRequest{Name: "paused", ID: "p"})
	if err != nil || f.Status != "complete" || f.Code != "" || len(f.Steps) != 4 {
		t.Fatalf("the run through B: %+v, %v; want complete with its 4 steps", f, err)
	}
	if n := counter(ctx, b.c, "paused"); n != 3 {
		t.Fatalf("counter %d, want 3: each add once", n)
	}
	// A's watch ends once its copy has stopped (it closes the copy's
	// events) and the run's end is on record.
	select {
	case <-watched:
	case <-ctx.Done():
		t.Fatal("A's watch of the run did not end")
	}
	if err := st.Err(); err != nil {
		t.Fatalf("A's watch: %v", err)
	}
	// A's copy was in the sleep (pc 1) when paused. Had it gone on, its
	// stream would show the next steps finish, or its own wait record.
	// Its step in flight may be reported finished at the version B
	// committed it (the copy found the step on record), never at another.
	var last map[string]any
	for _, ev := range events {
		last = ev
		pc, _ := ev["pc"].(float64)
		switch {
		case ev["event"] == "wait":
			t.Errorf("A's copy recorded a wait after its pause: %v", ev)
		case ev["event"] == "step" && ev["state"] == "failed":
			t.Errorf("A's copy failed a step: %v", ev)
		case ev["event"] == "step" && ev["state"] == "finished" && pc >= 1:
			if v, _ := ev["version"].(float64); pc > 1 || uint64(v) != f.Steps[1].Version {
				t.Errorf("A's copy went on after its pause: %v (B committed step 1 at %d)", ev, f.Steps[1].Version)
			}
		}
	}
	if last == nil || last["event"] != "end" || last["status"] != "complete" {
		t.Fatalf("A's watch ended with %v, want the end B committed (complete); events %v", last, events)
	}
	if f, err := a.c.FlowStatus(ctx, "p"); err != nil || f.Status != "complete" || f.Code != "" {
		t.Fatalf("status through A: %+v, %v; want complete (A does not report it failed)", f, err)
	}
	if strings.Contains(a.stderr.String(), "run p:") {
		t.Fatalf("A logged about the run after its pause:\n%s", a.stderr)
	}
	t.Logf("A's lease %x (owner key at %d), B's %x (at %d); A's events: %s", aLease, aRev, bLease, bRev, fmt.Sprint(events))
}
