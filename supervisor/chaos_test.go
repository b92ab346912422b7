package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/theus-run/theus/client"
	"github.com/theus-run/theus/demo"
	"github.com/theus-run/theus/protocol"
)

// killer SIGKILLs a random worker every period until stop is closed, and
// returns how many it killed.
func killer(h *harness, period time.Duration, stop <-chan struct{}) <-chan int {
	out := make(chan int, 1)
	go func() {
		kills := 0
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-stop:
				out <- kills
				return
			case <-t.C:
			}
			if pids := h.s.WorkerPIDs(); len(pids) > 0 {
				if syscall.Kill(pids[rand.IntN(len(pids))], syscall.SIGKILL) == nil {
					kills++
				}
			}
		}
	}()
	return out
}

type addOp struct{ by int64 }

// counterModel is a register that counter.add increments; each add's
// output is the value after it.
var counterModel = porcupine.Model{
	Init: func() any { return int64(0) },
	Step: func(state, input, output any) (bool, any) {
		next := state.(int64) + input.(addOp).by
		return output.(int64) == next, next
	},
	DescribeOperation: func(in, out any) string { return "" },
}

// TestNoLostUpdatesUnderWorkerKills: 8 clients × N counter.add while
// workers are SIGKILLed; the final counter equals the successful replies,
// every failure is worker_crashed (which guarantees no commit), and
// porcupine accepts the history of replies as linearizable.
// It runs on both paths of a client's Execute: the continuation path
// (the default) and a goroutine per execute.
func TestNoLostUpdatesUnderWorkerKills(t *testing.T) {
	for _, goroutines := range []bool{false, true} {
		t.Run("goroutine-per-execute="+strconv.FormatBool(goroutines), func(t *testing.T) {
			noLostUpdatesUnderWorkerKills(t, func(c *Config) { c.GoroutinePerExecute = goroutines })
		})
	}
}

func noLostUpdatesUnderWorkerKills(t *testing.T, tune func(*Config)) {
	n := 1000
	if testing.Short() {
		n = 200
	}
	h := start(t, 2, func(c *Config) {
		c.Pool.MaxRestarts = 1 << 30 // no restart backoff: the kills, not the waits, set the pace
		tune(c)
	})
	const clients = 8
	var mu sync.Mutex
	var history []porcupine.Operation
	var ok, crashed atomic.Int64
	stop := make(chan struct{})
	kills := killer(h, 40*time.Millisecond, stop)
	var wg sync.WaitGroup
	ctx := context.Background()
	for i := range clients {
		c := h.dial(t)
		wg.Go(func() {
			for range n {
				call := time.Now().UnixNano()
				res, err := c.Exec(ctx, "counter.add", nil)
				ret := time.Now().UnixNano()
				if errors.Is(err, protocol.ErrWorkerCrashed) {
					crashed.Add(1)
					continue
				}
				if err != nil {
					t.Errorf("client %d: %v", i, err)
					return
				}
				var v int64
				if err := json.Unmarshal(res.Result, &v); err != nil {
					t.Error(err)
					return
				}
				ok.Add(1)
				mu.Lock()
				history = append(history, porcupine.Operation{ClientId: i, Input: addOp{1}, Call: call, Output: v, Return: ret})
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(stop)
	killed := <-kills
	v, err := h.dial(t).Get(ctx, demo.CounterPath)
	if err != nil {
		t.Fatal(err)
	}
	var final int64
	json.Unmarshal(v.Entries[0].Value, &final)
	if final != ok.Load() {
		t.Fatalf("counter = %d, successful replies = %d (%d crashed, %d workers killed)", final, ok.Load(), crashed.Load(), killed)
	}
	if res := porcupine.CheckOperations(counterModel, history); !res {
		t.Fatal("porcupine: the history of replies is not linearizable")
	}
	t.Logf("%d commits, %d failed with worker_crashed, %d workers killed", final, crashed.Load(), killed)
	if killed == 0 {
		t.Error("no worker was killed: the test tested nothing")
	}
}

// TestBankInvariantUnderWorkerKills: concurrent transfers among 10
// accounts while workers die: the total never changes, in any snapshot,
// and no balance goes negative.
func TestBankInvariantUnderWorkerKills(t *testing.T) {
	h := start(t, 2, nil)
	ctx := context.Background()
	c := h.dial(t)
	const accounts, opening = 10, 100
	for i := range accounts {
		if _, err := c.Exec(ctx, "bank.open", demo.OpenArgs{Account: name(i), Balance: opening}); err != nil {
			t.Fatal(err)
		}
	}
	stop := make(chan struct{})
	kills := killer(h, 50*time.Millisecond, stop)
	transfers := 300
	if testing.Short() {
		transfers = 80
	}
	var wg sync.WaitGroup
	var done, refused atomic.Int64
	for i := range 8 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(i), 1))
			for range transfers {
				a, b := r.IntN(accounts), r.IntN(accounts-1)
				if b >= a {
					b++
				}
				_, err := c.Exec(ctx, "bank.transfer", demo.TransferArgs{From: name(a), To: name(b), Amount: 1 + r.Int64N(60)})
				switch {
				case err == nil:
					done.Add(1)
				case errors.Is(err, &protocol.Error{Code: demo.CodeInsufficientFunds}), errors.Is(err, protocol.ErrWorkerCrashed):
					refused.Add(1)
				default:
					t.Error(err)
					return
				}
			}
		})
	}
	// An auditor reads every account in one snapshot while transfers run.
	audits := 0
	auditDone := make(chan struct{})
	go func() { wg.Wait(); close(auditDone) }()
	for running := true; running; {
		select {
		case <-auditDone:
			running = false
		default:
		}
		checkBank(t, c, accounts*opening)
		audits++
		time.Sleep(time.Millisecond)
	}
	close(stop)
	t.Logf("%d transfers, %d refused or crashed, %d audits, %d workers killed", done.Load(), refused.Load(), audits, <-kills)
}

func checkBank(t *testing.T, c *client.Client, want int64) {
	t.Helper()
	v, err := c.Get(context.Background(), demo.AccountsPath)
	if err != nil {
		t.Fatal(err)
	}
	total := int64(0)
	for _, e := range v.Entries {
		var b int64
		json.Unmarshal(e.Value, &b)
		if b < 0 {
			t.Fatalf("version %d: %s = %d", v.Version, e.Path, b)
		}
		total += b
	}
	if total != want {
		t.Fatalf("version %d: total %d, want %d", v.Version, total, want)
	}
}

func name(i int) string { return "a" + string(rune('0'+i)) }
