package workertest_test

import (
	"context"
	"errors"
	"testing"

	"github.com/theus-run/theus/protocol"
	"github.com/theus-run/theus/worker"
	"github.com/theus-run/theus/worker/workertest"
)

type order struct {
	ID  string `json:"id"`
	Qty int    `json:"qty"`
}

// A run's emits come back in order with their payloads as JSON; a PURE
// emit is a contract violation and a bad topic fails the call, even when
// the process ignores Emit's error.
func TestEmits(t *testing.T) {
	place := worker.Process("place", worker.Contract{Outputs: []string{"domain.orders"}, Effect: true}, func(ctx *worker.Ctx, in order) (worker.None, error) {
		if err := ctx.Set("domain.orders."+in.ID, in); err != nil {
			return worker.None{}, err
		}
		if err := ctx.Emit("orders", in); err != nil {
			return worker.None{}, err
		}
		return worker.None{}, ctx.Emit("audit", "placed "+in.ID)
	})
	o, err := workertest.Run(context.Background(), place, nil, order{ID: "o1", Qty: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Emits) != 2 || o.Emits[0].Topic != "orders" || string(o.Emits[0].Payload) != `{"id":"o1","qty":2}` ||
		o.Emits[1].Topic != "audit" || string(o.Emits[1].Payload) != `"placed o1"` {
		t.Fatalf("emits %+v", o.Emits)
	}

	emitter := func(name, topic string, effect bool) worker.Def {
		return worker.Process(name, worker.Contract{Effect: effect}, func(ctx *worker.Ctx, _ worker.None) (worker.None, error) {
			ctx.Emit(topic, 1) // the error is ignored: the call fails all the same
			return worker.None{}, nil
		})
	}
	tests := []struct {
		name string
		def  worker.Def
		want error
	}{
		{name: "pure", def: emitter("pure", "orders", false), want: protocol.ErrContractViolation},
		{name: "dotted topic", def: emitter("dotted", "a.b", true), want: protocol.ErrProcessFailed},
		{name: "private topic", def: emitter("private", "internal_x", true), want: protocol.ErrProcessFailed},
		{name: "empty topic", def: emitter("empty", "", true), want: protocol.ErrProcessFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := workertest.Run(context.Background(), tt.def, nil, nil)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %+v, %v; want %v", o, err, tt.want)
			}
		})
	}
	bad := worker.Process("bad", worker.Contract{Effect: true}, func(ctx *worker.Ctx, _ worker.None) (worker.None, error) {
		return worker.None{}, ctx.Emit("orders", func() {})
	})
	if _, err := workertest.Run(context.Background(), bad, nil, nil); !errors.Is(err, protocol.ErrProcessFailed) {
		t.Fatalf("unencodable payload: %v", err)
	}
}
