// Package workertest runs a worker process in the test's own OS process,
// the way net/http/httptest runs a handler: against a snapshot the test
// gives, through the real wire encoding and the same contract checks the
// supervisor makes. It never starts a supervisor or a worker process and
// never commits anything.
package workertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/protocol"
	"github.com/theus-run/theus/worker"
)

// Write is one write of a delta, with its value as JSON.
type Write struct {
	Path  string
	Op    contract.Op
	Value json.RawMessage
}

// Outcome is what one run produced.
type Outcome struct {
	Writes []Write
	Result json.RawMessage // nil when the process returns worker.None
	// Reads are the paths the process read, sorted: the supervisor
	// validates its commit against these.
	Reads []string
	// Emits are the outbox messages of the run (Ctx.Emit), in order: the
	// supervisor commits them with Writes.
	Emits []Emit
}

// Emit is one outbox message, with its payload as JSON.
type Emit struct {
	Topic   string
	Payload json.RawMessage
}

// Delta returns the writes as a map from path to value, for a quick check
// of a run that only sets paths (deletes map to nil).
func (o *Outcome) Delta() map[string]json.RawMessage {
	m := make(map[string]json.RawMessage, len(o.Writes))
	for _, w := range o.Writes {
		m[w.Path] = w.Value
	}
	return m
}

// Run runs d once. state maps paths to values, each JSON encoded unless it
// is already a json.RawMessage or []byte; only the paths d's contract
// declares as inputs reach the process, as with the supervisor. args is
// JSON encoded likewise (nil for none). A process error, a bad_args error
// or a contract violation comes back as a *protocol.Error, which
// errors.Is matches against the protocol sentinels and worker.Fail codes.
func Run(ctx context.Context, d worker.Def, state map[string]any, args any) (*Outcome, error) {
	dp := &protocol.Dispatch{ID: 1, Attempt: 1, Process: d.Name, Version: 1}
	if args != nil {
		var err error
		if dp.Args, err = encode(args); err != nil {
			return nil, fmt.Errorf("workertest: args: %w", err)
		}
	}
	c, err := d.Spec.Bind(dp.Args)
	if err != nil {
		return nil, &protocol.Error{Code: protocol.CodeBadArgs, Message: err.Error()}
	}
	for _, p := range slices.Sorted(maps.Keys(state)) {
		cp, err := contract.Parse(p)
		if err != nil {
			return nil, fmt.Errorf("workertest: state: %w", err)
		}
		if c.CheckRead(cp) != nil {
			continue
		}
		v, err := encode(state[p])
		if err != nil {
			return nil, fmt.Errorf("workertest: state %s: %w", p, err)
		}
		dp.Inputs = append(dp.Inputs, protocol.Entry{Path: p, Value: v, Version: 1})
	}
	var in protocol.Dispatch
	if err := roundTrip(dp, &in); err != nil {
		return nil, err
	}
	res := d.Run(ctx, &in)
	var out protocol.Result
	if err := roundTrip(res, &out); err != nil {
		return nil, err
	}
	if out.Err != nil {
		return nil, out.Err
	}
	o := &Outcome{Reads: out.Reads}
	if len(out.Result) > 0 {
		o.Result = out.Result
	}
	for _, w := range out.Writes {
		p, err := contract.Parse(w.Path)
		if err != nil {
			return nil, &protocol.Error{Code: protocol.CodeContractViolation, Message: err.Error(), Path: w.Path}
		}
		if err := c.CheckWrite(p, contract.Op(w.Op)); err != nil {
			return nil, &protocol.Error{Code: protocol.CodeContractViolation, Message: err.Error(), Path: w.Path}
		}
		if w.Op != uint8(contract.OpDelete) && !json.Valid(w.Value) {
			return nil, &protocol.Error{Code: protocol.CodeBadFrame, Message: "value is not JSON", Path: w.Path}
		}
		o.Writes = append(o.Writes, Write{Path: w.Path, Op: contract.Op(w.Op), Value: w.Value})
	}
	for _, e := range out.Emits {
		if err := c.CheckEmit(e.Topic); err != nil {
			var v *contract.Violation
			if errors.As(err, &v) {
				return nil, &protocol.Error{Code: protocol.CodeContractViolation, Message: err.Error(), Path: e.Topic}
			}
			return nil, &protocol.Error{Code: protocol.CodeProcessFailed, Message: err.Error()}
		}
		if !json.Valid(e.Payload) {
			return nil, &protocol.Error{Code: protocol.CodeProcessFailed, Message: "payload is not JSON", Path: e.Topic}
		}
		o.Emits = append(o.Emits, Emit{Topic: e.Topic, Payload: e.Payload})
	}
	return o, nil
}

func encode(v any) ([]byte, error) {
	switch v := v.(type) {
	case json.RawMessage:
		return v, nil
	case []byte:
		return v, nil
	}
	return json.Marshal(v)
}

// roundTrip encodes m as a frame and decodes it into into, as the wire does.
func roundTrip(m, into protocol.Message) error {
	b, err := protocol.AppendFrame(nil, m)
	if err != nil {
		return err
	}
	got, err := protocol.Decode(protocol.Kind(b[protocol.HeaderLen-1]), b[protocol.HeaderLen:])
	if err != nil {
		return err
	}
	b2, _ := got.MarshalMsg(nil)
	if _, err := into.UnmarshalMsg(b2); err != nil {
		return errors.Join(errors.New("workertest: decode"), err)
	}
	return nil
}
