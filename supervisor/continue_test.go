package supervisor

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/theus-run/theus/client"
	"github.com/theus-run/theus/durable"
	"github.com/theus-run/theus/protocol"
)

// TestSlowClientStallsNobody: on the continuation path the reader of a
// worker's ring replies to every client in turn. A client that pipelines
// executes with large replies and never reads them must not hold up
// another client's executes on the same worker: its replies wait for a
// writer of their own.
func TestSlowClientStallsNobody(t *testing.T) {
	for _, goroutines := range []bool{false, true} {
		t.Run("goroutine-per-execute="+strconv.FormatBool(goroutines), func(t *testing.T) {
			h := start(t, 1, func(c *Config) { c.GoroutinePerExecute = goroutines })
			slow, err := net.Dial("unix", h.sock)
			if err != nil {
				t.Fatal(err)
			}
			defer slow.Close()
			var frames []byte
			for i := range 256 {
				frames, err = protocol.AppendFrame(frames, &protocol.Execute{ID: uint64(i + 1), Process: "test.big", Args: []byte(`{"n":65536}`)})
				if err != nil {
					t.Fatal(err)
				}
			}
			if _, err := slow.Write(frames); err != nil { // 16 MiB of replies that nobody reads
				t.Fatal(err)
			}
			c := h.dial(t)
			// Well under the write timeout (ipc.DefaultWriteTimeout, 10 s)
			// that a reader stuck on the slow client would wait out, and
			// far above what 50 noops take.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			start := time.Now()
			for i := range 50 {
				if _, err := c.Exec(ctx, "noop", nil); err != nil {
					t.Fatalf("execute %d of a client beside a slow one: %v (after %v)", i, err, time.Since(start))
				}
			}
		})
	}
}

// TestWokenBeforeTheReaderWaits: the reader publishes dispatches without
// waking their worker and wakes it before it may wait. A wake-up lost
// shows as a timeout (DefaultTimeout 3 s) of requests a parked worker
// never saw: when the reader waits for a slot (more executes in one
// write than MaxPerClient), and when it waits for the rest of a frame
// that came in part.
func TestWokenBeforeTheReaderWaits(t *testing.T) {
	for _, goroutines := range []bool{false, true} {
		t.Run("goroutine-per-execute="+strconv.FormatBool(goroutines), func(t *testing.T) {
			h := start(t, 1, func(c *Config) {
				c.GoroutinePerExecute = goroutines
				c.MaxPerClient = 2
				c.DefaultTimeout = 3 * time.Second
			})
			parked := func() {
				if _, err := h.dial(t).Exec(t.Context(), "noop", nil); err != nil {
					t.Fatal(err)
				}
				time.Sleep(100 * time.Millisecond) // the worker parks on its ring
			}
			noops := func(from, n int) []byte {
				var b []byte
				for i := range n {
					b, _ = protocol.AppendFrame(b, &protocol.Execute{ID: uint64(from + i), Process: "noop"})
				}
				return b
			}
			replies := func(r *protocol.Reader, n int) {
				t.Helper()
				for i := range n {
					m, err := r.ReadMessage()
					if err != nil {
						t.Fatalf("reply %d: %v", i, err)
					}
					if rep, ok := m.(*protocol.Reply); !ok || rep.Err != nil {
						t.Fatalf("reply %d: %+v", i, m)
					}
				}
			}
			nc, err := net.Dial("unix", h.sock)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			nc.SetReadDeadline(time.Now().Add(30 * time.Second))
			r := protocol.NewReader(nc, protocol.DefaultMaxFrame)

			parked()
			if _, err := nc.Write(noops(1, 8)); err != nil { // 4 times MaxPerClient
				t.Fatal(err)
			}
			replies(r, 8)

			parked()
			next := noops(100, 2)
			if _, err := nc.Write(next[:len(next)-2]); err != nil { // the second frame cut short
				t.Fatal(err)
			}
			replies(r, 1)
			if _, err := nc.Write(next[len(next)-2:]); err != nil {
				t.Fatal(err)
			}
			replies(r, 1)
		})
	}
}

// TestWokenAfterAReceiveOfWholeFrames: one write of executes whose
// frames end exactly where the reader's receive buffer does (a power
// of two of bytes) is read by a receive that fills the buffer, then one
// that finds nothing: the reader must wake the worker before it waits
// then too. Each size is a fresh write to a worker parked on its ring;
// a wake-up lost shows as a timeout (DefaultTimeout 3 s).
func TestWokenAfterAReceiveOfWholeFrames(t *testing.T) {
	h := start(t, 1, func(c *Config) { c.DefaultTimeout = 3 * time.Second })
	nc, err := net.Dial("unix", h.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetReadDeadline(time.Now().Add(60 * time.Second))
	r := protocol.NewReader(nc, protocol.DefaultMaxFrame)
	id := uint64(0)
	for _, size := range []int{256, 512, 1024, 2048, 4096} {
		burst, n := wholeFramesOf(t, size, &id)
		if _, err := h.dial(t).Exec(t.Context(), "noop", nil); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond) // the worker parks on its ring
		if _, err := nc.Write(burst); err != nil {
			t.Fatal(err)
		}
		for i := range n {
			m, err := r.ReadMessage()
			if err != nil {
				t.Fatalf("%d bytes of executes: reply %d: %v", size, i, err)
			}
			if rep, ok := m.(*protocol.Reply); !ok || rep.Err != nil {
				t.Fatalf("%d bytes of executes: reply %d: %+v", size, i, m)
			}
		}
	}
}

