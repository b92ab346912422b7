package clustertest

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/client"
	"github.com/theus-run/theus/demo"
	"github.com/theus-run/theus/internal/etcdtest"
	"github.com/theus-run/theus/protocol"
	"github.com/theus-run/theus/supervisor"
)

// TestEtcd runs supervisors on one real 3-member etcd cluster, started in
// this test binary; each subtest keeps its Context under a prefix of its
// own. The no-quorum subtest stops members: it runs last.
func TestEtcd(t *testing.T) {
	cl, err := etcdtest.Start(t.TempDir(), 3)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	t.Run("CounterTwoSupervisors", func(t *testing.T) { etcdCounter(t, cl) })
	t.Run("OpIDOnceAcrossSupervisors", func(t *testing.T) { etcdOpID(t, cl) })
	t.Run("HotKeyTicketsAcrossSupervisors", func(t *testing.T) { etcdHotKey(t, cl) })
	t.Run("BankThreeSupervisors", func(t *testing.T) { etcdBank(t, cl) })
	t.Run("OutboxAcrossSupervisors", func(t *testing.T) { etcdOutbox(t, cl) })
	t.Run("SignalsAcrossSupervisors", func(t *testing.T) { etcdSignals(t, cl) })
	t.Run("RemoteTensor", func(t *testing.T) { etcdRemoteTensor(t, cl) })
	t.Run("TensorsFreed", func(t *testing.T) { etcdTensorsFreed(t, cl) })
	t.Run("ObservedOnEtcd", func(t *testing.T) { etcdObserved(t, cl) })
	t.Run("FluxAcrossSupervisors", func(t *testing.T) { etcdFluxAcross(t, cl) })
	t.Run("FluxTakeover", func(t *testing.T) { etcdFluxTakeover(t, cl) })
	t.Run("FluxMachineTakeover", func(t *testing.T) { etcdFluxMachine(t, cl) })
	t.Run("FluxLateCommitFenced", func(t *testing.T) { etcdFluxLateCommit(t, cl) })
	t.Run("FluxSendTakes", func(t *testing.T) { etcdFluxSendTakes(t, cl) })
	t.Run("FluxCancelStale", func(t *testing.T) { etcdFluxCancelStale(t, cl) })
	t.Run("LocalOnlyRefused", func(t *testing.T) { etcdRefused(t, cl) })
	t.Run("ClosedClientNeverAcks", func(t *testing.T) { etcdClosedClient(t, cl) })
	t.Run("NoQuorumNeverAcks", func(t *testing.T) { etcdNoQuorum(t, cl) })
}

// startEtcd starts a supervisor (one worker) on cl under the test's
// prefix; c, when not nil, is its etcd client (the test closes it).
func startEtcd(t *testing.T, cl *etcdtest.Cluster, c *clientv3.Client) *harness {
	t.Helper()
	return start(t, 1, func(cfg *supervisor.Config) {
		cfg.Etcd = &supervisor.EtcdConfig{Endpoints: cl.Endpoints(), Prefix: "t/" + t.Name() + "/", Client: c}
	})
}

func etcdClient(t *testing.T, cl *etcdtest.Cluster) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: cl.Endpoints(), DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func getInt(t *testing.T, ctx context.Context, c *client.Client, path string) int64 {
	t.Helper()
	v, err := c.Get(ctx, path)
	if err != nil {
		t.Fatalf("get %s: %v", path, err)
	}
	n, err := strconv.ParseInt(string(v.Entries[0].Value), 10, 64)
	if err != nil {
		t.Fatalf("%s holds %q: %v", path, v.Entries[0].Value, err)
	}
	return n
}

