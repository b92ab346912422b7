package supervisor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/theus-run/theus/ipc"
	"github.com/theus-run/theus/protocol"
)

// method answers one Call: it decodes body (decodeBody) and returns what
// to send back as JSON, or an error (turned into its wire form by
// wireError).
type method func(ctx context.Context, body []byte) (any, error)

// stream serves one Subscribe: it sends items until it returns, each its
// own Event (the items of one send go in one write). ctx ends when the
// client unsubscribes or goes away, or the supervisor drains; send fails
// once the client is gone.
type stream func(ctx context.Context, body []byte, send func(items ...any) error) error

// registerMethod adds a Call method; the supervisor's parts (flux, signals,
// outbox) register theirs in Start.
func (s *Supervisor) registerMethod(name string, m method) {
	if _, dup := s.methods[name]; dup {
		panic("supervisor: method " + name + " registered twice")
	}
	s.methods[name] = m
}

// registerStream adds a Subscribe stream.
func (s *Supervisor) registerStream(name string, st stream) {
	if _, dup := s.streams[name]; dup {
		panic("supervisor: stream " + name + " registered twice")
	}
	s.streams[name] = st
}

// Call runs a method as a client's Call would, for in-process callers and
// tests.
func (s *Supervisor) Call(ctx context.Context, req *protocol.Call) *protocol.CallReply {
	if !s.enter() {
		return &protocol.CallReply{ID: req.ID, Err: protocol.Errorf(protocol.CodeShuttingDown, "the supervisor is shutting down")}
	}
	defer s.inflight.Done()
	return s.call(ctx, req)
}

func (s *Supervisor) call(ctx context.Context, req *protocol.Call) *protocol.CallReply {
	rep := &protocol.CallReply{ID: req.ID}
	m, ok := s.methods[req.Method]
	if !ok {
		rep.Err = protocol.Errorf(protocol.CodeBadRequest, "no method %q", req.Method)
		return rep
	}
	out, err := m(ctx, req.Body)
	if err != nil {
		rep.Err = s.wireError(err)
		return rep
	}
	if rep.Body, err = json.Marshal(out); err != nil {
		rep.Err = protocol.Errorf(protocol.CodeInternal, "method %s: its result: %v", req.Method, err)
	}
	return rep
}

// decodeBody decodes a Call's or Subscribe's JSON body into v, refusing
// unknown fields and trailing data; an empty body is {}.
func decodeBody(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return protocol.Errorf(protocol.CodeBadRequest, "body: %v", err)
	}
	if d.More() {
		return protocol.Errorf(protocol.CodeBadRequest, "body: data after the JSON object")
	}
	return nil
}

// connStreams are the open streams of one client connection.
type connStreams struct {
	mu      sync.Mutex
	streams map[uint64]context.CancelFunc
}

// serveCall runs a Call and replies. It counts as in flight until the
// reply is written.
func (s *Supervisor) serveCall(ctx context.Context, c *ipc.Conn, m *protocol.Call) {
	if !s.enter() {
		reply(c, &protocol.CallReply{ID: m.ID, Err: protocol.Errorf(protocol.CodeShuttingDown, "the supervisor is shutting down")})
		return
	}
	defer s.inflight.Done()
	reply(c, s.call(ctx, m))
}

// serveStream runs a Subscribe, opened (connStreams.open) with ctx,
// until its stream ends, the client unsubscribes (which cancels ctx) or
// goes away, or the supervisor drains; the last Event has End (and Err
// when the stream failed). It closes the stream in cs just before it
// sends the End: once the client sees it, the id is free again.
func (s *Supervisor) serveStream(ctx context.Context, c *ipc.Conn, cs *connStreams, m *protocol.Subscribe) {
	end := func(err error) {
		cs.close(m.ID) // the id is free once the client can see the End
		ev := &protocol.Event{ID: m.ID, End: true}
		if err != nil {
			ev.Err = s.wireError(err)
		}
		c.Send(ev)
	}
	st, ok := s.streams[m.Method]
	if !ok {
		end(protocol.Errorf(protocol.CodeBadRequest, "no stream %q", m.Method))
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.quit, cancel)
	defer stop()
	send := func(items ...any) error {
		evs := make([]protocol.Message, 0, len(items))
		for _, v := range items {
			b, err := json.Marshal(v)
			if err != nil {
				return fmt.Errorf("stream %s: %w", m.Method, err)
			}
			evs = append(evs, &protocol.Event{ID: m.ID, Body: b})
		}
		return c.SendBatch(evs...)
	}
	err := st(ctx, m.Body, send)
	switch {
	case s.quit.Err() != nil && (err == nil || errors.Is(err, context.Canceled)):
		err = protocol.Errorf(protocol.CodeShuttingDown, "the supervisor is shutting down")
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		err = nil // the client unsubscribed
	}
	end(err)
}

// open records the stream id as open until close, with cancel to end
// it, and reports false (recording nothing) when id is open already.
// The connection's reader opens a stream before it reads on, so that an
// Unsubscribe right behind its Subscribe finds it.
func (cs *connStreams) open(id uint64, cancel context.CancelFunc) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if _, dup := cs.streams[id]; dup {
		return false
	}
	cs.streams[id] = cancel
	return true
}

// close forgets the stream id.
func (cs *connStreams) close(id uint64) {
	cs.mu.Lock()
	delete(cs.streams, id)
	cs.mu.Unlock()
}

// unsubscribe ends the stream with this id, if it is open.
func (cs *connStreams) unsubscribe(id uint64) {
	cs.mu.Lock()
	cancel := cs.streams[id]
	cs.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}
