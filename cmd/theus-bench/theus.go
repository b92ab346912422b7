package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/theus-run/theus/client"
	"github.com/theus-run/theus/demo"
	"github.com/theus-run/theus/durable"
	"github.com/theus-run/theus/internal/golabel"
	"github.com/theus-run/theus/pool"
	"github.com/theus-run/theus/protocol"
	"github.com/theus-run/theus/supervisor"
)

// theusTarget drives a supervisor through clients connections: its own
// (started in this process, workers re-executing this binary) or one at
// a socket.
type theusTarget struct {
	conns  []*client.Client
	own    *supervisor.Supervisor
	served chan error
	stop   context.CancelFunc
	dir    string // the own supervisor's socket and state, removed at close
	spinUS int
}

// ownConfig sizes the supervisor theus-bench starts for itself.
type ownConfig struct {
	workers    int
	durability durable.Mode
	heavySize  int64
	procs      int           // GOMAXPROCS of each worker; 0: Go's default
	poll       time.Duration // pool.Config.WorkerPoll: 0 the default, negative never
	log        zerolog.Logger
}

func startTheus(socket string, clients int, own ownConfig, spinUS int) (*theusTarget, error) {
	t := &theusTarget{spinUS: spinUS}
	if socket == "" {
		dir, err := os.MkdirTemp("", "theus-bench-")
		if err != nil {
			return nil, err
		}
		t.dir = dir
		self, err := os.Executable()
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("find the built-in worker: %w", err)
		}
		socket = dir + "/theus.sock"
		var env []string
		if own.procs > 0 {
			env = append(env, "GOMAXPROCS="+strconv.Itoa(own.procs))
		}
		s, err := supervisor.Start(supervisor.Config{
			Plugins: []pool.Plugin{{Command: []string{self}}}, Workers: own.workers, Socket: socket, Pool: pool.Config{Env: env, WorkerPoll: own.poll},
			StateDir: dir + "/state", Durability: own.durability, HeavySize: own.heavySize, Log: own.log,
		})
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		ctx, stop := context.WithCancel(context.Background())
		t.own, t.stop, t.served = s, stop, make(chan error, 1)
		go func() { t.served <- s.Serve(ctx) }()
	}
	for i := range clients {
		c, err := dialLabeled(socket, i)
		if err != nil {
			t.close()
			return nil, err
		}
		t.conns = append(t.conns, c)
	}
	return t, nil
}

// dialLabeled dials client i from a goroutine of its own, labeled as
// that client's (golabel), which the client's reader inherits: the
// caller's goroutine keeps its labels.
func dialLabeled(socket string, i int) (*client.Client, error) {
	type dialed struct {
		c   *client.Client
		err error
	}
	done := make(chan dialed, 1)
	go func() {
		golabel.Set(roleClient, i)
		c, err := client.Dial(socket)
		done <- dialed{c, err}
	}()
	d := <-done
	return d.c, d.err
}

func (t *theusTarget) supports(string) bool { return true }

func (t *theusTarget) version(context.Context) string {
	if t.own != nil {
		return "theus " + version() + " (started by theus-bench)"
	}
	return "theus (attached)"
}

func (t *theusTarget) conn(caller int) *client.Client { return t.conns[caller%len(t.conns)] }

func (t *theusTarget) setup(ctx context.Context, w *workload) error {
	c := t.conns[0]
	if w.usesAccounts() {
		for i := range w.accounts {
			args := fmt.Sprintf(`{"account":%q,"balance":%d}`, w.account(i), w.balance)
			if _, err := c.Exec(ctx, "bank.open", rawJSON(args)); err != nil {
				return fmt.Errorf("open %s: %w", w.account(i), err)
			}
		}
	}
	if w.usesTensors() {
		size := w.tensorSize
		if w.name == "mix" {
			size = w.mixTensor
		}
		for caller := range w.callers {
			args := fmt.Sprintf(`{"key":%q,"n":%d,"value":1}`, w.tensor(caller), size/4)
			if _, err := t.conn(caller).Exec(ctx, "tensor.fill", rawJSON(args)); err != nil {
				return fmt.Errorf("fill %s: %w", w.tensor(caller), err)
			}
		}
	}
	return nil
}

func rawJSON(s string) []byte { return []byte(s) }

func (t *theusTarget) do(ctx context.Context, caller int, r request) (outcome, error) {
	var process, args string
	switch r.op {
	case "noop":
		process = "noop"
	case "add":
		process = "counter.add"
		if r.key != "" {
			process, args = "counters.add", `{"key":"`+r.key+`"}`
		}
	case "transfer":
		process = "bank.transfer"
		args = `{"from":"` + r.from + `","to":"` + r.to + `","amount":` + strconv.FormatInt(r.amount, 10) + `}`
	case "tensor.fill":
		process, args = r.op, `{"key":"`+r.key+`","n":`+strconv.FormatInt(r.n, 10)+`,"value":2}`
	case "tensor.peek":
		process, args = r.op, `{"key":"`+r.key+`","index":0}`
	case "tensor.sum":
		process, args = r.op, `{"key":"`+r.key+`"}`
	case "tensor.scale":
		process, args = r.op, `{"src":"`+r.key+`","dst":"`+r.dst+`","factor":0.5}`
	case "spin":
		process, args = "bench.spin", `{"us":`+strconv.Itoa(t.spinUS)+`}`
	default:
		return outcome{}, fmt.Errorf("theus: no request %q", r.op)
	}
	var a any
	if args != "" {
		a = []byte(args)
	}
	res, err := t.conn(caller).Exec(ctx, process, a)
	if err != nil {
		if errors.Is(err, &protocol.Error{Code: demo.CodeInsufficientFunds}) {
			return outcome{}, errInsufficient
		}
		return outcome{}, err
	}
	return outcome{retries: res.Attempts - 1, vip: res.VIP}, nil
}

func (t *theusTarget) read(ctx context.Context, w *workload) (state, error) {
	st := state{counters: map[string]int64{}, balances: map[string]int64{}}
	c := t.conns[0]
	for _, q := range []struct {
		path string
		into map[string]int64
	}{{demo.CounterPath, st.counters}, {demo.CountersPath, st.counters}, {demo.AccountsPath, st.balances}} {
		v, err := c.Get(ctx, q.path)
		if errors.Is(err, protocol.ErrNotFound) {
			continue // the workload never wrote there
		}
		if err != nil {
			return st, err
		}
		for _, e := range v.Entries {
			n, err := strconv.ParseInt(string(e.Value), 10, 64)
			if err != nil {
				continue // not a number: not ours
			}
			name := strings.TrimPrefix(strings.TrimPrefix(e.Path, q.path), ".")
			q.into[name] = n
		}
	}
	return st, nil
}

func (t *theusTarget) close() error {
	for _, c := range t.conns {
		c.Close()
	}
	var err error
	if t.own != nil {
		err = t.own.Shutdown(context.Background())
		t.stop()
		select {
		case serr := <-t.served:
			if err == nil && serr != nil && !errors.Is(serr, context.Canceled) {
				err = serr
			}
		case <-time.After(30 * time.Second):
			err = errors.Join(err, errors.New("theus: the supervisor did not stop"))
		}
	}
	if t.dir != "" {
		os.RemoveAll(t.dir)
	}
	return err
}
