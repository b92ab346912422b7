package demo

import (
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/theus-run/theus/shm"
	"github.com/theus-run/theus/worker"
)

// Paths the demo processes use.
const (
	CounterPath  = "domain.counter"
	CountersPath = "domain.counters" // counters.add's keyed counters
	AccountsPath = "domain.accounts"
	OrdersPath   = "domain.orders" // order.place's orders, by id
)

// OrdersTopic is the outbox topic order.place emits each order on.
const OrdersTopic = "orders"

// CodeOrderExists is order.place's error when the order id is taken.
const CodeOrderExists = "order_exists"

// CodeInsufficientFunds is bank.transfer's error when the source account
// holds less than the amount.
const CodeInsufficientFunds = "insufficient_funds"

// CodeAccountExists is bank.open's error when the account is open already.
const CodeAccountExists = "account_exists"

// Processes returns the demo processes a demo worker always serves; the
// fault.* processes are apart (Faults), served only on request (Served).
func Processes() []worker.Def {
	return []worker.Def{
		worker.Process("noop", worker.Contract{}, noop),
		worker.Process("counter.add", worker.Contract{Inputs: []string{CounterPath}, Outputs: []string{CounterPath}}, counterAdd),
		worker.Process("counters.add", worker.Contract{Inputs: []string{CountersPath + ".{key}"}, Outputs: []string{CountersPath + ".{key}"}}, countersAdd),
		worker.Process("bank.open", worker.Contract{Inputs: []string{AccountsPath + ".{account}"}, Outputs: []string{AccountsPath + ".{account}"}}, bankOpen),
		worker.Process("bank.transfer", worker.Contract{Inputs: []string{AccountsPath + ".{from}", AccountsPath + ".{to}"}, Outputs: []string{AccountsPath + ".{from}", AccountsPath + ".{to}"}}, bankTransfer),
		worker.Process("order.place", worker.Contract{Inputs: []string{OrdersPath + ".{id}"}, Outputs: []string{OrdersPath + ".{id}"}, Effect: true}, orderPlace),
		worker.Process("bench.spin", worker.Contract{}, benchSpin),
		worker.Process("tensor.fill", worker.Contract{Outputs: []string{TensorPrefix + ".{key}"}}, tensorFill),
		worker.Process("tensor.sum", worker.Contract{Inputs: []string{TensorPrefix + ".{key}"}, Outputs: []string{SumsPath + ".{key}"}}, tensorSum),
		worker.Process("tensor.peek", worker.Contract{Inputs: []string{TensorPrefix + ".{key}"}}, tensorPeek),
		worker.Process("ping.send", worker.Contract{Outputs: []string{PingSignal}, Effect: true}, pingSend),
		worker.Process("ping.mark", worker.Contract{Outputs: []string{PingsPath + ".{key}", PingSignal}}, pingMark),
		worker.Process("tensor.scale", worker.Contract{Inputs: []string{TensorPrefix + ".{src}"}, Outputs: []string{TensorPrefix + ".{dst}"}}, tensorScale),
	}
}

func noop(*worker.Ctx, worker.None) (worker.None, error) { return worker.None{}, nil }

// AddArgs are counter.add's args.
type AddArgs struct {
	By *int64 `json:"by"` // default 1
}

func counterAdd(ctx *worker.Ctx, in AddArgs) (int64, error) {
	return add(ctx, CounterPath, in.By)
}

// KeyAddArgs are counters.add's args: the counter
// domain.counters.<key>. Its contract names that counter only, so adds
// to different keys never conflict or wait for each other's tickets.
type KeyAddArgs struct {
	Key string `json:"key"`
	By  *int64 `json:"by"` // default 1
}

func countersAdd(ctx *worker.Ctx, in KeyAddArgs) (int64, error) {
	return add(ctx, CountersPath+"."+in.Key, in.By) // the contract checked the key
}

func add(ctx *worker.Ctx, path string, by *int64) (int64, error) {
	d := int64(1)
	if by != nil {
		d = *by
	}
	var n int64
	if _, err := ctx.Get(path, &n); err != nil {
		return 0, err
	}
	sum, ok := addInt64(n, d)
	if !ok {
		return 0, worker.Fail("bad_args", "%s is %d: adding %d overflows int64", path, n, d)
	}
	return sum, ctx.Set(path, sum)
}

// addInt64 returns a+b, and false when the sum does not fit an int64.
func addInt64(a, b int64) (int64, bool) {
	s := a + b // wraps on overflow: then its sign differs from both a's and b's
	return s, (s > a) == (b > 0)
}

// OpenArgs are bank.open's args: a new account and its opening balance.
type OpenArgs struct {
	Account string `json:"account"`
	Balance int64  `json:"balance"`
}

