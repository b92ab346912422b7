package flux

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"
)

const finalMachine = `
initial: a
states:
  a:
    on:
      domain.cmd_go: b
  b:
`

// A machine that reaches a final state stops: its goroutine and its
// signal subscription end, and a watcher that comes later gets its end
// at once instead of waiting forever.
func TestMachineInAFinalStateStops(t *testing.T) {
	h := newFakeHost()
	e := newEngine(t, h, map[string]string{"fin.yaml": finalMachine})
	ctx := context.Background()
	if _, err := e.StartMachine(ctx, MachineRequest{Name: "fin", ID: "f1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Send(ctx, "f1", "domain.cmd_go"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the final machine's subscription ends", func() bool { return h.subscribers() == 0 })
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var last map[string]any
	err := e.Watch(wctx, "f1", func(ev any) error { last = ev.(map[string]any); return nil })
	if err != nil || last["event"] != "end" || last["state"] != "b" {
		t.Fatalf("watch of a final machine: %v, last %v", err, last)
	}
}

const entryMachine = `
initial: a
states:
  a:
    entry:
      - process: add
        args: {key: x}
    on:
      done: b
      domain.cmd_skip: b
  b:
    on:
      domain.cmd_back: a
`

// An event that moves a machine while its entry block runs cancels that
// run, whatever the event: done sent by hand too.
func TestSendDoneCancelsTheEntryRun(t *testing.T) {
	h := newFakeHost()
	e := newEngine(t, h, map[string]string{"m.yaml": entryMachine})
	release := make(chan struct{})
	defer close(release)
	h.before = func(ctx context.Context, _ Call) error {
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return failf("canceled", "%v", ctx.Err())
		}
	}
	ctx := context.Background()
	m, err := e.StartMachine(ctx, MachineRequest{Name: "m", ID: "m1"})
	if err != nil {
		t.Fatal(err)
	}
	entry := m.EntryRun
	if m, err = e.Send(ctx, "m1", EventDone); err != nil || m.State != "b" {
		t.Fatalf("send done: %+v %v", m, err)
	}
	v, err := e.Status(entry)
	if err != nil || v.Status != StatusCancelled {
		t.Fatalf("the entry run of the state left: %+v %v", v, err)
	}
}

// StartMachine commits the machine whatever happens to the caller's
// context after: a machine on record is live.
func TestStartMachineCommitNotTiedToTheCaller(t *testing.T) {
	h := newFakeHost()
	e := newEngine(t, h, map[string]string{"fin.yaml": finalMachine})
	ctx, cancel := context.WithCancel(context.Background())
	h.durable = func(ctx context.Context) error {
		cancel() // the client goes away while the commit is made durable
		return ctx.Err()
	}
	e.StartMachine(ctx, MachineRequest{Name: "fin", ID: "f2"})
	h.durable = nil
	if _, err := e.MachineStatus("f2"); err != nil {
		return // not on record: nothing to check
	}
	if _, err := e.Send(context.Background(), "f2", "domain.cmd_go"); err != nil {
		t.Fatalf("a machine on record is not live: %v", err)
	}
}

// A machine's entry runs have ids no client can give a run: a run
// started with the id a machine's entry run will get is not overwritten
// by it.
func TestEntryRunIDsDoNotCollide(t *testing.T) {
	h := newFakeHost()
	e := newEngine(t, h, map[string]string{"m.yaml": entryMachine, "w.yaml": "steps: [{process: add, args: {key: w}}]\n"})
	ctx := context.Background()
	m, err := e.StartMachine(ctx, MachineRequest{Name: "m", ID: "m2"})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := e.Run(ctx, RunRequest{Name: "w", ID: m.EntryRun}); err == nil {
		t.Fatalf("a run took the id of entry run %s: %+v", m.EntryRun, v)
	}
	// The id the machine's next entry run would get.
	next := strings.Replace(m.EntryRun, "0", "2", 1)
	if v, err := e.Run(ctx, RunRequest{Name: "w", ID: next}); err == nil {
		t.Fatalf("a run took the id %s, of a future entry run: %+v", next, v)
	}
}

// A machine id of the longest length still runs its entry blocks and
// moves on their end.
func TestLongMachineIDRunsItsEntry(t *testing.T) {
	h := newFakeHost()
	e := newEngine(t, h, map[string]string{"m.yaml": entryMachine})
	id := strings.Repeat("m", MaxIDLen)
	if _, err := e.StartMachine(context.Background(), MachineRequest{Name: "m", ID: id}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the machine reaches b", func() bool {
		v, err := e.MachineStatus(id)
		return err == nil && v.State == "b"
	})
}

// A machine driven by signals and sends at once, while its entry block
// runs: it ends with at most one entry run live, the one its record
// names; every other ended.
func TestMachineUnderConcurrentEvents(t *testing.T) {
	h := newFakeHost()
	e := newEngine(t, h, map[string]string{"m.yaml": entryMachine})
	ctx := context.Background()
	if _, err := e.StartMachine(ctx, MachineRequest{Name: "m", ID: "busy"}); err != nil {
		t.Fatal(err)
	}
	events := []string{"domain.cmd_skip", "domain.cmd_back", EventDone}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				ev := events[(g+i)%len(events)]
				if g%2 == 0 {
					h.signal(ev)
				} else {
					e.Send(ctx, "busy", ev)
				}
			}
		})
	}
	wg.Wait()
	eventually(t, "only the current entry run is live", func() bool {
		m, err := e.MachineStatus("busy")
		if err != nil {
			t.Fatal(err)
		}
		l, err := e.List()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range l.Runs {
			if r.Machine == "busy" && !terminal(r.Status) && r.Run != m.EntryRun {
				return false
			}
		}
		return true
	})
}
