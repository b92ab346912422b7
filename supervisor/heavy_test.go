package supervisor

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/theus-run/theus/client"
	"github.com/theus-run/theus/protocol"
)

func withHeavy(size int64) func(*Config) {
	return func(c *Config) { c.HeavySize = size }
}

func execOK(t *testing.T, c *client.Client, process string, args any) json.RawMessage {
	t.Helper()
	res, err := c.Exec(context.Background(), process, args)
	if err != nil {
		t.Fatalf("%s %v: %v", process, args, err)
	}
	return res.Result
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != code {
		t.Fatalf("got %v, want code %s", err, code)
	}
}

// TestTensorsEndToEnd: fill, sum, peek and scale through the arena and
// inline; replaced tensors are freed once no snapshot sees them.
func TestTensorsEndToEnd(t *testing.T) {
	h := start(t, 2, withHeavy(64<<20))
	c := h.dial(t)
	base := h.s.Heavy()
	if base.Slabs != 2 || base.InUse != 0 || base.SlabSize != 32<<20 {
		t.Fatalf("zone at start: %+v", base)
	}
	const n = 1 << 20 // 4 MiB: through the arena
	execOK(t, c, "tensor.fill", map[string]any{"key": "a", "n": n, "value": 1.5})
	if got := string(execOK(t, c, "tensor.sum", map[string]any{"key": "a"})); got != "1.572864e+06" && got != "1572864" {
		t.Fatalf("sum = %s", got)
	}
	if got := string(execOK(t, c, "tensor.peek", map[string]any{"key": "a", "index": n - 1})); got != "1.5" {
		t.Fatalf("peek = %s", got)
	}
	execOK(t, c, "tensor.scale", map[string]any{"src": "a", "dst": "b", "factor": 2})
	if got := string(execOK(t, c, "tensor.sum", map[string]any{"key": "b"})); got != "3.145728e+06" && got != "3145728" {
		t.Fatalf("sum of the scaled tensor = %s", got)
	}
	execOK(t, c, "tensor.fill", map[string]any{"key": "small", "n": 10, "value": 3}) // 40 bytes: inline
	if got := string(execOK(t, c, "tensor.sum", map[string]any{"key": "small"})); got != "30" {
		t.Fatalf("sum of the inline tensor = %s", got)
	}
	v, err := c.Get(context.Background(), "heavy.small")
	if err != nil || !strings.Contains(string(v.Entries[0].Value), `"data":`) {
		t.Fatalf("heavy.small = %v, %v: want an inline tensor", v, err)
	}
	st := h.s.Heavy()
	if st.Blocks != 2 || st.InUse != 2*n*4 {
		t.Fatalf("two arena tensors of %d bytes: %+v", n*4, st)
	}
	// Replacing and re-filling frees the old blocks.
	for range 5 {
		execOK(t, c, "tensor.fill", map[string]any{"key": "a", "n": n / 2, "value": 1})
	}
	if st := h.s.Heavy(); st.Blocks != 2 || st.InUse != n*4+n*2 {
		t.Fatalf("after replacing heavy.a 5 times: %+v", st)
	}
	// Too large for a slab: a clear error, nothing committed.
	_, err = c.Exec(context.Background(), "tensor.fill", map[string]any{"key": "huge", "n": 16 << 20, "value": 1})
	wantCode(t, err, protocol.CodeArenaFull)
	if st := h.s.Heavy(); st.Blocks != 2 {
		t.Fatalf("after arena_full: %+v", st)
	}
	// status reports the zone.
	rep, err := c.Status(context.Background())
	if err != nil || rep.Heavy.Size != 64<<20 || rep.Heavy.Blocks != 2 || rep.Heavy.InUse != n*4+n*2 {
		t.Fatalf("status: %+v, %v", rep.Heavy, err)
	}
}

