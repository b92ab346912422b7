package supervisor

import (
	"context"
	"errors"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/theus-run/theus/client"
	"github.com/theus-run/theus/durable"
	"github.com/theus-run/theus/protocol"
)

// heldDisk starts a supervisor with durability sync whose journal holds
// each batch at the disk while held is set, until release is closed.
type heldDisk struct {
	*harness
	mu      sync.Mutex
	held    bool
	release chan struct{}
}

func startHeldDisk(t *testing.T, tune func(*Config)) *heldDisk {
	d := &heldDisk{release: make(chan struct{})}
	d.harness = start(t, 2, func(c *Config) {
		c.StateDir, c.Durability = t.TempDir(), durable.Sync
		c.JournalFault = func(point string) error {
			d.mu.Lock()
			held := d.held
			d.mu.Unlock()
			if held && point == "before-write" {
				<-d.release
			}
			return nil
		}
		if tune != nil {
			tune(c)
		}
	})
	t.Cleanup(d.let) // a failed test must not leave the journal held at Shutdown
	return d
}

func (d *heldDisk) hold() {
	d.mu.Lock()
	d.held = true
	d.mu.Unlock()
}

func (d *heldDisk) let() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.held {
		d.held = false
		close(d.release)
	}
}

// waitApplied waits until the store holds version v.
func (d *heldDisk) waitApplied(t *testing.T, v uint64) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); uint64(d.s.store.Version()) < v; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("version %d not applied (store at %d)", v, d.s.store.Version())
		}
	}
}

// TestDiskWaitHoldsNoGoroutine: with durability sync, executes on the
// continuation path whose commits wait for the disk hold no goroutine
// each: the journal's notifier replies to them once their batch is
// written. Executes with op ids take that path too.
func TestDiskWaitHoldsNoGoroutine(t *testing.T) {
	for _, opIDs := range []bool{false, true} {
		t.Run("op-ids="+strconv.FormatBool(opIDs), func(t *testing.T) { diskWaitHoldsNoGoroutine(t, opIDs) })
	}
}

func diskWaitHoldsNoGoroutine(t *testing.T, opIDs bool) {
	const n = 128
	d := startHeldDisk(t, nil)
	c := rawClient(t, d.sock)
	c.SetReadDeadline(time.Now().Add(60 * time.Second))
	execs := func(from, count int) {
		t.Helper()
		ms := make([]protocol.Message, count)
		for i := range ms {
			// One key each: no conflict sends an execute to a goroutine.
			m := &protocol.Execute{ID: uint64(from + i), Process: "counters.add", Args: []byte(`{"key":"k` + strconv.Itoa(from+i) + `"}`)}
			if opIDs {
				m.OpID = "op-" + strconv.Itoa(from+i)
			}
			ms[i] = m
		}
		if err := c.SendBatch(ms...); err != nil {
			t.Fatal(err)
		}
	}
	read := func(count int) {
		t.Helper()
		for i := range count {
			m, err := c.Recv()
			if err != nil {
				t.Fatalf("reply %d: %v", i, err)
			}
			rep, ok := m.(*protocol.Reply)
			if !ok || rep.Err != nil {
				t.Fatalf("reply %d: %+v", i, m)
			}
			if durable := uint64(d.s.journal.Durable()); rep.Version > durable {
				t.Fatalf("reply %d at version %d, on disk only %d", i, rep.Version, durable)
			}
		}
	}
	// Warm up the workers and the connection with one execute: a
	// goroutine per reply would be one the Pool had not kept yet.
	execs(0, 1)
	read(1)
	time.Sleep(100 * time.Millisecond)
	before := runtime.NumGoroutine()
	v0 := uint64(d.s.store.Version())

	d.hold()
	execs(n, n)
	d.waitApplied(t, v0+n) // every one committed: every reply waits for the disk
	during := runtime.NumGoroutine()
	d.let()
	read(n)
	t.Logf("goroutines: %d before, %d with %d replies waiting for the disk", before, during, n)
	if during-before >= n/4 {
		t.Fatalf("%d more goroutines with %d replies waiting for the disk: want none per reply", during-before, n)
	}
}

// TestDiskSlowerThanTheTimeout: an execute whose commit is still not on
// disk at its timeout answers a timeout that names its version (applied,
// its op id retry applies it at most once); once the disk is back the
// supervisor serves on.
func TestDiskSlowerThanTheTimeout(t *testing.T) {
	for _, goroutines := range []bool{false, true} {
		t.Run("goroutine-per-execute="+strconv.FormatBool(goroutines), func(t *testing.T) {
			d := startHeldDisk(t, func(c *Config) { c.GoroutinePerExecute = goroutines })
			c := d.dial(t)
			if _, err := c.Exec(t.Context(), "noop", nil); err != nil {
				t.Fatal(err)
			}
			d.hold()
			start := time.Now()
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second) // a timeout never sent fails here, not at the test's limit
			defer cancel()
			_, err := c.Do(ctx, client.Request{Process: "counters.add", Args: map[string]string{"key": "slow"}, Timeout: 300 * time.Millisecond})
			if !errors.Is(err, protocol.ErrTimeout) || !strings.Contains(err.Error(), "not on disk yet") {
				t.Fatalf("an execute held at the disk past its timeout: %v, want a timeout, not on disk yet", err)
			}
			if took := time.Since(start); took > 10*time.Second {
				t.Fatalf("the timeout came after %v", took)
			}
			d.let()
			res, err := c.Exec(t.Context(), "counters.add", map[string]string{"key": "slow"})
			if err != nil {
				t.Fatal(err)
			}
			if string(res.Result) != "2" {
				t.Fatalf("counter after the timed-out execute and one more: %s, want 2 (the first was applied)", res.Result)
			}
		})
	}
}

