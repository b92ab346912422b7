package demo

import (
	"context"
	"errors"
	"math"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/theus-run/theus/protocol"
	"github.com/theus-run/theus/worker"
	"github.com/theus-run/theus/worker/workertest"
)

func def(t *testing.T, name string) worker.Def {
	t.Helper()
	for _, d := range slices.Concat(Processes(), Faults()) {
		if d.Name == name {
			return d
		}
	}
	t.Fatalf("no process %q", name)
	return worker.Def{}
}

func TestCounterAdd(t *testing.T) {
	ctx := context.Background()
	out, err := workertest.Run(ctx, def(t, "counter.add"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(out.Delta()[CounterPath]); got != "1" {
		t.Fatalf("absent counter + default 1 = %s", got)
	}
	out, err = workertest.Run(ctx, def(t, "counter.add"), map[string]any{CounterPath: 41, "domain.other": 1}, map[string]any{"by": 1})
	if err != nil {
		t.Fatal(err)
	}
	if string(out.Result) != "42" || len(out.Writes) != 1 {
		t.Fatalf("result %s, writes %v", out.Result, out.Writes)
	}
	out, err = workertest.Run(ctx, def(t, "counters.add"), map[string]any{CounterPath: 41, CountersPath + ".k": 9, CountersPath + ".j": 1}, map[string]any{"key": "k", "by": 2})
	if err != nil {
		t.Fatal(err)
	}
	if string(out.Result) != "11" || len(out.Writes) != 1 || out.Writes[0].Path != CountersPath+".k" || !slices.Equal(out.Reads, []string{CountersPath + ".k"}) {
		t.Fatalf("keyed add: result %s, writes %v, reads %v", out.Result, out.Writes, out.Reads)
	}
	for _, bad := range []any{map[string]any{"by": "x"}, map[string]any{"bye": 1}, "[1]", map[string]any{"key": "a.b"}} {
		_, err = workertest.Run(ctx, def(t, "counter.add"), nil, bad)
		if !errors.Is(err, protocol.ErrBadArgs) {
			t.Errorf("args %v: err = %v, want bad_args", bad, err)
		}
	}
	for _, bad := range []any{nil, map[string]any{"key": "a.b"}, map[string]any{"key": ""}, map[string]any{"key": "k", "by": "x"}} {
		_, err = workertest.Run(ctx, def(t, "counters.add"), nil, bad)
		if !errors.Is(err, protocol.ErrBadArgs) {
			t.Errorf("args %v: err = %v, want bad_args", bad, err)
		}
	}
}

func TestBankTransfer(t *testing.T) {
	ctx := context.Background()
	state := map[string]any{"domain.accounts.a": 10, "domain.accounts.b": 5, "domain.accounts.c": 1}
	out, err := workertest.Run(ctx, def(t, "bank.transfer"), state, TransferArgs{From: "a", To: "b", Amount: 7})
	if err != nil {
		t.Fatal(err)
	}
	d := out.Delta()
	if string(d["domain.accounts.a"]) != "3" || string(d["domain.accounts.b"]) != "12" {
		t.Fatalf("delta %v", d)
	}
	if !slices.Equal(out.Reads, []string{"domain.accounts.a", "domain.accounts.b"}) {
		t.Fatalf("a transfer read %v, want the two accounts only", out.Reads)
	}
	if _, err := workertest.Run(ctx, def(t, "bank.transfer"), state, TransferArgs{From: "a.x", To: "b", Amount: 1}); !errors.Is(err, protocol.ErrBadArgs) {
		t.Fatalf("an account with a dot: err = %v, want bad_args", err)
	}
	_, err = workertest.Run(ctx, def(t, "bank.transfer"), state, TransferArgs{From: "a", To: "b", Amount: 11})
	if !errors.Is(err, &protocol.Error{Code: CodeInsufficientFunds}) {
		t.Fatalf("err = %v, want insufficient_funds", err)
	}
	_, err = workertest.Run(ctx, def(t, "bank.transfer"), state, TransferArgs{From: "a", To: "zed", Amount: 1})
	if !errors.Is(err, &protocol.Error{Code: "no_account"}) {
		t.Fatalf("err = %v, want no_account", err)
	}
}

func TestProcessesAreValid(t *testing.T) {
	seen := map[string]bool{}
	for _, d := range slices.Concat(Processes(), Faults()) {
		if d.Spec.Name != d.Name || seen[d.Name] {
			t.Fatalf("bad or duplicate process %q", d.Name)
		}
		seen[d.Name] = true
	}
}

// TestAddOverflow: an add that would wrap int64 is refused with bad_args
// naming the counter, and writes nothing; the sums at the boundary pass.
func TestAddOverflow(t *testing.T) {
	const maxI, minI = math.MaxInt64, math.MinInt64
	tests := []struct {
		name, process string
		path          string // the counter it adds to
		key           string // counters.add's key
		start, by     int64
		ok            bool
	}{
		{name: "up to the max", process: "counter.add", path: CounterPath, start: maxI - 5, by: 5, ok: true},
		{name: "past the max", process: "counter.add", path: CounterPath, start: maxI - 5, by: 6},
		{name: "max plus one", process: "counter.add", path: CounterPath, start: maxI, by: 1},
		{name: "down to the min", process: "counter.add", path: CounterPath, start: minI + 5, by: -5, ok: true},
		{name: "past the min", process: "counter.add", path: CounterPath, start: minI + 5, by: -6},
		{name: "far past the min", process: "counter.add", path: CounterPath, start: -2, by: minI},
		{name: "keyed up to the max", process: "counters.add", path: CountersPath + ".k", key: "k", start: maxI - 5, by: 5, ok: true},
		{name: "keyed past the max", process: "counters.add", path: CountersPath + ".k", key: "k", start: maxI - 5, by: 6},
		{name: "keyed past the min", process: "counters.add", path: CountersPath + ".k", key: "k", start: minI, by: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := map[string]any{"by": tt.by}
			if tt.key != "" {
				args["key"] = tt.key
			}
			out, err := workertest.Run(context.Background(), def(t, tt.process), map[string]any{tt.path: tt.start}, args)
			if tt.ok {
				if err != nil {
					t.Fatal(err)
				}
				if got, want := string(out.Delta()[tt.path]), strconv.FormatInt(tt.start+tt.by, 10); got != want {
					t.Fatalf("%d + %d = %s, want %s", tt.start, tt.by, got, want)
				}
				return
			}
			var pe *protocol.Error
			if !errors.As(err, &pe) || pe.Code != protocol.CodeBadArgs || !strings.Contains(pe.Message, tt.path) {
				t.Fatalf("%d + %d: err = %v, want bad_args naming %s", tt.start, tt.by, err, tt.path)
			}
		})
	}
}

// TestBankOpen: bank.open creates an account; on one that exists it
// fails with account_exists and writes nothing, so no money is made or
// lost by opening twice.
func TestBankOpen(t *testing.T) {
	ctx := context.Background()
	out, err := workertest.Run(ctx, def(t, "bank.open"), map[string]any{"domain.accounts.b": 5}, OpenArgs{Account: "a", Balance: 10})
	if err != nil {
		t.Fatal(err)
	}
	if d := out.Delta(); len(d) != 1 || string(d["domain.accounts.a"]) != "10" {
		t.Fatalf("delta %v, want domain.accounts.a = 10 only", d)
	}
	if !slices.Equal(out.Reads, []string{"domain.accounts.a"}) {
		t.Fatalf("an open read %v, want its account only (the commit validates it)", out.Reads)
	}
	for _, existing := range []any{0, 10, 99} {
		_, err = workertest.Run(ctx, def(t, "bank.open"), map[string]any{"domain.accounts.a": existing}, OpenArgs{Account: "a", Balance: 10})
		var pe *protocol.Error
		if !errors.As(err, &pe) || pe.Code != CodeAccountExists || !strings.Contains(pe.Message, `"a"`) {
			t.Fatalf("open over a balance of %v: err = %v, want account_exists naming the account", existing, err)
		}
	}
	for _, bad := range []OpenArgs{{Account: "", Balance: 1}, {Account: "a.b", Balance: 1}, {Account: "c", Balance: -1}} {
		if _, err := workertest.Run(ctx, def(t, "bank.open"), nil, bad); !errors.Is(err, protocol.ErrBadArgs) {
			t.Errorf("open %+v: err = %v, want bad_args", bad, err)
		}
	}
}

// TestTransferOverflow: a transfer that would wrap the destination's
// balance is refused with bad_args naming it; one to the exact maximum
// passes.
func TestTransferOverflow(t *testing.T) {
	ctx := context.Background()
	state := map[string]any{"domain.accounts.a": 10, "domain.accounts.rich": int64(math.MaxInt64 - 5)}
	out, err := workertest.Run(ctx, def(t, "bank.transfer"), state, TransferArgs{From: "a", To: "rich", Amount: 5})
	if err != nil {
		t.Fatal(err)
	}
	if d := out.Delta(); string(d["domain.accounts.a"]) != "5" || string(d["domain.accounts.rich"]) != strconv.FormatInt(math.MaxInt64, 10) {
		t.Fatalf("delta %v", d)
	}
	_, err = workertest.Run(ctx, def(t, "bank.transfer"), state, TransferArgs{From: "a", To: "rich", Amount: 6})
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != protocol.CodeBadArgs || !strings.Contains(pe.Message, `"rich"`) {
		t.Fatalf("err = %v, want bad_args naming the account", err)
	}
}

// TestAddInt64 checks addInt64 against math/big at the edges of int64.
func TestAddInt64(t *testing.T) {
	edges := []int64{math.MinInt64, math.MinInt64 + 1, -6, -5, -1, 0, 1, 5, 6, math.MaxInt64 - 1, math.MaxInt64}
	for _, a := range edges {
		for _, b := range edges {
			want := new(big.Int).Add(big.NewInt(a), big.NewInt(b))
			got, ok := addInt64(a, b)
			if fits := want.IsInt64(); ok != fits || (ok && got != want.Int64()) {
				t.Errorf("addInt64(%d, %d) = %d, %v; want %s, fits %v", a, b, got, ok, want, fits)
			}
		}
	}
}

// order.place stores the order and emits it on the outbox; an existing
// order or a bad qty fails it, emitting nothing.
func TestOrderPlace(t *testing.T) {
	ctx := context.Background()
	out, err := workertest.Run(ctx, def(t, "order.place"), nil, Order{ID: "o1", Item: "tea", Qty: 2})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"o1","item":"tea","qty":2}`
	if got := string(out.Delta()[OrdersPath+".o1"]); got != want {
		t.Fatalf("stored %s, want %s", got, want)
	}
	if len(out.Emits) != 1 || out.Emits[0].Topic != OrdersTopic || string(out.Emits[0].Payload) != want {
		t.Fatalf("emits %+v", out.Emits)
	}
	_, err = workertest.Run(ctx, def(t, "order.place"), map[string]any{OrdersPath + ".o1": Order{ID: "o1"}}, Order{ID: "o1", Qty: 1})
	if !errors.Is(err, &protocol.Error{Code: CodeOrderExists}) {
		t.Fatalf("existing order: %v", err)
	}
	for _, bad := range []Order{{ID: "o2"}, {ID: "a.b", Qty: 1}, {Qty: 1}} {
		if _, err := workertest.Run(ctx, def(t, "order.place"), nil, bad); !errors.Is(err, protocol.ErrBadArgs) {
			t.Errorf("%+v: %v, want bad_args", bad, err)
		}
	}
}