// TestHeavyOff: --heavy-size 0 keeps inline tensors and refuses larger
// ones with arena_full.
func TestHeavyOff(t *testing.T) {
	h := start(t, 1, nil)
	c := h.dial(t)
	execOK(t, c, "tensor.fill", map[string]any{"key": "s", "n": 100, "value": 2})
	if got := string(execOK(t, c, "tensor.sum", map[string]any{"key": "s"})); got != "200" {
		t.Fatalf("sum = %s", got)
	}
	_, err := c.Exec(context.Background(), "tensor.fill", map[string]any{"key": "big", "n": 1 << 20, "value": 1})
	wantCode(t, err, protocol.CodeArenaFull)
}

func checksum(t *testing.T, h *harness, path string) [32]byte {
	t.Helper()
	b, err := h.s.Tensor(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// busy runs fault.sleep on one worker (the one least loaded now) and
// returns once it is in flight there, so the next dispatch goes to the
// other worker; wait for the returned channel before the next busy.
func busy(t *testing.T, h *harness, c *client.Client) <-chan struct{} {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Exec(context.Background(), "fault.sleep", map[string]any{"ms": 1500})
	}()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		rep, err := c.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range rep.Workers {
			if w.InFlight > 0 {
				return done
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("fault.sleep never started")
	return nil
}

// onOtherWorker runs an evil process on the worker that did not write
// its input: it tries the idle placement and the one beside a busy
// worker, until the process does not answer own_slab.
func onOtherWorker(t *testing.T, h *harness, c *client.Client, process string, args any) (*client.Result, error) {
	t.Helper()
	for try := range 6 {
		var done <-chan struct{}
		if try%2 == 1 {
			done = busy(t, h, c)
		}
		res, err := c.Exec(context.Background(), process, args)
		if done != nil {
			<-done
		}
		var pe *protocol.Error
		if errors.As(err, &pe) && pe.Code == "own_slab" {
			continue
		}
		return res, err
	}
	t.Fatalf("%s always ran on the worker that wrote its input", process)
	return nil, nil
}

// TestMaliciousWorker: a worker that writes another worker's tensor, or
// mprotects it writable, dies alone; one that attacks the slab
// descriptors is refused by the kernel; forged descriptors are refused
// with bad_tensor. The supervisor stays up, committed tensors keep their
// checksums, and every block a failed invocation allocated is freed.
func TestMaliciousWorker(t *testing.T) {
	h := start(t, 2, func(c *Config) {
		c.HeavySize = 64 << 20
		c.DefaultTimeout = 10 * time.Second
	})
	c := h.dial(t)
	ctx := context.Background()
	execOK(t, c, "tensor.fill", map[string]any{"key": "a", "n": 1 << 16, "value": 7}) // 256 KiB, on the first worker
	sum := checksum(t, h, "heavy.a")
	base := h.s.Heavy()
	check := func(what string) {
		t.Helper()
		if got := checksum(t, h, "heavy.a"); got != sum {
			t.Fatalf("%s: heavy.a changed", what)
		}
		if st := h.s.Heavy(); st.InUse != base.InUse || st.Blocks != base.Blocks {
			t.Fatalf("%s: zone %+v, want in use %d in %d blocks", what, st, base.InUse, base.Blocks)
		}
		if got := string(execOK(t, c, "tensor.peek", map[string]any{"key": "a", "index": 3})); got != "7" {
			t.Fatalf("%s: peek = %s", what, got)
		}
	}

	t.Run("mprotect an input writable", func(t *testing.T) {
		res, err := onOtherWorker(t, h, c, "evil.mprotect", map[string]any{"key": "a"})
		if err != nil || !strings.Contains(string(res.Result), "permission denied") {
			t.Fatalf("mprotect: %v, %v; want EACCES", res, err)
		}
		check("after evil.mprotect")
	})
	t.Run("ftruncate, write, punch, reopen", func(t *testing.T) {
		res := execOK(t, c, "evil.fds", nil)
		var out map[string]string
		if err := json.Unmarshal(res, &out); err != nil {
			t.Fatal(err)
		}
		if len(out) < 2*5 {
			t.Fatalf("the worker holds %d slab descriptors' worth of attacks: %v", len(out)/5, out)
		}
		for attack, result := range out {
			if result == "ok" {
				t.Errorf("%s succeeded", attack)
			}
		}
		check("after evil.fds")
	})
	for _, mode := range []string{"number", "inline-short", "unknown-field", "twice", "stale", "offset", "range", "long", "strides", "slab", "other"} {
		t.Run("forged descriptor "+mode, func(t *testing.T) {
			_, err := c.Exec(ctx, "evil.forge", map[string]any{"mode": mode, "key": "a"})
			wantCode(t, err, protocol.CodeBadTensor)
			if v, err := c.Get(ctx, "heavy.forged"); !errors.Is(err, protocol.ErrNotFound) {
				t.Fatalf("heavy.forged: %+v, %v; want not_found (nothing committed)", v, err)
			}
			check("after evil.forge " + mode)
		})
	}
	t.Run("fail after allocating", func(t *testing.T) {
		_, err := c.Exec(ctx, "evil.allocfail", nil)
		wantCode(t, err, "boom")
		check("after evil.allocfail")
	})
	t.Run("die while writing", func(t *testing.T) {
		_, err := c.Exec(ctx, "evil.diewriting", nil)
		wantCode(t, err, protocol.CodeWorkerCrashed)
		check("after evil.diewriting")
	})
}

// TestDeadWritersTensorsMoveAndStayReadOnly: the worker that wrote a
// tensor is killed; the tensor moves out of its dead slab (which then
// closes) with the same bytes. A worker that writes a tensor it did not
// write dies of SIGSEGV; the tensor and the supervisor are fine.
func TestDeadWritersTensorsMoveAndStayReadOnly(t *testing.T) {
	h := start(t, 2, withHeavy(32<<20))
	c := h.dial(t)
	ctx := context.Background()
	execOK(t, c, "tensor.fill", map[string]any{"key": "a", "n": 1 << 16, "value": 7})
	sum := checksum(t, h, "heavy.a")
	before, _ := c.Get(ctx, "heavy.a")
	old := h.s.WorkerPIDs()
	for _, pid := range old {
		syscall.Kill(pid, syscall.SIGKILL) // the writer among them
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		st := h.s.Heavy()
		pids := h.s.WorkerPIDs()
		if len(pids) == 2 && !slices.Contains(old, pids[0]) && !slices.Contains(old, pids[1]) &&
			st.Retired == 0 && st.Slabs == 2 && st.Blocks == 1 && st.Held == 2*st.SlabSize {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the dead writer's slab never closed: %+v", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
	after, _ := c.Get(ctx, "heavy.a")
	if string(after.Entries[0].Value) == string(before.Entries[0].Value) || h.s.moves.Load() == 0 {
		t.Fatalf("heavy.a did not move: %s", after.Entries[0].Value)
	}
	if checksum(t, h, "heavy.a") != sum {
		t.Fatal("heavy.a changed when it moved")
	}
	// evil.write on the worker that does not own heavy.a's slab.
	crashed := false
	for try := 0; try < 6 && !crashed; try++ {
		restarts := totalRestarts(t, c)
		var done <-chan struct{}
		if try%2 == 1 {
			done = busy(t, h, c)
		}
		_, err := c.Exec(ctx, "evil.write", map[string]any{"key": "a"})
		if done != nil {
			<-done
		}
		var pe *protocol.Error
		if !errors.As(err, &pe) || (pe.Code != protocol.CodeWorkerCrashed && pe.Code != "own_slab") {
			t.Fatalf("evil.write: %v", err)
		}
		crashed = totalRestarts(t, c) > restarts
	}
	if !crashed {
		t.Fatal("evil.write never ran on the other worker")
	}
	if checksum(t, h, "heavy.a") != sum {
		t.Fatal("heavy.a changed")
	}
	if got := string(execOK(t, c, "tensor.peek", map[string]any{"key": "a", "index": 9})); got != "7" {
		t.Fatalf("peek = %s", got)
	}
}

func totalRestarts(t *testing.T, c *client.Client) uint64 {
	t.Helper()
	rep, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, w := range rep.Workers {
		n += w.Restarts
	}
	return n
}