// TestDiskWaitKeepsItsTimeout: when the worker's Result is completed
// before the dispatching goroutine watches the execute's context (it was
// descheduled between the send and that), the commit's wait for the disk
// still ends at the execute's timeout: the late dispatch must not take
// the context's Ender back from the disk wait. The one worker takes one
// dispatch at a time, so the execute's dispatch waits on a goroutine of
// its own, which the test holds after the send.
func TestDiskWaitKeepsItsTimeout(t *testing.T) {
	d := startHeldDisk(t, func(c *Config) { c.Workers, c.Pool.MaxInFlight = 1, 1 })
	c := d.dial(t)
	if _, err := c.Exec(t.Context(), "noop", nil); err != nil {
		t.Fatal(err)
	}
	d.hold()
	v0 := d.s.store.Version()
	hook := func(wait bool) {
		if !wait {
			return
		}
		// Descheduled until the Result is committed and waits for the disk.
		for end := time.Now().Add(10 * time.Second); d.s.store.Version() == v0 && time.Now().Before(end); time.Sleep(time.Millisecond) {
		}
		time.Sleep(10 * time.Millisecond)
	}
	testHookDispatched.Store(&hook)
	defer testHookDispatched.Store(nil)
	busy := d.dial(t)
	slept := make(chan error, 1)
	go func() { // holds the one slot: the execute below waits for it
		_, err := busy.Exec(context.Background(), "fault.sleep", map[string]int{"ms": 300})
		slept <- err
	}()
	for deadline := time.Now().Add(10 * time.Second); inFlight(d.harness) == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("fault.sleep never started")
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second) // a timeout never sent fails here
	defer cancel()
	_, err := c.Do(ctx, client.Request{Process: "counters.add", Args: map[string]string{"key": "late"}, Timeout: 1500 * time.Millisecond})
	if !errors.Is(err, protocol.ErrTimeout) || !strings.Contains(err.Error(), "not on disk yet") {
		t.Fatalf("an execute held at the disk past its timeout: %v, want a timeout, not on disk yet", err)
	}
	d.let()
	if err := <-slept; err != nil {
		t.Fatal(err)
	}
}

// TestOpIDConflictWaitsForTheDisk: an op_id_conflict reply names the
// commit the op id made for another call, so with durability sync it
// waits for that commit to be on disk, as a duplicate's reply does. Two
// calls with one op id and other args are pipelined while the disk is
// held: whichever commits, the other's conflict (found by the commit
// itself on the continuation path) must not reply before the disk has
// the first, and its wait must not hold up the worker's ring reader: a
// fourth call on the one worker still commits meanwhile. A third call,
// whose op id the store knows at once, is answered on a goroutine.
func TestOpIDConflictWaitsForTheDisk(t *testing.T) {
	for _, goroutines := range []bool{false, true} {
		t.Run("goroutine-per-execute="+strconv.FormatBool(goroutines), func(t *testing.T) {
			d := startHeldDisk(t, func(c *Config) { c.GoroutinePerExecute, c.Workers = goroutines, 1 })
			c := rawClient(t, d.sock)
			c.SetReadDeadline(time.Now().Add(30 * time.Second))
			send := func(ms ...protocol.Message) {
				if err := c.SendBatch(ms...); err != nil {
					t.Fatal(err)
				}
			}
			type got struct {
				rep      *protocol.Reply
				released bool
			}
			replies := make(chan got, 4)
			var released atomic.Bool
			go func() {
				for {
					m, err := c.Recv()
					if err != nil {
						close(replies)
						return
					}
					rep, _ := m.(*protocol.Reply)
					replies <- got{rep, released.Load()}
				}
			}()
			send(&protocol.Execute{ID: 100, Process: "noop"})
			<-replies
			d.hold()
			v0 := uint64(d.s.store.Version())
			send(&protocol.Execute{ID: 1, Process: "counters.add", Args: []byte(`{"key":"a"}`), OpID: "x"},
				&protocol.Execute{ID: 2, Process: "counters.add", Args: []byte(`{"key":"b"}`), OpID: "x"})
			d.waitApplied(t, v0+1)
			time.Sleep(300 * time.Millisecond) // a reply that does not wait for the disk comes now
			send(&protocol.Execute{ID: 3, Process: "counters.add", Args: []byte(`{"key":"c"}`), OpID: "x"},
				&protocol.Execute{ID: 4, Process: "counters.add", Args: []byte(`{"key":"d"}`)})
			d.waitApplied(t, v0+2) // the fourth: the ring's reader is not waiting for the disk
			time.Sleep(300 * time.Millisecond)
			released.Store(true)
			d.let()
			conflicts := 0
			for range 4 {
				g, ok := <-replies
				if !ok {
					t.Fatal("the connection ended")
				}
				if !g.released {
					t.Fatalf("reply %d (%+v) came while the disk held version %d", g.rep.ID, g.rep, v0+1)
				}
				if errors.Is(g.rep.Err, protocol.ErrOpIDConflict) {
					conflicts++
				} else if g.rep.Err != nil || g.rep.Version != v0+1 && g.rep.Version != v0+2 {
					t.Fatalf("reply %d: %+v, want a version after %d or op_id_conflict", g.rep.ID, g.rep, v0)
				}
			}
			if conflicts != 2 {
				t.Fatalf("%d op_id_conflict replies, want 2", conflicts)
			}
		})
	}
}
