package demo

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/theus-run/theus/protocol"
	"github.com/theus-run/theus/worker"
	"github.com/theus-run/theus/worker/workertest"
)

func def(t *testing.T, name string) worker.Def {
	t.Helper()
	for _, d := range Processes() {
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

func TestUndeclaredWriteIsRejected(t *testing.T) {
	_, err := workertest.Run(context.Background(), def(t, "fault.undeclared"), nil, nil)
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != protocol.CodeContractViolation || pe.Path != "domain.forbidden" {
		t.Fatalf("err = %#v, want a contract violation naming domain.forbidden", err)
	}
}

func TestProcessesAreValid(t *testing.T) {
	seen := map[string]bool{}
	for _, d := range Processes() {
		if d.Spec.Name != d.Name || seen[d.Name] {
			t.Fatalf("bad or duplicate process %q", d.Name)
		}
		seen[d.Name] = true
	}
}