// burstsEnv sets how many bursts TestBurstsOfAnySize writes (default
// 300, about 3 s): a soak runs more.
const burstsEnv = "THEUS_BURSTS"

// TestBurstsOfAnySize: bursts of 1 to 48 noop executes, of frames of
// random sizes (an op id of random length pads each), each burst in one
// write after a random pause (the worker parked on its ring, polling,
// or busy), every reply awaited before the next. A dispatch whose
// wake-up is lost shows as a timeout (DefaultTimeout 3 s). The seed is
// logged; THEUS_BURSTS=N runs N bursts.
func TestBurstsOfAnySize(t *testing.T) {
	bursts := 300
	if v := os.Getenv(burstsEnv); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want a count", burstsEnv, v)
		}
		bursts = n
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	h := start(t, 1, func(c *Config) { c.DefaultTimeout = 3 * time.Second })
	nc, err := net.Dial("unix", h.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	r := protocol.NewReader(nc, protocol.DefaultMaxFrame)
	pauses := []time.Duration{0, 0, 100 * time.Microsecond, time.Millisecond, 5 * time.Millisecond, 20 * time.Millisecond}
	id := uint64(0)
	for b := range bursts {
		n := 1 + rng.IntN(48)
		var burst []byte
		for range n {
			id++
			op := "op" + strconv.FormatUint(id, 10) + strings.Repeat("x", rng.IntN(40))
			burst, _ = protocol.AppendFrame(burst, &protocol.Execute{ID: id, Process: "noop", OpID: op})
		}
		time.Sleep(pauses[rng.IntN(len(pauses))])
		if _, err := nc.Write(burst); err != nil {
			t.Fatal(err)
		}
		nc.SetReadDeadline(time.Now().Add(30 * time.Second))
		for i := range n {
			m, err := r.ReadMessage()
			if err != nil {
				t.Fatalf("burst %d (%d executes, %d bytes), seed %d: reply %d: %v", b, n, len(burst), seed, i, err)
			}
			if rep, ok := m.(*protocol.Reply); !ok || rep.Err != nil {
				t.Fatalf("burst %d (%d executes, %d bytes), seed %d: reply %d: %+v", b, n, len(burst), seed, i, m)
			}
		}
	}
}

// wholeFramesOf returns noop Executes (numbered from *id+1 on) whose
// frames make exactly size bytes, and how many there are; the last has
// an op id as long as that takes.
func wholeFramesOf(t *testing.T, size int, id *uint64) ([]byte, int) {
	t.Helper()
	var b []byte
	n := 0
	for {
		f, _ := protocol.AppendFrame(nil, &protocol.Execute{ID: *id + 1, Process: "noop"})
		if len(b)+len(f) > size-64 {
			break
		}
		*id++
		n++
		b = append(b, f...)
	}
	for pad := range 64 { // the last one's op id pads it
		op := "op" + strconv.FormatUint(*id+1, 10) + strings.Repeat("x", pad)
		f, _ := protocol.AppendFrame(nil, &protocol.Execute{ID: *id + 1, Process: "noop", OpID: op})
		if len(b)+len(f) == size {
			*id++
			return append(b, f...), n + 1
		}
	}
	t.Fatalf("no padding makes %d bytes of frames from %d", size, len(b))
	return nil, 0
}

// TestSyncRepliesAfterTheDisk: with durability sync, an execute on the
// continuation path (with an op id or without) commits on the ring's
// reader but replies only once its version is on disk, as on the
// goroutine path.
func TestSyncRepliesAfterTheDisk(t *testing.T) {
	for _, goroutines := range []bool{false, true} {
		t.Run("goroutine-per-execute="+strconv.FormatBool(goroutines), func(t *testing.T) {
			h := start(t, 2, func(c *Config) {
				c.GoroutinePerExecute = goroutines
				c.StateDir, c.Durability = t.TempDir(), durable.Sync
			})
			var wg sync.WaitGroup
			for i := range 8 {
				c := h.dial(t)
				wg.Go(func() {
					for j := range 25 {
						req := client.Request{Process: "counters.add", Args: map[string]string{"key": "k" + strconv.Itoa(i)}}
						if i%2 == 0 { // half of them idempotent: an op id takes the same path
							req.OpID = "op-" + strconv.Itoa(i) + "-" + strconv.Itoa(j)
						}
						res, err := c.Do(t.Context(), req)
						if err != nil {
							t.Error(err)
							return
						}
						if d := h.s.journal.Durable(); uint64(d) < res.Version {
							t.Errorf("client %d, call %d: reply at version %d, on disk only %d", i, j, res.Version, d)
							return
						}
					}
				})
			}
			wg.Wait()
		})
	}
}

