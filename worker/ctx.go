package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/rs/zerolog"
	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/protocol"
)

// Ctx is what a process sees: the context of the call (canceled when the
// caller gives up), its declared inputs at one snapshot, and the delta it
// is building. A Ctx is used by one process call and must not be kept.
type Ctx struct {
	context.Context
	c         contract.Contract
	inputs    []protocol.Entry // sorted by path
	version   uint64
	attempt   int
	writes    []protocol.Write
	reads     []string  // paths read, each covering its subtree
	violation error     // the first contract violation, which fails the call
	logOnce   sync.Once // log is made by the first Log: most calls never log
	log       *zerolog.Logger
	heavy     *tensors // nil: every tensor inline
	dispatch  uint64
	outputs   []output // tensors made by NewTensor
	emits     []protocol.Emit
}

func newCtx(ctx context.Context, c contract.Contract, dp *protocol.Dispatch, h *tensors) *Ctx {
	in := dp.Inputs
	if !slices.IsSortedFunc(in, func(a, b protocol.Entry) int { return strings.Compare(a.Path, b.Path) }) {
		in = slices.Clone(in)
		slices.SortFunc(in, func(a, b protocol.Entry) int { return strings.Compare(a.Path, b.Path) })
	}
	return &Ctx{Context: ctx, c: c, inputs: in, version: dp.Version, attempt: int(dp.Attempt), heavy: h, dispatch: dp.ID}
}

// Version is the snapshot's version.
func (c *Ctx) Version() uint64 { return c.version }

// Attempt counts the runs of this invocation, from 1; a run after a
// conflict sees a newer snapshot.
func (c *Ctx) Attempt() int { return c.attempt }

// Log returns a logger tagged with the process; it writes to stderr.
func (c *Ctx) Log() *zerolog.Logger {
	c.logOnce.Do(func() {
		l := zerolog.Ctx(c.Context).With().Str("process", c.c.Name).Uint64("dispatch", c.dispatch).Logger()
		c.log = &l
	})
	return c.log
}

func (c *Ctx) fail(err error) error {
	if c.violation == nil {
		c.violation = err
	}
	return err
}

func (c *Ctx) checkRead(path string) (contract.Path, error) {
	p, err := contract.Parse(path)
	if err != nil {
		return "", err
	}
	if err := c.c.CheckRead(p); err != nil {
		return "", c.fail(err)
	}
	c.reads = append(c.reads, path) // sorted and compacted when sent
	return p, nil
}

func (c *Ctx) find(path string) (protocol.Entry, bool) {
	i, ok := slices.BinarySearchFunc(c.inputs, path, func(e protocol.Entry, p string) int { return strings.Compare(e.Path, p) })
	if !ok {
		return protocol.Entry{}, false
	}
	return c.inputs[i], true
}

// Raw returns the JSON value at path, or false if there is none. Reading a
// path outside the contract's inputs is a contract violation, which also
// fails the call. The bytes are the caller's to keep but not to change.
func (c *Ctx) Raw(path string) ([]byte, bool, error) {
	if _, err := c.checkRead(path); err != nil {
		return nil, false, err
	}
	e, ok := c.find(path)
	return e.Value, ok, nil
}

// Get decodes the value at path into v and reports whether there was one.
func (c *Ctx) Get(path string, v any) (bool, error) {
	b, ok, err := c.Raw(path)
	if err != nil || !ok {
		return false, err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return true, fmt.Errorf("worker: value at %s: %w", path, err)
	}
	return true, nil
}

// Children returns the values at paths directly under path, keyed by the
// last segment (for example the accounts under domain.accounts).
func (c *Ctx) Children(path string) (map[string][]byte, error) {
	if _, err := c.checkRead(path); err != nil {
		return nil, err
	}
	prefix := path + "."
	i, _ := slices.BinarySearchFunc(c.inputs, prefix, func(e protocol.Entry, p string) int { return strings.Compare(e.Path, p) })
	out := map[string][]byte{}
	for ; i < len(c.inputs) && strings.HasPrefix(c.inputs[i].Path, prefix); i++ {
		rest := c.inputs[i].Path[len(prefix):]
		if !strings.Contains(rest, ".") {
			out[rest] = c.inputs[i].Value
		}
	}
	return out, nil
}

func (c *Ctx) write(path string, op contract.Op, v any) error {
	p, err := contract.Parse(path)
	if err != nil {
		return c.fail(err)
	}
	if err := c.c.CheckWrite(p, op); err != nil {
		return c.fail(err)
	}
	w := protocol.Write{Path: path, Op: uint8(op)}
	if op != contract.OpDelete {
		if w.Value, err = json.Marshal(v); err != nil {
			return c.fail(fmt.Errorf("worker: value for %s: %w", path, err))
		}
	}
	c.writes = append(c.writes, w)
	return nil
}

// Set adds to the delta a write of v (JSON encoded) at path. A path
// outside the contract's outputs is a contract violation: Set returns it,
// and the call fails with it even if the process ignores the error.
func (c *Ctx) Set(path string, v any) error { return c.write(path, contract.OpSet, v) }

// Delete adds to the delta a delete of the value at path.
func (c *Ctx) Delete(path string) error { return c.write(path, contract.OpDelete, nil) }

// Append adds v as the next entry of the LOG rooted at path.
func (c *Ctx) Append(path string, v any) error { return c.write(path, contract.OpAppend, v) }

// Emit adds an outbox message under topic, its payload JSON encoded. It
// is committed with the delta, in the same transaction, or dropped with
// an attempt that does not commit: a consumer pulling the topic sees it
// only once the call's writes are visible. topic is one DATA-zone path
// segment (contract.CheckTopic). Emitting is a side effect: a PURE
// process may not (contract.ErrEmitInPure). As with Set, an error here
// fails the call even if the process ignores it.
func (c *Ctx) Emit(topic string, payload any) error {
	if err := c.c.CheckEmit(topic); err != nil {
		return c.fail(err)
	}
	if len(c.emits) >= protocol.MaxEmits {
		return c.fail(fmt.Errorf("worker: more than %d outbox messages in one call", protocol.MaxEmits))
	}
	b, err := json.Marshal(payload)
	if err != nil {
		return c.fail(fmt.Errorf("worker: payload for topic %s: %w", topic, err))
	}
	c.emits = append(c.emits, protocol.Emit{Topic: topic, Payload: b})
	return nil
}
