package supervisor

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/theus-run/theus/heavy"
	"github.com/theus-run/theus/protocol"
	"github.com/theus-run/theus/shm"
)

// TestHeavyReclaimUnderWorkerKills: clients fill, scale and sum tensors
// while workers are SIGKILLed (1000 times; THEUS_HEAVY_KILLS=N for
// another count). Under such a storm an invocation may fail (its worker
// died on every dispatch, or it waited past its deadline for one), which
// commits nothing; no other error is allowed. Afterwards the arena holds exactly the blocks of the
// committed tensors; once those are replaced by inline ones it holds
// nothing, every dead worker's slab is closed, and the live workers map
// only the live slabs.
func TestHeavyReclaimUnderWorkerKills(t *testing.T) {
	target := 1000
	if v, err := strconv.Atoi(os.Getenv("THEUS_HEAVY_KILLS")); err == nil {
		target = v
	} else if testing.Short() {
		target = 100
	}
	h := start(t, 2, func(c *Config) {
		c.HeavySize = 32 << 20
		c.Pool.MaxRestarts = 1 << 30 // no restart backoff: kill as fast as workers start
		c.DefaultTimeout = 5 * time.Second
		c.Log = c.Log.Level(zerolog.WarnLevel)
	})
	ctx := context.Background()
	const clients, keys = 4, 6
	var stop atomic.Bool
	var ops, fails atomic.Int64
	var codesMu sync.Mutex
	codes := map[string]int{}
	var wg sync.WaitGroup
	for i := range clients {
		c := h.dial(t)
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(i), 1))
			for !stop.Load() {
				key := "k" + strconv.Itoa(r.IntN(keys))
				var err error
				switch r.IntN(3) {
				case 0:
					_, err = c.Exec(ctx, "tensor.fill", map[string]any{"key": key, "n": 5000 + r.IntN(200_000), "value": 1})
				case 1:
					_, err = c.Exec(ctx, "tensor.scale", map[string]any{"src": key, "dst": "k" + strconv.Itoa(r.IntN(keys)), "factor": 2})
				case 2:
					_, err = c.Exec(ctx, "tensor.sum", map[string]any{"key": key})
				}
				ops.Add(1)
				var pe *protocol.Error
				switch {
				case err == nil:
				case errors.As(err, &pe) && (pe.Code == protocol.CodeWorkerCrashed || pe.Code == protocol.CodeArenaFull ||
					pe.Code == "not_found" || pe.Code == protocol.CodeRetryLimit || pe.Code == protocol.CodeTimeout):
					fails.Add(1)
					codesMu.Lock()
					codes[pe.Code]++
					codesMu.Unlock()
				default:
					t.Errorf("client %d: %v", i, err)
					stop.Store(true)
				}
			}
		})
	}
	kills := 0
	began := time.Now()
	for kills < target && !stop.Load() && time.Since(began) < 4*time.Minute {
		pids := h.s.WorkerPIDs()
		if len(pids) == 0 {
			time.Sleep(time.Millisecond)
			continue
		}
		if syscall.Kill(pids[rand.IntN(len(pids))], syscall.SIGKILL) == nil {
			kills++
		}
		// Let traffic through between kills: one more finished operation,
		// then a random moment into the next ones.
		for n := ops.Load(); ops.Load() == n && !stop.Load(); {
			time.Sleep(time.Millisecond)
		}
		time.Sleep(time.Duration(rand.IntN(5000)) * time.Microsecond)
	}
	stop.Store(true)
	wg.Wait()
	if kills < target {
		t.Fatalf("only %d of %d kills in %s", kills, target, time.Since(began))
	}
	if ok := ops.Load() - fails.Load(); ok < int64(target)/4 {
		t.Fatalf("only %d successful operations during %d kills (failures: %v): the traffic tested little", ok, kills, codes)
	}

	// The arena holds exactly the committed tensors' blocks (once the
	// evacuator, which runs on its own, has moved what it can).
	c := h.dial(t)
	var want int64
	var blocks int
	var st heavy.Stats
	for deadline := time.Now().Add(10 * time.Second); ; {
		v, err := c.Get(ctx, "heavy")
		if err != nil {
			t.Fatal(err)
		}
		want, blocks = 0, 0
		for _, e := range v.Entries {
			d, err := shm.ParseDescriptor(e.Value, 1<<20)
			if err != nil {
				t.Fatalf("%s: %v", e.Path, err)
			}
			if !d.Inline() {
				want += (d.Len + shm.BlockAlign - 1) / shm.BlockAlign * shm.BlockAlign
				blocks++
			}
		}
		st = h.s.Heavy()
		if st.InUse == want && st.Blocks == blocks {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("arena: %d bytes in %d blocks in use, committed tensors need %d bytes in %d blocks; evacuees %v; blocks:\n%s", st.InUse, st.Blocks, want, blocks, h.s.zone.Evacuees(), strings.Join(h.s.zone.Describe(), "\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("%d kills in %s, %d ops (%d failed as allowed: %v); zone after: %+v", kills, time.Since(began).Round(time.Millisecond), ops.Load(), fails.Load(), codes, st)

	// Replace every tensor by an inline one: the arena is back to empty.
	for k := range keys {
		key := "k" + strconv.Itoa(k)
		if _, err := c.Exec(ctx, "tensor.fill", map[string]any{"key": key, "n": 4, "value": 1}); err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); ; { // a move in flight holds a snapshot
		st = h.s.Heavy()
		if st.InUse == 0 && st.Blocks == 0 && st.Retired == 0 && st.Held == int64(st.Slabs)*st.SlabSize {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after replacing every tensor: %+v; blocks:\n%s", st, strings.Join(h.s.zone.Describe(), "\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Workers unmapped the closed slabs (the Unmap packets arrive
	// asynchronously; give them a moment).
	for deadline := time.Now().Add(5 * time.Second); ; {
		err := checkMappings(h.s.WorkerPIDs(), st.Slabs)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkMappings verifies that each worker maps want distinct slabs.
func checkMappings(pids []int, want int) error {
	for _, pid := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/maps")
		if err != nil {
			continue // replaced meanwhile
		}
		slabs := map[string]bool{}
		for _, line := range strings.Split(string(b), "\n") {
			if i := strings.Index(line, "memfd:theus-heavy-"); i >= 0 {
				slabs[strings.Fields(line[i:])[0]] = true
			}
		}
		if len(slabs) != want {
			return fmt.Errorf("worker %d maps %d slabs, want %d: %v", pid, len(slabs), want, slabs)
		}
	}
	return nil
}
