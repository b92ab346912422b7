package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/theus-run/theus/protocol"
)

// Call runs a supervisor method (protocol.Method*) with in as its JSON
// body and decodes its result into out (nil: discard it). A method's
// failure is a *protocol.Error.
func (c *Client) Call(ctx context.Context, method string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("client: %s: %w", method, err)
	}
	m, err := c.roundTrip(ctx, func(id uint64) protocol.Message {
		return &protocol.Call{ID: id, Method: method, Body: body}
	})
	if err != nil {
		return err
	}
	rep, ok := m.(*protocol.CallReply)
	if !ok {
		return fmt.Errorf("client: got %s for a call", m.Kind())
	}
	if rep.Err != nil {
		return rep.Err
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(rep.Body, out); err != nil {
		return fmt.Errorf("client: %s: its result: %w", method, err)
	}
	return nil
}

// StreamBuffer is how many items a Stream holds for its reader. When
// it is full, the connection's reader waits, and with it every reply on
// that connection: give a busy stream a client of its own. Close does
// not wait for it: the item being delivered is dropped, and the stream
// ends with ErrClosed.
const StreamBuffer = 1024

// Stream is an open Subscribe: items arrive on Items until the stream
// ends; then Err says why (nil when it ended, or was closed, normally).
type Stream struct {
	s     *session
	id    uint64
	items chan json.RawMessage

	once sync.Once
	mu   sync.Mutex
	err  error
}

// Subscribe opens a stream (protocol.Stream*) with in as its body.
func (c *Client) Subscribe(ctx context.Context, name string, in any) (*Stream, error) {
	body, err := json.Marshal(in)
	if err != nil {
		return nil, fmt.Errorf("client: %s: %w", name, err)
	}
	s, err := c.session()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.err != nil {
		err := s.err
		s.mu.Unlock()
		return nil, err // the next request dials again
	}
	s.next++
	st := &Stream{s: s, id: s.next, items: make(chan json.RawMessage, StreamBuffer)}
	s.streams[st.id] = st
	s.mu.Unlock()
	if err := s.conn.Send(&protocol.Subscribe{ID: st.id, Method: name, Body: body}); err != nil {
		s.mu.Lock()
		delete(s.streams, st.id)
		s.mu.Unlock()
		if !errors.Is(err, protocol.ErrFrameTooLarge) { // else nothing was sent; the connection is fine
			s.broken(ctx, err)
			if s.ended() {
				return nil, fmt.Errorf("client: %s: %w", name, s.closedErr()) // the Refuse's, when it came
			}
		}
		return nil, fmt.Errorf("client: %s: %w", name, err)
	}
	return st, nil
}

// Items delivers the stream's items, and is closed when it ends.
func (st *Stream) Items() <-chan json.RawMessage { return st.items }

// Err is why the stream ended, once Items is closed: nil for a normal
// end or Close, a *protocol.Error from the supervisor, or ErrClosed when
// the connection was lost.
func (st *Stream) Err() error {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.err
}

// Close ends the stream; Items is closed once the supervisor confirms
// (or the connection ends).
func (st *Stream) Close() error {
	err := st.s.conn.Send(&protocol.Unsubscribe{ID: st.id})
	if err != nil {
		st.s.retire(err) // the stream ends with the connection, soon; no wait here
	}
	return err
}

func (st *Stream) finish(err error) {
	st.once.Do(func() {
		st.mu.Lock()
		st.err = err
		st.mu.Unlock()
		close(st.items)
	})
}

// deliver hands an Event to its stream (the session's reader). An Event
// for a stream that is not open is dropped.
func (s *session) deliver(ev *protocol.Event) {
	s.mu.Lock()
	st := s.streams[ev.ID]
	if ev.End {
		delete(s.streams, ev.ID)
	}
	s.mu.Unlock()
	if st == nil {
		return
	}
	if ev.End {
		var err error
		if ev.Err != nil {
			err = ev.Err
		}
		st.finish(err)
		return
	}
	select {
	case st.items <- json.RawMessage(ev.Body):
		return
	default:
	}
	select {
	case st.items <- json.RawMessage(ev.Body):
	case <-s.quit: // given up (Close, a failed write): the item is dropped, so the stream fails now
		s.mu.Lock()
		if s.streams[ev.ID] == st {
			delete(s.streams, ev.ID)
		}
		s.mu.Unlock()
		st.finish(fmt.Errorf("%w: the connection was given up with the stream's buffer full; items were dropped", ErrClosed))
	}
}

// nextItem is a typed stream's Next: the next item decoded strictly into
// T, io.EOF once the stream was closed, the stream's error when it ended
// otherwise, or ctx's error. what names the stream in errors.
func nextItem[T any](ctx context.Context, st *Stream, what string) (T, error) {
	var v T
	select {
	case b, ok := <-st.Items():
		if !ok {
			if err := st.Err(); err != nil {
				return v, err
			}
			return v, io.EOF
		}
		d := json.NewDecoder(bytes.NewReader(b))
		d.DisallowUnknownFields()
		if err := d.Decode(&v); err != nil {
			var zero T
			return zero, fmt.Errorf("client: %s: an item: %w", what, err)
		}
		return v, nil
	case <-ctx.Done():
		return v, ctx.Err()
	}
}
