package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/rs/zerolog"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/client"
	"github.com/theus-run/theus/demo"
	"github.com/theus-run/theus/durable"
	"github.com/theus-run/theus/pool"
	"github.com/theus-run/theus/protocol"
)

// op is one counter.add with its op id: known once it has an output.
type op struct {
	id        string
	call, ret int64
	out       int64
	known     bool
}

// durableSupervisor starts the test binary as a supervisor on state dir
// and returns it and a client; the caller kills it.
func durableSupervisor(t *testing.T, sock, state string) (*exec.Cmd, *client.Client) {
	t.Helper()
	exe, _ := os.Executable()
	os.Remove(sock) // a killed supervisor's socket: wait for the new one
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = supervisorEnv(t, sock, "THEUS_TEST_STATE="+state)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		c, err := client.Dial(sock)
		if err == nil {
			return cmd, c
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("supervisor did not come up: %v", err)
		}
	}
}

// TestCrashLoopLosesNothingAcknowledged: clients send counter.add with
// unique op ids while the supervisor is SIGKILLed at random moments and
// restarted on the same state, 50 times (THEUS_CRASH_ROUNDS=N for more).
// After each restart the ops whose outcome the crash hid are sent again
// with their op ids and answer with their outcome. In the end the counter
// equals the number of ops, every output 1..N appears exactly once (no
// op applied twice, nothing applied that was not sent), acknowledged op
// ids still answer as duplicates with their first result, and porcupine
// accepts the history across every restart.
func TestCrashLoopLosesNothingAcknowledged(t *testing.T) {
	rounds := 50
	if v, err := strconv.Atoi(os.Getenv("THEUS_CRASH_ROUNDS")); err == nil {
		rounds = v
	} else if testing.Short() {
		rounds = 10
	}
	dir := t.TempDir()
	sock, state := filepath.Join(dir, "run", "s.sock"), filepath.Join(dir, "state")
	var ops []*op
	var mu sync.Mutex
	next := 0
	resolve := func(c *client.Client) {
		for _, o := range ops {
			if o.known {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			res, err := c.Do(ctx, client.Request{Process: "counter.add", OpID: o.id})
			cancel()
			if err != nil {
				t.Fatalf("op %s after a restart: %v", o.id, err)
			}
			json.Unmarshal(res.Result, &o.out)
			o.ret, o.known = time.Now().UnixNano(), true
		}
	}
	for round := range rounds + 1 {
		cmd, c := durableSupervisor(t, sock, state)
		resolve(c)
		if round == rounds {
			// Acknowledged ops are there once: their ids answer as
			// duplicates, with their first result.
			for _, o := range ops[max(len(ops)-200, 0):] {
				res, err := c.Do(context.Background(), client.Request{Process: "counter.add", OpID: o.id})
				var out int64
				if err == nil {
					json.Unmarshal(res.Result, &out)
				}
				if err != nil || !res.Duplicate || out != o.out {
					t.Fatalf("op %s again: %+v %v; want a duplicate with result %d", o.id, res, err, o.out)
				}
			}
			v, err := c.Get(context.Background(), demo.CounterPath)
			if err != nil {
				t.Fatal(err)
			}
			var final int64
			json.Unmarshal(v.Entries[0].Value, &final)
			c.Close()
			cmd.Process.Kill()
			cmd.Wait()
			check(t, ops, final)
			return
		}
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for range 4 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					mu.Lock()
					next++
					o := &op{id: "op-" + strconv.Itoa(next), call: time.Now().UnixNano()}
					ops = append(ops, o)
					mu.Unlock()
					ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
					res, err := c.Do(ctx, client.Request{Process: "counter.add", OpID: o.id})
					cancel()
					if err != nil {
						return // the crash: its outcome is resolved after the restart
					}
					json.Unmarshal(res.Result, &o.out)
					o.ret, o.known = time.Now().UnixNano(), true
				}
			})
		}
		time.Sleep(time.Duration(20+rand.IntN(150)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		close(stop)
		c.Close() // the retries of ops in flight stop here
		wg.Wait()
	}
}

func check(t *testing.T, ops []*op, final int64) {
	t.Helper()
	if final != int64(len(ops)) {
		t.Fatalf("counter = %d after %d ops", final, len(ops))
	}
	outs := make([]int64, 0, len(ops))
	history := make([]porcupine.Operation, 0, len(ops))
	unknown := 0
	for i, o := range ops {
		outs = append(outs, o.out)
		history = append(history, porcupine.Operation{ClientId: i % 64, Input: addOp{1}, Call: o.call, Output: o.out, Return: o.ret})
		if o.ret == 0 {
			unknown++
		}
	}
	slices.Sort(outs)
	for i, v := range outs {
		if v != int64(i+1) {
			t.Fatalf("outputs are not 1..%d exactly once: position %d holds %d", len(ops), i, v)
		}
	}
	if !porcupine.CheckOperations(counterModel, history) {
		t.Fatal("porcupine: the history across restarts is not linearizable")
	}
	t.Logf("%d ops across the restarts, every one applied exactly once", len(ops))
	if unknown > 0 {
		t.Fatalf("%d ops never resolved", unknown)
	}
}

