package clustertest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/theus-run/theus/client"
	"github.com/theus-run/theus/internal/etcdtest"
	"github.com/theus-run/theus/supervisor"
)

// fluxTTL is the lease of the supervisors of the flux tests: how long a
// dead owner keeps its runs.
const fluxTTL = 2 * time.Second

// fluxFiles are the workflows and machine every supervisor of a flux
// test loads: a long run of counters.add, a run that waits for a signal
// between two steps, and a door.
var fluxFiles = map[string]string{
	"long.yaml": stepsFlow(40, "long"),
	"gate.yaml": `steps:
  - process: counters.add
    args: {key: gate}
  - flux: wait
    signal: domain.gate.sig_go
  - process: counters.add
    args: {key: gate}
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
	"vault.yaml": `initial: idle
states:
  idle:
    on:
      domain.vault.cmd_arm: armed
  armed:
    entry:
      - flux: wait
        signal: domain.vault.sig_go
      - process: counters.add
        args: {key: vault}
    on:
      done: idle
`,
}

func stepsFlow(n int, key string) string {
	var b strings.Builder
	b.WriteString("steps:\n")
	for range n {
		fmt.Fprintf(&b, "  - process: counters.add\n    args: {key: %s}\n", key)
	}
	return b.String()
}

// startFlux starts a supervisor on cl that loads dir, under the test's
// prefix, with a short lease; c, when not nil, is its etcd client (the
// test closes it to kill the supervisor's hold on etcd).
func startFlux(t *testing.T, cl *etcdtest.Cluster, dir string, c *clientv3.Client) *harness {
	t.Helper()
	return start(t, 1, func(cfg *supervisor.Config) {
		cfg.Flux = dir
		cfg.Etcd = &supervisor.EtcdConfig{Endpoints: cl.Endpoints(), Prefix: "t/" + t.Name() + "/", Client: c, TicketTTL: fluxTTL}
	})
}

func writeFlux(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, src := range fluxFiles {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// waitFlow polls run id's status through c until done accepts it.
func waitFlow(t *testing.T, ctx context.Context, c *client.Client, id string, what string, done func(*client.Flow) bool) *client.Flow {
	t.Helper()
	for {
		f, err := c.FlowStatus(ctx, id)
		if err == nil && done(f) {
			return f
		}
		if ctx.Err() != nil {
			t.Fatalf("run %s: %s: not seen (last: %+v, %v)", id, what, f, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A run started through A is seen and waited for through B, and a run
// from a file's source (its source is in the Context) runs too; a cancel
// through B of a run that A runs takes it from A and ends it cancelled.
func etcdFluxAcross(t *testing.T, cl *etcdtest.Cluster) {
	dir := writeFlux(t)
	a, b := startFlux(t, cl, dir, nil), startFlux(t, cl, dir, nil)
	ca, cb := a.dial(t), b.dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := ca.RunFlow(ctx, client.FlowRequest{Name: "long", ID: "across", Detach: true}); err != nil {
		t.Fatal(err)
	}
	f, err := cb.RunFlow(ctx, client.FlowRequest{Name: "long", ID: "across"}) // the same start: waits for it
	if err != nil || f.Status != "complete" || len(f.Steps) != 40 {
		t.Fatalf("the run waited for through B: %+v, %v; want complete with 40 steps", f, err)
	}
	if n := getInt(t, ctx, cb, "domain.counters.long"); n != 40 {
		t.Fatalf("counter %d after a run of 40 steps", n)
	}
	src, err := ca.RunFlow(ctx, client.FlowRequest{File: "w.yaml", Source: "steps:\n  - process: counters.add\n    args: {key: src}\n"})
	if err != nil || src.Status != "complete" {
		t.Fatalf("a run of a source on etcd: %+v, %v", src, err)
	}

	// The gate waits through A; B cancels it.
	if _, err := ca.RunFlow(ctx, client.FlowRequest{Name: "gate", ID: "cancelled", Detach: true}); err != nil {
		t.Fatal(err)
	}
	waitFlow(t, ctx, cb, "cancelled", "waiting", func(f *client.Flow) bool { return f.Status == "waiting" })
	f, err = cb.CancelFlow(ctx, "cancelled")
	if err != nil || f.Status != "cancelled" {
		t.Fatalf("cancel through B: %+v, %v; want cancelled", f, err)
	}
	if _, err := ca.Signal(ctx, "domain.gate.sig_go", 1); err != nil {
		t.Fatal(err)
	}
	f = waitFlow(t, ctx, ca, "cancelled", "seen cancelled through A", func(f *client.Flow) bool { return f.Status == "cancelled" })
	if n := getInt(t, ctx, ca, "domain.counters.gate"); n != 1 || len(f.Steps) != 1 {
		t.Fatalf("after the cancel: counter %d, %d steps; want 1 and 1 (A committed nothing more)", n, len(f.Steps))
	}
}

// A owns a long run and a run waiting for a signal; A's hold on etcd
// ends (its client closed, as when its process dies). Within the lease's
// TTL and a margin, B takes both over and resumes them where they were:
// the long run completes with each of its 40 steps committed once, and
// the waiting run is woken by a signal sent through B.
func etcdFluxTakeover(t *testing.T, cl *etcdtest.Cluster) {
	dir := writeFlux(t)
	ec := etcdClient(t, cl)
	a, b := startFlux(t, cl, dir, ec), startFlux(t, cl, dir, nil)
	ca, cb := a.dial(t), b.dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, id := range []string{"long", "gate"} {
		if _, err := ca.RunFlow(ctx, client.FlowRequest{Name: id, ID: id, Detach: true}); err != nil {
			t.Fatal(err)
		}
	}
	waitFlow(t, ctx, cb, "gate", "waiting", func(f *client.Flow) bool { return f.Status == "waiting" })
	waitFlow(t, ctx, cb, "long", "mid-run", func(f *client.Flow) bool { return len(f.Steps) >= 5 })
	ec.Close() // A dies for etcd: its lease is no longer kept alive
	killed := time.Now()
	f, err := cb.RunFlow(ctx, client.FlowRequest{Name: "long", ID: "long"})
	if err != nil || f.Status != "complete" || len(f.Steps) != 40 {
		t.Fatalf("the long run after A died: %+v, %v; want complete through B", f, err)
	}
	if n := getInt(t, ctx, cb, "domain.counters.long"); n != 40 {
		t.Fatalf("counter %d after a run of 40 steps moved between supervisors: each step must commit once", n)
	}
	if took := time.Since(killed); took > fluxTTL+30*time.Second {
		t.Fatalf("B took %v to finish the run, want the lease's TTL (%v) and a margin", took, fluxTTL)
	}
	// The gate resumes at its wait on B: a signal committed once B runs
	// it wakes it (the signals before are not its).
	for {
		if _, err := cb.Signal(ctx, "domain.gate.sig_go", 1); err != nil {
			t.Fatal(err)
		}
		f, err := cb.FlowStatus(ctx, "gate")
		if err != nil {
			t.Fatal(err)
		}
		if f.Status == "complete" {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the waiting run did not complete through B: %+v", f)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if n := getInt(t, ctx, cb, "domain.counters.gate"); n != 2 {
		t.Fatalf("gate counter %d, want 2 (each step once)", n)
	}
}

// A machine started through A moves to B when A dies: B resumes it in
// its state, takes events through signals, and its history holds each
// transition once.
func etcdFluxMachine(t *testing.T, cl *etcdtest.Cluster) {
	dir := writeFlux(t)
	ec := etcdClient(t, cl)
	a, b := startFlux(t, cl, dir, ec), startFlux(t, cl, dir, nil)
	ca, cb := a.dial(t), b.dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := ca.StartMachine(ctx, "door", "d1", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.Signal(ctx, "domain.door.cmd_open", 1); err != nil {
		t.Fatal(err)
	}
	machineState(t, ctx, cb, "d1", "open")
	ec.Close()
	for {
		if _, err := cb.Signal(ctx, "domain.door.cmd_close", 1); err != nil {
			t.Fatal(err)
		}
		m, err := cb.MachineStatus(ctx, "d1")
		if err != nil {
			t.Fatal(err)
		}
		if m.State == "closed" {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the machine did not move on through B: %+v", m)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// An event sent through A's successor by name: fsm send works on any
	// supervisor (B owns it now).
	if _, err := cb.Signal(ctx, "domain.door.cmd_open", 1); err != nil {
		t.Fatal(err)
	}
	m := machineState(t, ctx, cb, "d1", "open")
	if len(m.History) != 5 {
		t.Fatalf("history %+v, want 5 transitions: each once", m.History)
	}
	if n := getInt(t, ctx, cb, "domain.counters.opened"); n != 2 {
		t.Fatalf("opened %d times, want 2", n)
	}
}

func machineState(t *testing.T, ctx context.Context, c *client.Client, id, state string) *client.Machine {
	t.Helper()
	for {
		m, err := c.MachineStatus(ctx, id)
		if err == nil && m.State == state {
			return m
		}
		if ctx.Err() != nil {
			t.Fatalf("machine %s: not in %s (%+v, %v)", id, state, m, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
