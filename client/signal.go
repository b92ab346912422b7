package client

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/theus-run/theus/protocol"
)

// Signal is one item of a Watch: a signal committed at Version, or, when
// Lagged is not 0, the number of signals this watcher missed here because
// it did not keep up (Version, Path and Value are then empty).
type Signal struct {
	Version uint64          `json:"version"`
	Path    string          `json:"path"`
	Value   json.RawMessage `json:"value"`
	Lagged  uint64          `json:"lagged,omitempty"`
}

// Signal publishes a signal at path (in the SIGNAL zone: a segment sig_*
// or cmd_*) with value as its JSON value (nil: null), through a commit of
// its own, and returns that commit's version once it is durable.
func (c *Client) Signal(ctx context.Context, path string, value any) (uint64, error) {
	in := struct {
		Path  string `json:"path"`
		Value any    `json:"value"`
	}{path, value}
	var out struct {
		Version uint64 `json:"version"`
	}
	if err := c.Call(ctx, protocol.MethodSignalPublish, in, &out); err != nil {
		return 0, err
	}
	return out.Version, nil
}

// Watcher is an open Watch. Its reader calls Next until it returns an
// error; Close ends it early.
type Watcher struct {
	st *Stream
}

// Watch subscribes to the signals at or under prefix ("" for every
// signal) and returns once the subscription is in place: a signal whose
// commit lands after Watch returns is delivered (unless missed, which a
// lagged item reports). The watcher holds StreamBuffer items; a busy
// watcher wants a Client of its own (see StreamBuffer).
func (c *Client) Watch(ctx context.Context, prefix string) (*Watcher, error) {
	st, err := c.Subscribe(ctx, protocol.StreamSignals, struct {
		Prefix string `json:"prefix"`
	}{prefix})
	if err != nil {
		return nil, err
	}
	w := &Watcher{st: st}
	var ready struct {
		Watching *string `json:"watching"`
	}
	select {
	case b, ok := <-st.Items():
		if !ok {
			if err := st.Err(); err != nil {
				return nil, fmt.Errorf("client: watch %q: %w", prefix, err)
			}
			return nil, fmt.Errorf("client: watch %q: the stream ended at once", prefix)
		}
		if err := json.Unmarshal(b, &ready); err != nil || ready.Watching == nil {
			st.Close()
			return nil, fmt.Errorf("client: watch %q: expected the subscription's confirmation, got %s", prefix, b)
		}
	case <-ctx.Done():
		st.Close()
		return nil, ctx.Err()
	}
	return w, nil
}

// Next returns the next signal or lagged count. It returns io.EOF once
// the watch was closed, the stream's error (a *protocol.Error, e.g.
// shutting_down) when it ended otherwise, or ctx's error.
func (w *Watcher) Next(ctx context.Context) (Signal, error) {
	return nextItem[Signal](ctx, w.st, "watch")
}

// Close ends the watch; Next then returns io.EOF once the supervisor has
// confirmed.
func (w *Watcher) Close() error { return w.st.Close() }
