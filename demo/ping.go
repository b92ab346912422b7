package demo

import (
	"encoding/json"
	"strings"

	"github.com/theus-run/theus/worker"
)

// Paths of the ping processes: a signal, and the DATA subtree ping.mark
// writes beside it.
const (
	PingSignal = "domain.sig_ping"
	PingsPath  = "domain.pings"
)

// PingArgs are ping.send's args: the signal's value (null when absent).
type PingArgs struct {
	Value json.RawMessage `json:"value"`
}

// pingSend writes the signal domain.sig_ping: published to watchers once
// its commit is durable, never stored.
func pingSend(ctx *worker.Ctx, in PingArgs) (worker.None, error) {
	v := in.Value
	if len(v) == 0 {
		v = json.RawMessage("null")
	}
	return worker.None{}, ctx.Set(PingSignal, v)
}

// MarkArgs are ping.mark's args.
type MarkArgs struct {
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value"`
}

// Mark is ping.mark's signal value.
type Mark struct {
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value"`
}

// pingMark writes domain.pings.<key> = value (DATA) and the signal
// domain.sig_ping = {key, value} in one commit: a watcher that reads the
// key on the signal must find it. It is PURE: a PURE process may write a
// signal, it only may not read one.
func pingMark(ctx *worker.Ctx, in MarkArgs) (worker.None, error) {
	if in.Key == "" || strings.Contains(in.Key, ".") {
		return worker.None{}, worker.Fail("bad_args", "ping.mark: need a key without a dot, not %q", in.Key)
	}
	v := in.Value
	if len(v) == 0 {
		v = json.RawMessage("null")
	}
	if err := ctx.Set(PingsPath+"."+in.Key, v); err != nil {
		return worker.None{}, err
	}
	//theus-lint:ignore POP-E07 ping.mark shows a PURE process writing a signal, which the runtime allows (docs/SIGNALS.md)
	return worker.None{}, ctx.Set(PingSignal, Mark{Key: in.Key, Value: v})
}
