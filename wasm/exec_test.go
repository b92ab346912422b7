package wasm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/protocol"
)

func TestExecCommitsAndRepliesAsTheusctl(t *testing.T) {
	r := newRuntime(t, Config{})
	register(t, r, "counter.add", counterDecl, counterAdd(nil))
	rep, err := r.Exec(context.Background(), Request{Process: "counter.add", Args: json.RawMessage(`{"by":3}`)})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(rep)
	// theusctl exec's line, less its leading "ok":true.
	if string(b) != `{"version":1,"attempts":1,"conflicts":0,"vip":false,"result":3,"mode":"smart"}` {
		t.Fatalf("reply %s", b)
	}
	if got := get(t, r, "domain.counter"); got != "3" {
		t.Fatalf("domain.counter = %s", got)
	}
}

func TestExecRefusesBadCallsAndCommitsNothing(t *testing.T) {
	r := newRuntime(t, Config{})
	register(t, r, "counter.add", counterDecl, counterAdd(nil))
	register(t, r, "bank.transfer", Decl{
		Inputs:  []string{"domain.accounts.{from}", "domain.accounts.{to}"},
		Outputs: []string{"domain.accounts.{from}", "domain.accounts.{to}"},
	}, func(_ context.Context, c *Ctx) (json.RawMessage, error) {
		var a struct{ From, To, Also string }
		json.Unmarshal(c.Args(), &a)
		for _, who := range []string{a.From, a.To, a.Also} {
			if who != "" {
				if err := c.Set("domain.accounts."+who, json.RawMessage("1")); err != nil {
					return nil, err
				}
			}
		}
		return nil, nil
	})
	register(t, r, "sneaky", counterDecl, func(_ context.Context, c *Ctx) (json.RawMessage, error) {
		c.Set("domain.other", json.RawMessage("1")) // the error is ignored: the call fails anyway
		return nil, c.Set("domain.counter", json.RawMessage("1"))
	})
	register(t, r, "peek", counterDecl, func(_ context.Context, c *Ctx) (json.RawMessage, error) {
		_, _, err := c.Get("domain.accounts")
		return nil, err
	})
	register(t, r, "broke", counterDecl, func(_ context.Context, c *Ctx) (json.RawMessage, error) {
		c.Set("domain.counter", json.RawMessage("7"))
		return nil, protocol.Errorf("insufficient_funds", "nothing to move")
	})
	register(t, r, "plain", counterDecl, func(_ context.Context, c *Ctx) (json.RawMessage, error) {
		return nil, errors.New("boom")
	})
	register(t, r, "tensor", Decl{Outputs: []string{"domain.heavy_w"}}, func(_ context.Context, c *Ctx) (json.RawMessage, error) {
		return nil, c.Set("domain.heavy_w", json.RawMessage("[1,2]"))
	})
	register(t, r, "badresult", counterDecl, func(_ context.Context, c *Ctx) (json.RawMessage, error) {
		return json.RawMessage("{"), nil
	})
	register(t, r, "twice", counterDecl, func(_ context.Context, c *Ctx) (json.RawMessage, error) {
		c.Set("domain.counter", json.RawMessage("1"))
		return nil, c.Set("domain.counter", json.RawMessage("2"))
	})
	tests := []struct {
		name, process, args, code, path string
	}{
		{"unknown process", "nope", "", protocol.CodeUnknownProcess, ""},
		{"args not JSON", "counter.add", "{", protocol.CodeBadArgs, ""},
		{"a templated arg missing", "bank.transfer", `{"from":"alice"}`, protocol.CodeBadArgs, ""},
		{"a templated arg with a dot", "bank.transfer", `{"from":"a.b","to":"c"}`, protocol.CodeBadArgs, ""},
		{"a write outside the bound contract", "bank.transfer", `{"from":"alice","to":"bob","also":"carol"}`, protocol.CodeContractViolation, "domain.accounts.carol"},
		{"an ignored violation still fails the call", "sneaky", "", protocol.CodeContractViolation, "domain.other"},
		{"a read outside the inputs", "peek", "", protocol.CodeContractViolation, "domain.accounts"},
		{"the process's own code", "broke", "", "insufficient_funds", ""},
		{"a plain error", "plain", "", protocol.CodeProcessFailed, ""},
		{"a HEAVY path", "tensor", "", protocol.CodeBadTensor, "domain.heavy_w"},
		{"a result that is not JSON", "badresult", "", protocol.CodeProcessFailed, ""},
		{"a path written twice", "twice", "", protocol.CodeProcessFailed, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := r.Exec(context.Background(), Request{Process: tt.process, Args: json.RawMessage(tt.args)})
			if code(err) != tt.code {
				t.Fatalf("err %v, want code %s", err, tt.code)
			}
			var pe *protocol.Error
			if errors.As(err, &pe); pe.Path != tt.path {
				t.Fatalf("path %q, want %q (%v)", pe.Path, tt.path, err)
			}
		})
	}
	if v := r.Version(); v != 0 {
		t.Fatalf("version %d after refused calls: something committed", v)
	}
	if _, err := r.Exec(context.Background(), Request{Process: "bank.transfer", Args: json.RawMessage(`{"from":"alice","to":"bob"}`)}); err != nil {
		t.Fatalf("the bound contract itself: %v", err)
	}
	if got := get(t, r, "domain.accounts"); got != `{"alice":1,"bob":1}` {
		t.Fatalf("accounts %s", got)
	}
}

