package testprocs

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/theus-run/theus/worker"
)

// Paths the processes write and the tests read back.
const (
	// OutboxCount is the counter of outbox.incr.
	OutboxCount = "domain.outbox_count"
	// SchemaLog is the log schema.log appends to, and SchemaSig the
	// signal it publishes beside.
	SchemaLog = "domain.log_events"
	SchemaSig = "domain.sig_event"
)

// FillArgs are test.fill's args: N values of Size bytes under domain.big.
type FillArgs struct {
	N    int `json:"n"`
	Size int `json:"size"`
}

// outboxProcesses emit: outbox.incr adds one to a counter and emits the
// new value (concurrent calls conflict), outbox.fail emits and then
// fails, outbox.pure emits from a PURE process.
func outboxProcesses() []worker.Def {
	return []worker.Def{
		worker.Process("outbox.incr", worker.Contract{Inputs: []string{OutboxCount}, Outputs: []string{OutboxCount}, Effect: true},
			func(ctx *worker.Ctx, _ worker.None) (int64, error) {
				var n int64
				if _, err := ctx.Get(OutboxCount, &n); err != nil {
					return 0, err
				}
				n++
				if err := ctx.Set(OutboxCount, n); err != nil {
					return 0, err
				}
				return n, ctx.Emit("counts", n)
			}),
		worker.Process("outbox.fail", worker.Contract{Effect: true}, func(ctx *worker.Ctx, _ worker.None) (worker.None, error) {
			if err := ctx.Emit("counts", "lost"); err != nil {
				return worker.None{}, err
			}
			return worker.None{}, worker.Fail("boom", "failing after an emit")
		}),
		worker.Process("outbox.pure", worker.Contract{}, func(ctx *worker.Ctx, _ worker.None) (worker.None, error) {
			ctx.Emit("counts", 1) // refused; the call fails even so
			return worker.None{}, nil
		}),
	}
}

// schemaProcesses are the test processes of the schema gate's tests.
func schemaProcesses() []worker.Def {
	return []worker.Def{
		// schema.log appends its args to a log and publishes them as a signal.
		worker.Process("schema.log", worker.Contract{Outputs: []string{SchemaLog, SchemaSig}, Effect: true},
			func(ctx *worker.Ctx, in json.RawMessage) (worker.None, error) {
				if err := ctx.Set(SchemaSig, in); err != nil {
					return worker.None{}, err
				}
				return worker.None{}, ctx.Append(SchemaLog, in)
			}),
	}
}

// signalProcesses write signals the way no demo process does. The test
// worker serves them next to the demo processes.
func signalProcesses() []worker.Def {
	out := worker.Contract{Outputs: []string{"domain.sig_ping"}, Effect: true}
	return []worker.Def{
		worker.Process("sig.delete", out, func(ctx *worker.Ctx, _ worker.None) (worker.None, error) {
			return worker.None{}, ctx.Delete("domain.sig_ping")
		}),
	}
}

// fillProcess writes a large subtree in one execute, for Gets that take
// long to compute.
func fillProcess() worker.Def {
	return worker.Process("test.fill", worker.Contract{Outputs: []string{"domain.big"}}, func(ctx *worker.Ctx, in FillArgs) (worker.None, error) {
		v := strings.Repeat("x", in.Size)
		for i := range in.N {
			if err := ctx.Set(fmt.Sprintf("domain.big.k%06d", i), v); err != nil {
				return worker.None{}, err
			}
		}
		return worker.None{}, nil
	})
}

// bigResultProcess returns a result of n bytes.
func bigResultProcess() worker.Def {
	return worker.Process("test.big", worker.Contract{}, func(_ *worker.Ctx, in struct {
		N int `json:"n"`
	}) (string, error) {
		return strings.Repeat("x", in.N), nil
	})
}