// TestDiskFaults: the disk fails before a batch is written, inside its
// transaction, or after its fsync. The execute waiting for it is not
// acknowledged (not_durable), nothing after it is, and the supervisor
// stops; Serve says why. After a restart on the same state the op is
// there at most once (exactly once when it reached the disk), and a retry
// with its op id completes it without a second apply.
func TestDiskFaults(t *testing.T) {
	for _, c := range []struct {
		point   string
		present bool
	}{{"before-write", false}, {"in-tx", false}, {"after-sync", true}} {
		t.Run(c.point, func(t *testing.T) {
			state := t.TempDir()
			var armed sync.Mutex
			fail := false
			h := startNoServe(t, func(cfg *Config) {
				cfg.StateDir = state
				cfg.JournalFault = func(p string) error {
					armed.Lock()
					defer armed.Unlock()
					if fail && p == c.point {
						return errors.New("injected disk error at " + p)
					}
					return nil
				}
			})
			ctx := context.Background()
			if rep := h.s.Execute(ctx, &protocol.Execute{Process: "counter.add", OpID: "op-1"}); rep.Err != nil {
				t.Fatal(rep.Err)
			}
			armed.Lock()
			fail = true
			armed.Unlock()
			rep := h.s.Execute(ctx, &protocol.Execute{Process: "counter.add", OpID: "op-2"})
			if !errors.Is(rep.Err, protocol.ErrNotDurable) {
				t.Fatalf("an execute whose batch failed: %+v, want not_durable", rep)
			}
			// Refused either way: the journal failed, or the shutdown it
			// started has begun.
			if rep := h.s.Execute(ctx, &protocol.Execute{Process: "noop"}); !errors.Is(rep.Err, protocol.ErrNotDurable) && !errors.Is(rep.Err, protocol.ErrShuttingDown) {
				t.Fatalf("an execute after the failure: %+v, want not_durable or shutting_down", rep)
			}
			if err := h.serveErr(); !errors.Is(err, protocol.ErrNotDurable) {
				t.Fatalf("Serve returned %v, want not_durable", err)
			}

			r := startNoServe(t, func(cfg *Config) { cfg.StateDir = state })
			defer r.s.Shutdown(ctx)
			v, _, ok := r.s.store.Lookup("op-2")
			if ok != c.present {
				t.Fatalf("op-2 on disk after the restart: %v (version %d), want %v", ok, v, c.present)
			}
			rep = r.s.Execute(ctx, &protocol.Execute{Process: "counter.add", OpID: "op-2"})
			if rep.Err != nil || rep.Duplicate != c.present || string(rep.Result) != "2" {
				t.Fatalf("op-2 retried: %+v; want result 2, duplicate %v", rep, c.present)
			}
			g := r.s.Get(&protocol.Get{Path: demo.CounterPath})
			if g.Err != nil || string(g.Entries[0].Value) != "2" {
				t.Fatalf("counter after the retry: %+v", g)
			}
		})
	}
}

// served is a supervisor serving its socket; serveErr stops waiting for
// Serve and returns its error.
type served struct {
	s    *Supervisor
	done chan struct{} // closed when Serve returns
	err  *error        // what Serve returned, once done is closed
}

func (h served) serveErr() error {
	select {
	case <-h.done:
		return *h.err
	case <-time.After(10 * time.Second):
		return errors.New("Serve did not return")
	}
}

// startNoServe starts a supervisor of the test worker, serving its
// socket; the test shuts it down (or lets it fail).
func startNoServe(t *testing.T, tune func(*Config)) served {
	t.Helper()
	cfg := Config{Plugins: testPlugins(t), Workers: 1, Socket: filepath.Join(t.TempDir(), "run", "s.sock"),
		Log: zerolog.Nop(), Pool: pool.Config{Env: quickExit()}}
	tune(&cfg)
	s, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := served{s: s, done: make(chan struct{}), err: new(error)}
	go func() { *h.err = s.Serve(context.Background()); close(h.done) }()
	t.Cleanup(func() { s.Shutdown(context.Background()); <-h.done })
	return h
}