func TestRegisterRefusesBadContracts(t *testing.T) {
	r := newRuntime(t, Config{})
	nop := func(context.Context, *Ctx) (json.RawMessage, error) { return nil, nil }
	for _, d := range []Decl{
		{Inputs: []string{"domain..x"}},
		{Inputs: []string{"domain.internal_x"}},
		{Outputs: []string{"domain.const_x"}},
		{Inputs: []string{"domain.sig_x"}}, // a PURE process may not read signals
		{Inputs: []string{"{who}.x"}},
	} {
		if err := r.Register("p", d, nop); code(err) != protocol.CodeBadRequest {
			t.Errorf("%+v: %v, want bad_request", d, err)
		}
	}
	register(t, r, "p", counterDecl, nop)
	if err := r.Register("p", counterDecl, nop); code(err) != protocol.CodeBadRequest {
		t.Fatalf("a second p: %v", err)
	}
}

// A call with an op id commits once; a repeat gets the first outcome,
// and the id used for another call is refused.
func TestExecOpIDIsIdempotent(t *testing.T) {
	r := newRuntime(t, Config{})
	register(t, r, "counter.add", counterDecl, counterAdd(nil))
	ctx := context.Background()
	first, err := r.Exec(ctx, Request{Process: "counter.add", OpID: "op-1", Args: json.RawMessage(`{"by": 2}`)})
	if err != nil {
		t.Fatal(err)
	}
	again, err := r.Exec(ctx, Request{Process: "counter.add", OpID: "op-1", Args: json.RawMessage(`{"by":2}`)})
	if err != nil || !again.Duplicate || again.Version != first.Version || string(again.Result) != "2" {
		t.Fatalf("repeat %+v %v", again, err)
	}
	if _, err := r.Exec(ctx, Request{Process: "counter.add", OpID: "op-1", Args: json.RawMessage(`{"by":5}`)}); code(err) != protocol.CodeOpIDConflict {
		t.Fatalf("op-1 with other args: %v", err)
	}
	if got := get(t, r, "domain.counter"); got != "2" {
		t.Fatalf("counter %s", got)
	}
	if _, err := r.Exec(ctx, Request{Process: "counter.add", OpID: strings.Repeat("x", cas.MaxOpIDLen+1)}); code(err) != protocol.CodeBadRequest {
		t.Fatalf("a long op id: %v", err)
	}
}

