package clustertest

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/theus-run/theus/client"
	"github.com/theus-run/theus/internal/etcdtest"
)

// ownerGate holds back what a supervisor's etcd client hears of the
// owner keys (r/) while it is closed, as if that supervisor were slow to
// learn that another took its units: only the fence on each of its
// commits then keeps it from committing for them.
type ownerGate struct {
	clientv3.Watcher
	mu   sync.Mutex
	open chan struct{} // closed while the gate is open
}

// gateOwners makes c's watches of owner keys go through a gate, open.
func gateOwners(c *clientv3.Client) *ownerGate {
	g := &ownerGate{Watcher: c.Watcher, open: make(chan struct{})}
	close(g.open)
	c.Watcher = g
	return g
}

func (g *ownerGate) hold() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.open:
		g.open = make(chan struct{})
	default:
	}
}

func (g *ownerGate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.open:
	default:
		close(g.open)
	}
}

func (g *ownerGate) opened() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.open
}

// Watch relays the responses of a watch of owner keys once the gate is
// open. The relay is the watch's: it ends with the inner watch (ctx).
func (g *ownerGate) Watch(ctx context.Context, key string, opts ...clientv3.OpOption) clientv3.WatchChan {
	in := g.Watcher.Watch(ctx, key, opts...)
	if !strings.HasSuffix(key, "/r/") {
		return in
	}
	out := make(chan clientv3.WatchResponse)
	go func() {
		defer close(out)
		for resp := range in {
			select {
			case <-g.opened():
			case <-ctx.Done():
				return
			}
			select {
			case out <- resp:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

// startGated starts a supervisor whose etcd client's owner watch goes
// through a gate.
func startGated(t *testing.T, cl *etcdtest.Cluster, dir string) (*harness, *ownerGate) {
	t.Helper()
	ec := etcdClient(t, cl)
	t.Cleanup(func() { ec.Close() }) // after the supervisor's shutdown
	g := gateOwners(ec)
	t.Cleanup(g.release)
	return startFlux(t, cl, dir, ec), g
}

// watchEvents collects a run's events through c until its stream ends.
func watchEvents(t *testing.T, ctx context.Context, c *client.Client, id string) func() []map[string]any {
	t.Helper()
	st, err := c.WatchFlow(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var events []map[string]any
	done := make(chan struct{})
	go func() {
		defer close(done)
		for raw := range st.Items() {
			var ev map[string]any
			if json.Unmarshal(raw, &ev) == nil {
				events = append(events, ev)
			}
		}
	}()
	return func() []map[string]any {
		select {
		case <-done:
		case <-ctx.Done():
			t.Fatalf("the watch of %s did not end", id)
		}
		if err := st.Err(); err != nil {
			t.Fatalf("the watch of %s: %v", id, err)
		}
		return events
	}
}

// A owns a run that waits for a signal and has not heard (its owner
// watch held back) that B took the run and cancelled it. The signal
// wakes A's copy, whose commit of the wait's end is refused by the
// fence, although A's lease is alive: the run stays cancelled, its next
// step never runs, and A's copy stops without reporting a failure.
func etcdFluxLateCommit(t *testing.T, cl *etcdtest.Cluster) {
	dir := writeFlux(t)
	a, gate := startGated(t, cl, dir)
	b := startFlux(t, cl, dir, nil)
	ca, cb := a.dial(t), b.dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := ca.RunFlow(ctx, client.FlowRequest{Name: "gate", ID: "late", Detach: true}); err != nil {
		t.Fatal(err)
	}
	waitFlow(t, ctx, cb, "late", "waiting", func(f *client.Flow) bool { return f.Status == "waiting" })
	events := watchEvents(t, ctx, ca, "late") // A's copy's events
	gate.hold()
	if f, err := cb.CancelFlow(ctx, "late"); err != nil || f.Status != "cancelled" {
		t.Fatalf("cancel through B: %+v, %v", f, err)
	}
	if _, err := ca.Signal(ctx, "domain.gate.sig_go", 1); err != nil {
		t.Fatal(err)
	}
	// A's copy wakes, its commit is fenced, it stops: its events end, with
	// the end on record.
	evs := events()
	last := evs[len(evs)-1]
	for _, ev := range evs {
		if ev["event"] == "step" && ev["state"] != "started" || ev["event"] == "wait" {
			t.Errorf("A's copy went on after B took the run: %v", ev)
		}
	}
	if last["event"] != "end" || last["status"] != "cancelled" {
		t.Fatalf("A's watch ended with %v, want the cancel B committed; events %v", last, evs)
	}
	gate.release()
	for _, c := range []*client.Client{ca, cb} {
		f, err := c.FlowStatus(ctx, "late")
		if err != nil || f.Status != "cancelled" || len(f.Steps) != 1 {
			t.Fatalf("the run: %+v, %v; want cancelled after its first step", f, err)
		}
	}
	if n := getInt(t, ctx, cb, "domain.counters.gate"); n != 1 {
		t.Fatalf("gate counter %d, want 1: A's late commit must not let the run go on", n)
	}
}

// fsm send through a supervisor that does not own the machine takes it,
// from a live owner: B delivers the event, A stops its copy. A send
// through A before it has heard of the take (its owner watch held back)
// finds its copy fenced and takes the machine back: each event is
// delivered once, wherever it is sent.
func etcdFluxSendTakes(t *testing.T, cl *etcdtest.Cluster) {
	dir := writeFlux(t)
	a, gate := startGated(t, cl, dir)
	b := startFlux(t, cl, dir, nil)
	ca, cb := a.dial(t), b.dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := ca.StartMachine(ctx, "door", "s1", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.SendEvent(ctx, "s1", "domain.door.cmd_open"); err != nil {
		t.Fatal(err)
	}
	machineState(t, ctx, cb, "s1", "open")
	gate.hold()
	m, err := cb.SendEvent(ctx, "s1", "domain.door.cmd_close")
	if err != nil || m.State != "closed" {
		t.Fatalf("send through B, which does not own the machine: %+v, %v; want closed", m, err)
	}
	m, err = ca.SendEvent(ctx, "s1", "domain.door.cmd_open")
	if err != nil || m.State != "opening" && m.State != "open" {
		t.Fatalf("send through A after B took the machine: %+v, %v; want it opening", m, err)
	}
	gate.release()
	m = machineState(t, ctx, cb, "s1", "open")
	if len(m.History) != 5 {
		t.Fatalf("history %+v, want 5 transitions: each event once", m.History)
	}
	if n := getInt(t, ctx, cb, "domain.counters.opened"); n != 2 {
		t.Fatalf("opened %d times, want 2", n)
	}
}

// A cancel through a supervisor whose copy of a run is stale (another
// took the machine that runs it, and A has not heard: its owner watch
// held back) finds its copy fenced and takes the unit back, then
// cancels: the run ends cancelled, not left running on B with a
// "running" answer from A.
func etcdFluxCancelStale(t *testing.T, cl *etcdtest.Cluster) {
	dir := writeFlux(t)
	a, gate := startGated(t, cl, dir)
	b := startFlux(t, cl, dir, nil)
	ca, cb := a.dial(t), b.dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := ca.StartMachine(ctx, "vault", "v1", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.SendEvent(ctx, "v1", "domain.vault.cmd_arm"); err != nil {
		t.Fatal(err)
	}
	m := machineState(t, ctx, cb, "v1", "armed")
	if m.EntryRun == "" {
		t.Fatalf("machine %+v: no entry run", m)
	}
	waitFlow(t, ctx, cb, m.EntryRun, "waiting", func(f *client.Flow) bool { return f.Status == "waiting" })
	gate.hold()
	// An event the state does not handle: B takes the machine to answer it.
	if _, err := cb.SendEvent(ctx, "v1", "domain.vault.cmd_nothing"); err == nil {
		t.Fatal("an event armed does not handle was accepted")
	}
	f, err := ca.CancelFlow(ctx, m.EntryRun)
	if err != nil || f.Status != "cancelled" {
		t.Fatalf("cancel through A, whose copy is stale: %+v, %v; want cancelled", f, err)
	}
	gate.release()
	// B's copy stops (fenced, or told of A's take): both read the end.
	for _, c := range []*client.Client{ca, cb} {
		waitFlow(t, ctx, c, m.EntryRun, "cancelled", func(f *client.Flow) bool { return f.Status == "cancelled" && len(f.Steps) == 0 })
	}
}