// Clients on two supervisors increment one counter: it ends at the
// number of acknowledged increments, and each acknowledged one returned
// a value no other did (each read the one before it).
func etcdCounter(t *testing.T, cl *etcdtest.Cluster) {
	sups := []*harness{startEtcd(t, cl, nil), startEtcd(t, cl, nil)}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const clients, each = 8, 12
	var mu sync.Mutex
	seen := map[int64]bool{}
	var wg sync.WaitGroup
	for i := range clients {
		c := sups[i%2].dial(t)
		wg.Go(func() {
			for range each {
				r, err := c.Exec(ctx, "counter.add", nil)
				if errors.Is(err, protocol.ErrRetryLimit) {
					continue // a hot key without tickets may lose 32 times: not acknowledged
				}
				if err != nil {
					t.Errorf("counter.add: %v", err)
					return
				}
				var n int64
				if err := json.Unmarshal(r.Result, &n); err != nil {
					t.Errorf("result %q: %v", r.Result, err)
					return
				}
				mu.Lock()
				if seen[n] {
					t.Errorf("two increments returned %d", n)
				}
				seen[n] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for i, h := range sups {
		if got := getInt(t, ctx, h.dial(t), demo.CounterPath); got != int64(len(seen)) {
			t.Fatalf("supervisor %d reads the counter at %d, want the %d acknowledged increments", i, got, len(seen))
		}
	}
	if len(seen) < clients*each/2 {
		t.Fatalf("only %d of %d increments committed", len(seen), clients*each)
	}
	st, err := sups[0].dial(t).Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Durability != "etcd" || st.Version == 0 || st.Durable != st.Version {
		t.Fatalf("status: durability %q, version %d, durable %d", st.Durability, st.Version, st.Durable)
	}
}

// Eight clients on one hot key through two supervisors: the VIP tickets
// in etcd bound every commit to VIPAfter+1 attempts, across both, and no
// request runs out of attempts.
func etcdHotKey(t *testing.T, cl *etcdtest.Cluster) {
	sups := []*harness{startEtcd(t, cl, nil), startEtcd(t, cl, nil)}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const clients, each = 8, 10
	var retries, vips atomic.Int64
	var wg sync.WaitGroup
	for i := range clients {
		c := sups[i%2].dial(t)
		wg.Go(func() {
			for range each {
				r, err := c.Exec(ctx, "counter.add", nil)
				if err != nil {
					t.Errorf("counter.add: %v", err)
					return
				}
				if r.Attempts > cas.DefaultVIPAfter+1 {
					t.Errorf("a commit took %d attempts, over VIPAfter+1", r.Attempts)
				}
				retries.Add(int64(r.Attempts - 1))
				if r.VIP {
					vips.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if got := getInt(t, ctx, sups[1].dial(t), demo.CounterPath); got != clients*each {
		t.Fatalf("counter %d, want %d", got, clients*each)
	}
	// Every commit under a ticket took one, which stats count; none is
	// held once the load is done.
	var granted uint64
	for i, h := range sups {
		tk := h.s.Stats().Tickets
		if tk.Held != 0 || tk.Released+tk.Expired != tk.Granted {
			t.Fatalf("supervisor %d's ticket stats: %+v, want every granted ticket ended", i, tk)
		}
		granted += tk.Granted
	}
	if granted < uint64(vips.Load()) {
		t.Fatalf("stats count %d tickets granted, under the %d commits made under one", granted, vips.Load())
	}
	t.Logf("%.2f retries per commit, %d commits under a ticket, %d tickets", float64(retries.Load())/(clients*each), vips.Load(), granted)
}

// One op id sent eight times at once, through two supervisors, applies
// once; every reply carries the first outcome.
func etcdOpID(t *testing.T, cl *etcdtest.Cluster) {
	sups := []*harness{startEtcd(t, cl, nil), startEtcd(t, cl, nil)}
	cs := []*client.Client{sups[0].dial(t), sups[1].dial(t)}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var dups atomic.Int32
	results := make([]string, 8)
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() {
			r, err := cs[i%2].Do(ctx, client.Request{Process: "counter.add", OpID: "op-1"})
			if err != nil {
				t.Errorf("counter.add op-1: %v", err)
				return
			}
			if r.Duplicate {
				dups.Add(1)
			}
			results[i] = string(r.Result)
		})
	}
	wg.Wait()
	if got := getInt(t, ctx, cs[1], demo.CounterPath); got != 1 {
		t.Fatalf("counter %d after one op id sent 8 times, want 1", got)
	}
	for i, r := range results {
		if r != "1" {
			t.Fatalf("reply %d: result %q, want the first outcome 1", i, r)
		}
	}
	if dups.Load() != 7 {
		t.Fatalf("%d duplicates, want 7", dups.Load())
	}
	_, err := cs[0].Do(ctx, client.Request{Process: "counter.add", Args: demo.AddArgs{By: new(int64(5))}, OpID: "op-1"})
	if !errors.Is(err, protocol.ErrOpIDConflict) {
		t.Fatalf("op-1 with other args: %v, want op_id_conflict", err)
	}
}

// Transfers through three supervisors keep the bank's total in every
// read, from every supervisor.
func etcdBank(t *testing.T, cl *etcdtest.Cluster) {
	sups := []*harness{startEtcd(t, cl, nil), startEtcd(t, cl, nil), startEtcd(t, cl, nil)}
	var cs []*client.Client
	for _, h := range sups {
		cs = append(cs, h.dial(t))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const accounts, balance = 4, 1000
	for a := range accounts {
		if _, err := cs[a%3].Exec(ctx, "bank.open", demo.OpenArgs{Account: "a" + strconv.Itoa(a), Balance: balance}); err != nil {
			t.Fatal(err)
		}
	}
	var done atomic.Int64
	var wg sync.WaitGroup
	for i := range 6 {
		c := cs[i%3]
		wg.Go(func() {
			for j := range 10 {
				from, to := (i+j)%accounts, (i+2*j+1)%accounts
				if from == to {
					to = (to + 1) % accounts
				}
				_, err := c.Exec(ctx, "bank.transfer", demo.TransferArgs{From: "a" + strconv.Itoa(from), To: "a" + strconv.Itoa(to), Amount: int64(1 + j)})
				switch {
				case err == nil:
					done.Add(1)
				case errors.Is(err, &protocol.Error{Code: demo.CodeInsufficientFunds}), errors.Is(err, protocol.ErrRetryLimit):
				default:
					t.Errorf("transfer: %v", err)
					return
				}
			}
		})
	}
	// Reads while the transfers run, from every supervisor: each is one
	// version, so each holds the whole total.
	wg.Go(func() {
		for i := 0; done.Load() < 40 && ctx.Err() == nil && i < 200; i++ {
			checkTotal(t, ctx, cs[i%3], accounts*balance)
		}
	})
	wg.Wait()
	for _, c := range cs {
		checkTotal(t, ctx, c, accounts*balance)
	}
	if done.Load() == 0 {
		t.Fatal("no transfer committed")
	}
}

func checkTotal(t *testing.T, ctx context.Context, c *client.Client, want int64) {
	t.Helper()
	v, err := c.Get(ctx, demo.AccountsPath)
	if err != nil {
		t.Errorf("get accounts: %v", err)
		return
	}
	var total int64
	for _, e := range v.Entries {
		n, err := strconv.ParseInt(string(e.Value), 10, 64)
		if err != nil {
			t.Errorf("%s holds %q", e.Path, e.Value)
			return
		}
		total += n
	}
	if total != want {
		t.Errorf("total %d at version %d, want %d", total, v.Version, want)
	}
}

// A message emitted through one supervisor is pulled and acknowledged
// through another: the emit is a private system write of the same
// commit, in etcd.
func etcdOutbox(t *testing.T, cl *etcdtest.Cluster) {
	a, b := startEtcd(t, cl, nil).dial(t), startEtcd(t, cl, nil).dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := a.Exec(ctx, "order.place", demo.Order{ID: "o1", Item: "pen", Qty: 2}); err != nil {
		t.Fatal(err)
	}
	ms, err := b.Pull(ctx, demo.OrdersTopic, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 {
		t.Fatalf("pulled %d messages through the other supervisor, want 1", len(ms))
	}
	var o demo.Order
	if err := json.Unmarshal(ms[0].Payload, &o); err != nil || o.ID != "o1" {
		t.Fatalf("message %s: %v", ms[0].Payload, err)
	}
	id := ms[0].ID
	r, err := b.Ack(ctx, id)
	if err != nil || r.Acked != 1 {
		t.Fatalf("ack: %+v, %v", r, err)
	}
	if ms, err = a.Pull(ctx, demo.OrdersTopic, 10); err != nil || len(ms) != 0 {
		t.Fatalf("after the ack, the first supervisor pulls %d messages (%v), want none", len(ms), err)
	}
	if r, err = a.Ack(ctx, id); err != nil || r.Acked != 0 || len(r.Unknown) != 1 {
		t.Fatalf("a second ack through the first supervisor: %+v, %v, want the id unknown", r, err)
	}
}

// What stays local to one process is refused with a clear error, and
// commits nothing: backups, workflow runs; and a start with a
// state directory, an arena or no endpoint.
func etcdRefused(t *testing.T, cl *etcdtest.Cluster) {
	h := startEtcd(t, cl, nil)
	c := h.dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := c.Backup(ctx, t.TempDir()+"/b"); !errors.Is(err, protocol.ErrBadRequest) {
		t.Fatalf("backup: %v, want bad_request", err)
	}
	for name, tune := range map[string]func(*supervisor.Config){
		"state dir":    func(c *supervisor.Config) { c.StateDir = t.TempDir() },
		"no endpoints": func(c *supervisor.Config) { c.Etcd.Endpoints = nil },
		"cert no key":  func(c *supervisor.Config) { c.Etcd.Cert = "x.pem" },
		"unreachable": func(c *supervisor.Config) {
			c.Etcd.Endpoints = []string{"http://127.0.0.1:1"}
			c.Etcd.DialTimeout = time.Second
		},
	} {
		cfg := supervisor.Config{Plugins: h.cfg.Plugins, Workers: 1, Etcd: &supervisor.EtcdConfig{Endpoints: cl.Endpoints()}}
		tune(&cfg)
		if s, err := supervisor.Start(cfg); err == nil {
			s.Shutdown(ctx)
			t.Errorf("%s: the supervisor started", name)
		}
	}
}

// load runs counters.add with fresh op ids, sending each once, until
// stop is closed; it returns how many were acknowledged and how many
// failed with not_durable (their outcome unknown). Any other failure but
// a timeout or retry_limit (nothing applied) fails t.
func load(t *testing.T, c *client.Client, stop <-chan struct{}) (acked, uncertain int64) {
	var wg sync.WaitGroup
	var a, u atomic.Int64
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				_, err := c.Do(ctx, client.Request{Process: "counters.add", Args: demo.KeyAddArgs{Key: "k"}, OpID: client.NewOpID(), Timeout: 3 * time.Second, RetryFor: -1})
				cancel()
				switch {
				case err == nil:
					a.Add(1)
				case errors.Is(err, protocol.ErrNotDurable):
					u.Add(1)
				case errors.Is(err, protocol.ErrRetryLimit), errors.Is(err, protocol.ErrTimeout):
					// Nothing applied: a commit sent and not answered is
					// not_durable, never timeout (waiting for a VIP
					// ticket that a cut-off holder keeps is).
				default:
					t.Errorf("counters.add: %v, want success, not_durable or timeout", err)
					return
				}
			}
		})
	}
	wg.Wait()
	return a.Load(), u.Load()
}

// checkCount reads the counter through c and checks that it holds every
// acknowledged increment and no more than those whose outcome is unknown.
func checkCount(t *testing.T, c *client.Client, acked, uncertain int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	got := getInt(t, ctx, c, demo.CountersPath+".k")
	if got < acked || got > acked+uncertain {
		t.Fatalf("counter %d: %d increments acknowledged, %d uncertain", got, acked, uncertain)
	}
	if uncertain == 0 {
		t.Fatal("no request failed: the fault was not seen")
	}
	t.Logf("counter %d: %d acknowledged, %d not_durable", got, acked, uncertain)
}

// A supervisor whose etcd client is closed under load answers
// not_durable, never a wrong acknowledgement.
func etcdClosedClient(t *testing.T, cl *etcdtest.Cluster) {
	ec := etcdClient(t, cl)
	defer ec.Close()
	h, other := startEtcd(t, cl, ec), startEtcd(t, cl, nil)
	c := h.dial(t)
	stop := make(chan struct{})
	var acked, uncertain int64
	done := make(chan struct{})
	go func() { acked, uncertain = load(t, c, stop); close(done) }()
	waitCount(t, other.dial(t), 20)
	ec.Close()
	// Every request from now on fails: let a few of them.
	time.Sleep(200 * time.Millisecond)
	close(stop)
	<-done
	checkCount(t, other.dial(t), acked, uncertain)
}

// A supervisor cut off from the quorum (two of three members stopped)
// answers not_durable; once they are back, the counter holds every
// acknowledged increment.
func etcdNoQuorum(t *testing.T, cl *etcdtest.Cluster) {
	h := startEtcd(t, cl, nil)
	c := h.dial(t)
	stop := make(chan struct{})
	var acked, uncertain int64
	done := make(chan struct{})
	go func() { acked, uncertain = load(t, c, stop); close(done) }()
	waitCount(t, c, 20)
	cl.Stop(1)
	cl.Stop(2)
	time.Sleep(8 * time.Second) // past the 3 s request timeout, twice
	close(stop)
	for _, i := range []int{1, 2} {
		if err := cl.Restart(i); err != nil {
			t.Fatal(err)
		}
	}
	<-done
	checkCount(t, c, acked, uncertain)
}

// waitCount polls until the counter k holds at least n.
func waitCount(t *testing.T, c *client.Client, n int64) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		v, err := c.Get(ctx, demo.CountersPath+".k")
		cancel()
		if err == nil {
			if got, _ := strconv.ParseInt(string(v.Entries[0].Value), 10, 64); got >= n {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the counter did not reach %d", n)
}