func TestExecTimesOut(t *testing.T) {
	r := newRuntime(t, Config{})
	register(t, r, "hang", counterDecl, func(ctx context.Context, c *Ctx) (json.RawMessage, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	_, err := r.Exec(context.Background(), Request{Process: "hang", Timeout: 20 * time.Millisecond})
	var f *Failure
	if code(err) != protocol.CodeTimeout || !errors.As(err, &f) || f.Attempts != 1 {
		t.Fatalf("%v", err)
	}
}

// A write or read outside the contract is refused when the process makes
// it, as the worker SDK refuses it, not only by the runner's check before
// the commit: the process sees the violation at once.
func TestCtxRefusesAtOnce(t *testing.T) {
	r := newRuntime(t, Config{})
	var setErr, getErr, appendErr error
	register(t, r, "p", counterDecl, func(_ context.Context, c *Ctx) (json.RawMessage, error) {
		setErr = c.Set("domain.other", json.RawMessage("1"))
		_, _, getErr = c.Get("domain.other")
		appendErr = c.Append("domain.counter", json.RawMessage("1")) // not a LOG
		return nil, nil
	})
	_, err := r.Exec(context.Background(), Request{Process: "p"})
	if code(err) != protocol.CodeContractViolation {
		t.Fatalf("the call: %v", err)
	}
	for _, err := range []error{setErr, getErr, appendErr} {
		var v *contract.Violation
		if !errors.As(err, &v) {
			t.Errorf("%v, want a *contract.Violation at once", err)
		}
	}
}

// A process cannot read or write once its attempt has ended: what it
// keeps of its Ctx is dead.
func TestCtxEndsWithTheAttempt(t *testing.T) {
	r := newRuntime(t, Config{})
	var kept *Ctx
	register(t, r, "keep", counterDecl, func(_ context.Context, c *Ctx) (json.RawMessage, error) {
		kept = c
		return nil, nil
	})
	if _, err := r.Exec(context.Background(), Request{Process: "keep"}); err != nil {
		t.Fatal(err)
	}
	if err := kept.Set("domain.counter", json.RawMessage("1")); err == nil {
		t.Fatal("a write after the attempt ended was taken")
	}
	if _, _, err := kept.Get("domain.counter"); err == nil {
		t.Fatal("a read after the attempt ended was served")
	}
}

func TestClosedRuntimeRefuses(t *testing.T) {
	r := newRuntime(t, Config{})
	register(t, r, "counter.add", counterDecl, counterAdd(nil))
	r.Close()
	r.Close()
	if _, err := r.Exec(context.Background(), Request{Process: "counter.add"}); code(err) != protocol.CodeShuttingDown {
		t.Fatalf("exec after close: %v", err)
	}
	if _, err := r.Flux(); code(err) != protocol.CodeShuttingDown {
		t.Fatalf("flux after close: %v", err)
	}
	if err := r.Register("x", counterDecl, counterAdd(nil)); code(err) != protocol.CodeShuttingDown {
		t.Fatalf("register after close: %v", err)
	}
}

// Close cancels the calls in flight: they fail with shutting_down and
// commit nothing.
func TestCloseCancelsCallsInFlight(t *testing.T) {
	r := newRuntime(t, Config{})
	started := make(chan struct{})
	register(t, r, "hang", counterDecl, counterAdd(func(ctx context.Context, c *Ctx) error {
		close(started)
		<-ctx.Done()
		return ctx.Err()
	}))
	errs := make(chan error, 1)
	go func() {
		_, err := r.Exec(context.Background(), Request{Process: "hang"})
		errs <- err
	}()
	<-started
	r.Close()
	if err := <-errs; code(err) != protocol.CodeShuttingDown {
		t.Fatalf("the call in flight: %v", err)
	}
	if r.Version() != 0 {
		t.Fatal("it committed")
	}
}

func ExampleRuntime_Exec() {
	r, _ := New(Config{})
	defer r.Close()
	r.Register("counter.add", Decl{Inputs: []string{"domain.counter"}, Outputs: []string{"domain.counter"}}, counterAdd(nil))
	rep, _ := r.Exec(context.Background(), Request{Process: "counter.add", Args: json.RawMessage(`{"by":41}`)})
	rep, _ = r.Exec(context.Background(), Request{Process: "counter.add"})
	fmt.Println(rep.Version, string(rep.Result))
	// Output: 2 42
}