// TestBackupWhileCommitting: backups taken while transfers commit are
// each a consistent state: the accounts' total is the same in every one,
// and a supervisor restored from one holds exactly that state.
func TestBackupWhileCommitting(t *testing.T) {
	h := startNoServe(t, func(cfg *Config) { cfg.StateDir = t.TempDir() })
	ctx := context.Background()
	const accounts, balance = 8, 100
	for i := range accounts {
		args := fmt.Appendf(nil, `{"account":"a%d","balance":%d}`, i, balance)
		if rep := h.s.Execute(ctx, &protocol.Execute{Process: "bank.open", Args: args}); rep.Err != nil {
			t.Fatal(rep.Err)
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for {
				select {
				case <-stop:
					return
				default:
				}
				from, to := r.IntN(accounts), r.IntN(accounts)
				if from == to {
					continue
				}
				args := fmt.Appendf(nil, `{"from":"a%d","to":"a%d","amount":%d}`, from, to, 1+r.IntN(20))
				rep := h.s.Execute(ctx, &protocol.Execute{Process: "bank.transfer", Args: args})
				if rep.Err != nil && !errors.Is(rep.Err, &protocol.Error{Code: demo.CodeInsufficientFunds}) {
					t.Error(rep.Err)
					return
				}
			}
		})
	}
	dir := t.TempDir()
	var last string
	versions := map[uint64]bool{}
	for i := range 5 {
		time.Sleep(20 * time.Millisecond)
		last = filepath.Join(dir, fmt.Sprintf("b%d.db", i))
		rep := h.s.Backup(ctx, &protocol.Backup{Path: last})
		if rep.Err != nil {
			t.Fatal(rep.Err)
		}
		versions[rep.Version] = true
		st, err := durable.ReadBackup(last)
		if err != nil {
			t.Fatal(err)
		}
		total, n := int64(0), 0
		for _, e := range st.Entries {
			if strings.HasPrefix(string(e.Path), demo.AccountsPath+".") {
				v, _ := strconv.ParseInt(string(e.Value), 10, 64)
				total += v
				n++
			}
		}
		if st.Version != cas.Version(rep.Version) || n != accounts || total != accounts*balance {
			t.Fatalf("backup %d at version %d (reply %d): %d accounts holding %d, want %d holding %d", i, st.Version, rep.Version, n, total, accounts, accounts*balance)
		}
	}
	close(stop)
	wg.Wait()
	if len(versions) < 2 {
		t.Fatalf("every backup at the same version %v: the commits did not go on", versions)
	}
	if rep := h.s.Backup(ctx, &protocol.Backup{Path: "relative.db"}); !errors.Is(rep.Err, protocol.ErrBadRequest) {
		t.Fatalf("a relative path: %+v, want bad_request", rep.Err)
	}

	want, err := durable.ReadBackup(last)
	if err != nil {
		t.Fatal(err)
	}
	r := startNoServe(t, func(cfg *Config) { cfg.StateDir = t.TempDir(); cfg.Restore = last })
	g := r.s.Get(&protocol.Get{Path: demo.AccountsPath})
	if g.Err != nil || len(g.Entries) != accounts || r.s.store.Version() != want.Version {
		t.Fatalf("restored: %+v at version %d, want %d accounts at %d", g, r.s.store.Version(), accounts, want.Version)
	}
	for i, e := range g.Entries {
		if e.Path != string(want.Entries[i].Path) || string(e.Value) != string(want.Entries[i].Value) {
			t.Fatalf("restored %s=%s, backup has %s=%s", e.Path, e.Value, want.Entries[i].Path, want.Entries[i].Value)
		}
	}
}

// TestSameOpIDConcurrentlyAndAfterRestart: one op id sent 16 times at
// once applies once (15 duplicates with the first one's result), and once
// more after a restart is a duplicate too.
func TestSameOpIDConcurrentlyAndAfterRestart(t *testing.T) {
	state := t.TempDir()
	h := startNoServe(t, func(cfg *Config) { cfg.StateDir = state; cfg.Workers = 2 })
	ctx := context.Background()
	req := func() *protocol.Execute {
		return &protocol.Execute{Process: "counter.add", Args: []byte(`{"by":7}`), OpID: "the-op"}
	}
	var dups atomic.Int32
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			rep := h.s.Execute(ctx, req())
			if rep.Err != nil || string(rep.Result) != "7" || rep.Version != 1 {
				t.Errorf("%+v", rep)
			}
			if rep.Duplicate {
				dups.Add(1)
			}
		})
	}
	wg.Wait()
	if dups.Load() != 15 {
		t.Fatalf("%d duplicates of 16, want 15", dups.Load())
	}
	if err := h.s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.serveErr(); err != nil {
		t.Fatal(err)
	}
	r := startNoServe(t, func(cfg *Config) { cfg.StateDir = state })
	if rep := r.s.Execute(ctx, req()); rep.Err != nil || !rep.Duplicate || string(rep.Result) != "7" || rep.Version != 1 {
		t.Fatalf("after the restart: %+v", rep)
	}
	if g := r.s.Get(&protocol.Get{Path: demo.CounterPath}); g.Err != nil || string(g.Entries[0].Value) != "7" {
		t.Fatalf("counter: %+v", g)
	}
}