func bankOpen(ctx *worker.Ctx, in OpenArgs) (worker.None, error) {
	if in.Account == "" || strings.Contains(in.Account, ".") {
		return worker.None{}, worker.Fail("bad_args", "bank.open: need an account name without a dot, not %q", in.Account)
	}
	if in.Balance < 0 {
		return worker.None{}, worker.Fail("bad_args", "bank.open: negative balance %d", in.Balance)
	}
	// It reads the account it creates: a concurrent open of the same
	// account that commits first makes this commit conflict, and the
	// retry sees the account.
	path := AccountsPath + "." + in.Account
	var held int64
	ok, err := ctx.Get(path, &held)
	if err != nil {
		return worker.None{}, fmt.Errorf("bank.open: account %q: %w", in.Account, err)
	}
	if ok {
		return worker.None{}, worker.Fail(CodeAccountExists, "bank.open: account %q exists, holding %d", in.Account, held)
	}
	return worker.None{}, ctx.Set(path, in.Balance)
}

// Order is order.place's args, what it stores at domain.orders.<id> and
// the payload of the message it emits on OrdersTopic.
type Order struct {
	ID   string `json:"id"`
	Item string `json:"item"`
	Qty  int64  `json:"qty"`
}

// orderPlace stores a new order and emits it on the outbox, in one
// commit: the message leaves only if the order is stored.
func orderPlace(ctx *worker.Ctx, in Order) (Order, error) {
	if in.Qty <= 0 {
		return Order{}, worker.Fail("bad_args", "order.place: need a positive qty, not %d", in.Qty)
	}
	path := OrdersPath + "." + in.ID // the contract checked the id
	var held Order
	ok, err := ctx.Get(path, &held)
	if err != nil {
		return Order{}, fmt.Errorf("order.place: order %q: %w", in.ID, err)
	}
	if ok {
		return Order{}, worker.Fail(CodeOrderExists, "order.place: order %q exists", in.ID)
	}
	if err := ctx.Set(path, in); err != nil {
		return Order{}, err
	}
	return in, ctx.Emit(OrdersTopic, in)
}

// TransferArgs are bank.transfer's args.
type TransferArgs struct {
	From   string `json:"from"`
	To     string `json:"to"`
	Amount int64  `json:"amount"`
}

// TransferResult is what bank.transfer returns: both balances after it.
type TransferResult struct {
	From int64 `json:"from"`
	To   int64 `json:"to"`
}

func bankTransfer(ctx *worker.Ctx, in TransferArgs) (TransferResult, error) {
	if in.Amount <= 0 || in.From == in.To {
		return TransferResult{}, worker.Fail("bad_args", "bank.transfer: need a positive amount between two accounts")
	}
	// It reads the two accounts only, so transfers between other
	// accounts do not conflict with it.
	var from, to int64
	for name, dst := range map[string]*int64{in.From: &from, in.To: &to} {
		if strings.Contains(name, ".") {
			return TransferResult{}, worker.Fail("bad_args", "bank.transfer: account %q has a dot", name)
		}
		ok, err := ctx.Get(AccountsPath+"."+name, dst)
		if err != nil {
			return TransferResult{}, fmt.Errorf("bank.transfer: account %q: %w", name, err)
		}
		if !ok {
			return TransferResult{}, worker.Fail("no_account", "bank.transfer: no account %q", name)
		}
	}
	if from < in.Amount {
		return TransferResult{}, worker.Fail(CodeInsufficientFunds, "%s holds %d, cannot move %d", in.From, from, in.Amount)
	}
	// from >= Amount > 0, so from-Amount cannot wrap; to+Amount can.
	newTo, ok := addInt64(to, in.Amount)
	if !ok {
		return TransferResult{}, worker.Fail("bad_args", "bank.transfer: account %q holds %d: adding %d overflows int64", in.To, to, in.Amount)
	}
	from, to = from-in.Amount, newTo
	if err := ctx.Set(AccountsPath+"."+in.From, from); err != nil {
		return TransferResult{}, err
	}
	return TransferResult{From: from, To: to}, ctx.Set(AccountsPath+"."+in.To, to)
}

// SpinArgs are bench.spin's args.
type SpinArgs struct {
	US int64 `json:"us"`
}

// benchSpin keeps a CPU busy for the given microseconds (at most one
// second): a stand-in for CPU-bound work in scaling benchmarks.
func benchSpin(ctx *worker.Ctx, in SpinArgs) (worker.None, error) {
	// CPU time, not wall time: a spin that shares its CPU with others
	// takes longer, so throughput measures CPUs, not sleeps. The thread
	// is locked so its CPU clock is this goroutine's.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	want := time.Duration(min(max(in.US, 0), 1e6)) * time.Microsecond
	clock := threadCPU
	start, err := clock()
	if err != nil { // no thread CPU clock: wall time, as a last resort
		clock = func() (time.Duration, error) { return time.Duration(time.Now().UnixNano()), nil }
		start, _ = clock()
	}
	x := uint64(1)
	for now, _ := clock(); now-start < want && ctx.Err() == nil; now, _ = clock() {
		for i := range uint64(4096) {
			x = x*6364136223846793005 + i
		}
	}
	spinSink.Store(x)
	return worker.None{}, nil
}