// TestClientGoneMidFlight: a client that goes away with executes in
// flight ends them: their worker is told, and the one whose process
// hangs is killed after the kill grace; nothing stays in flight, and the
// next client is served.
func TestClientGoneMidFlight(t *testing.T) {
	for _, goroutines := range []bool{false, true} {
		t.Run("goroutine-per-execute="+strconv.FormatBool(goroutines), func(t *testing.T) {
			h := start(t, 1, func(c *Config) {
				c.GoroutinePerExecute = goroutines
				c.Pool.KillGrace = 100 * time.Millisecond
			})
			before := h.s.WorkerPIDs()
			nc, err := net.Dial("unix", h.sock)
			if err != nil {
				t.Fatal(err)
			}
			var frames []byte
			for i := range 4 {
				frames, _ = protocol.AppendFrame(frames, &protocol.Execute{ID: uint64(i + 1), Process: "fault.sleep", Args: []byte(`{"ms":60000}`)})
			}
			if _, err := nc.Write(frames); err != nil {
				t.Fatal(err)
			}
			for deadline := time.Now().Add(20 * time.Second); inFlight(h) < 4; time.Sleep(5 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("%d executes in flight, want 4", inFlight(h))
				}
			}
			nc.Close()
			for deadline := time.Now().Add(20 * time.Second); inFlight(h) != 0; time.Sleep(5 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("%d executes still in flight after their client went", inFlight(h))
				}
			}
			if _, err := h.dial(t).Exec(t.Context(), "noop", nil); err != nil {
				t.Fatal(err)
			}
			if after := h.s.WorkerPIDs(); len(after) != 1 || after[0] == before[0] {
				t.Fatalf("the worker of the hung processes was not replaced: %v, then %v", before, after)
			}
		})
	}
}

// inFlight is the dispatches in flight in every worker.
func inFlight(h *harness) int64 {
	var n int64
	for _, w := range h.s.Stats().Workers {
		n += w.InFlight
	}
	return n
}

// TestSyncReadOnlyWaitsForTheDisk: with durability sync, a read-only
// execute whose snapshot holds a commit not yet on disk waits for the
// disk before it replies (it must not show what a crash could take
// back), and when the disk fails both it and the commit answer
// not_durable.
func TestSyncReadOnlyWaitsForTheDisk(t *testing.T) {
	for _, fail := range []bool{false, true} {
		t.Run("disk-fails="+strconv.FormatBool(fail), func(t *testing.T) {
			gate := make(chan struct{})
			var mu sync.Mutex
			holding := false
			h := startNoServe(t, func(c *Config) { // it may fail: Serve then returns not_durable
				c.Workers = 2
				c.StateDir, c.Durability = t.TempDir(), durable.Sync
				c.JournalFault = func(point string) error {
					mu.Lock()
					hold := holding
					mu.Unlock()
					if hold && point == "before-write" {
						<-gate
						if fail {
							return errors.New("injected disk failure")
						}
					}
					return nil
				}
			})
			dial := func() *client.Client {
				c, err := client.Dial(h.s.Addr())
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
				return c
			}
			a, b := dial(), dial()
			if _, err := a.Exec(t.Context(), "noop", nil); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			holding = true // the next batch waits at the disk
			mu.Unlock()
			writer := make(chan error, 1)
			go func() {
				_, err := a.Exec(t.Context(), "counters.add", map[string]string{"key": "x"})
				writer <- err
			}()
			for deadline := time.Now().Add(20 * time.Second); h.s.store.Version() <= h.s.journal.Durable(); time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the commit was not applied")
				}
			}
			reader := make(chan error, 1)
			go func() {
				res, err := b.Exec(t.Context(), "noop", nil)
				if err == nil && uint64(h.s.journal.Durable()) < res.Version {
					err = errors.New("a read-only reply saw a version not on disk")
				}
				reader <- err
			}()
			select {
			case err := <-reader:
				t.Fatalf("a read-only execute replied (%v) while its snapshot's commit was held at the disk", err)
			case <-time.After(300 * time.Millisecond):
			}
			close(gate)
			rerr, werr := <-reader, <-writer
			if fail {
				if !errors.Is(rerr, protocol.ErrNotDurable) || !errors.Is(werr, protocol.ErrNotDurable) {
					t.Fatalf("after a disk failure: read-only %v, writer %v; want not_durable for both", rerr, werr)
				}
				if err := h.serveErr(); !errors.Is(err, protocol.ErrNotDurable) {
					t.Fatalf("Serve returned %v, want not_durable", err)
				}
				return
			}
			if rerr != nil || werr != nil {
				t.Fatalf("read-only %v, writer %v", rerr, werr)
			}
		})
	}
}