var spinSink atomic.Uint64 // keeps the spin's arithmetic from being optimized away

// threadCPU is the calling thread's CPU time.
func threadCPU() (time.Duration, error) {
	var ts unix.Timespec
	err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts)
	return time.Duration(ts.Nano()), err
}

// TensorPrefix is where the tensor processes (tensor.fill, tensor.sum,
// tensor.peek, tensor.scale; F32 tensors) keep their tensors
// (heavy.<key>); SumsPath is where tensor.sum writes (domain.sums.<key>).
const (
	TensorPrefix = "heavy"
	SumsPath     = "domain.sums"
)

// FillArgs are tensor.fill's args.
type FillArgs struct {
	Key   string  `json:"key"`
	N     int64   `json:"n"`
	Value float32 `json:"value"`
}

// MaxElems bounds the tensors the demo processes make (16 GiB of F32).
const MaxElems = 1 << 32

func tensorPath(key string) (string, error) {
	if key == "" || strings.ContainsAny(key, ". ") {
		return "", worker.Fail("bad_args", "key %q: want one path segment", key)
	}
	return TensorPrefix + "." + key, nil
}

func tensorFill(ctx *worker.Ctx, in FillArgs) (worker.None, error) {
	path, err := tensorPath(in.Key)
	if err != nil {
		return worker.None{}, err
	}
	if in.N <= 0 || in.N > MaxElems {
		return worker.None{}, worker.Fail("bad_args", "n = %d: want 1 to %d", in.N, int64(MaxElems))
	}
	t, err := ctx.NewTensor(path, shm.F32, in.N)
	if err != nil {
		return worker.None{}, err
	}
	xs, err := worker.Elems[float32](t)
	if err != nil {
		return worker.None{}, err
	}
	FillF32(xs, in.Value)
	return worker.None{}, nil
}

// FillF32 sets every element of xs to v (what tensor.fill runs, and the
// in-process baseline of its benchmark).
func FillF32(xs []float32, v float32) {
	for i := range xs {
		xs[i] = v
	}
}

// KeyArgs name one tensor.
type KeyArgs struct {
	Key string `json:"key"`
}

func input(ctx *worker.Ctx, key string) ([]float32, error) {
	path, err := tensorPath(key)
	if err != nil {
		return nil, err
	}
	t, ok, err := ctx.Tensor(path)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, worker.Fail("not_found", "no tensor at %s", path)
	}
	return worker.Elems[float32](t)
}

func tensorSum(ctx *worker.Ctx, in KeyArgs) (float64, error) {
	xs, err := input(ctx, in.Key)
	if err != nil {
		return 0, err
	}
	s := SumF32(xs)
	return s, ctx.Set(SumsPath+"."+in.Key, s)
}

// SumF32 sums xs in float64, four lanes at a time (what tensor.sum runs,
// and the in-process baseline of its benchmark).
func SumF32(xs []float32) float64 {
	var a, b, c, d float64
	i := 0
	for ; i+4 <= len(xs); i += 4 {
		a += float64(xs[i])
		b += float64(xs[i+1])
		c += float64(xs[i+2])
		d += float64(xs[i+3])
	}
	for ; i < len(xs); i++ {
		a += float64(xs[i])
	}
	return a + b + c + d
}

// PeekArgs are tensor.peek's args.
type PeekArgs struct {
	Key   string `json:"key"`
	Index int64  `json:"index"`
}

func tensorPeek(ctx *worker.Ctx, in PeekArgs) (float32, error) {
	xs, err := input(ctx, in.Key)
	if err != nil {
		return 0, err
	}
	if in.Index < 0 || in.Index >= int64(len(xs)) {
		return 0, worker.Fail("bad_args", "index %d outside [0, %d)", in.Index, len(xs))
	}
	return xs[in.Index], nil
}

// ScaleArgs are tensor.scale's args.
type ScaleArgs struct {
	Src    string  `json:"src"`
	Dst    string  `json:"dst"`
	Factor float32 `json:"factor"`
}

func tensorScale(ctx *worker.Ctx, in ScaleArgs) (worker.None, error) {
	xs, err := input(ctx, in.Src)
	if err != nil {
		return worker.None{}, err
	}
	dst, err := tensorPath(in.Dst)
	if err != nil {
		return worker.None{}, err
	}
	t, err := ctx.NewTensor(dst, shm.F32, int64(len(xs)))
	if err != nil {
		return worker.None{}, err
	}
	ys, err := worker.Elems[float32](t)
	if err != nil {
		return worker.None{}, err
	}
	for i, x := range xs {
		ys[i] = x * in.Factor
	}
	return worker.None{}, nil
}
