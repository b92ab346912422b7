package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/theus-run/theus/internal/golabel"
	"github.com/theus-run/theus/ipc"
	"github.com/theus-run/theus/pool"
	"github.com/theus-run/theus/protocol"
)

// Serve accepts clients on the socket until ctx ends, then drains (see
// Shutdown) and returns nil. A client under another uid is refused before
// anything is read from it; a client past MaxClients gets a Refuse with
// too_many_clients.
func (s *Supervisor) Serve(ctx context.Context) error {
	if s.ln == nil {
		return errors.New("supervisor: no socket to serve")
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { s.Shutdown(context.Background()) })
	defer stop()
	if f := s.failed(); f != nil {
		// Crash rather than ack: once a commit cannot be written, stop.
		served := make(chan struct{})
		defer close(served) // before wg.Wait
		wg.Go(func() {
			select {
			case <-f:
				s.cfg.Log.Error().Err(s.journal.Err()).Msg("cannot write to disk: shutting down")
				s.Shutdown(context.Background())
			case <-served:
			}
		})
	}
	refusals := s.cfg.Log.Sample(&zerolog.BurstSampler{Burst: 1, Period: 10 * time.Second})
	for {
		c, err := s.ln.Accept()
		if err != nil {
			var pe *ipc.PeerError
			if errors.As(err, &pe) {
				s.cfg.Log.Warn().Err(err).Msg("client refused")
				continue
			}
			if s.draining.Load() || errors.Is(err, net.ErrClosed) {
				<-s.drained // Shutdown was started, by ctx or by a caller: let it finish
				if jerr := s.journalErr(); jerr != nil {
					return jerr
				}
				return nil
			}
			return err
		}
		if err := s.track(c); err != nil {
			// The connection's socket buffer is empty: this write does not wait.
			c.Send(&protocol.Refuse{Err: *err})
			c.Close()
			if err.Code == protocol.CodeTooManyClients {
				refusals.Warn().Int("max_clients", s.cfg.MaxClients).Msg("client refused: too many clients (--max-clients; this is logged once every 10 s)")
			}
			continue
		}
		go s.serveConn(c) // owned by s.connWG: Shutdown waits for it
	}
}

// track admits c unless the supervisor is draining or serves MaxClients
// connections already.
func (s *Supervisor) track(c *ipc.Conn) *protocol.Error {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	if s.draining.Load() {
		return protocol.Errorf(protocol.CodeShuttingDown, "the supervisor is shutting down")
	}
	if len(s.conns) >= s.cfg.MaxClients {
		return protocol.Errorf(protocol.CodeTooManyClients, "the supervisor serves %d clients, its limit (--max-clients); try again later", s.cfg.MaxClients)
	}
	s.conns[c] = struct{}{}
	s.connWG.Add(1)
	return nil
}

// serveConn serves one client until it goes away or the drain ends.
// Executes run concurrently (a client may pipeline many); Get and Status
// are answered in order. A malformed or oversized frame disconnects the
// client.
func (s *Supervisor) serveConn(c *ipc.Conn) {
	defer s.connWG.Done()
	cctx, cancel := context.WithCancel(s.base)
	defer cancel()
	// The executes' timeouts list themselves in the connection's Scope,
	// which ends them with it: no registration on cctx per execute.
	sc := s.wheel.Scope(cctx)
	defer sc.Close()
	cn := &clientConn{ctx: sc, end: cancel, c: c, slots: make(chan struct{}, s.cfg.MaxPerClient), cs: &connStreams{streams: map[uint64]context.CancelFunc{}},
		labels: golabel.Of(golabel.Conn, int(s.connSeq.Add(1)))}
	cn.labels.Set()
	cn.read = func() {
		defer cn.wg.Done()
		s.readConn(cn)
	}
	wg := &cn.wg
	wg.Add(1)
	go cn.read()
	<-sc.Done() // canceled by the reader that sees the end, or by the drain's end
	if s.base.Err() != nil {
		// The drain is over: stop reading, let what was read be answered
		// (executes, canceled, answer shutting_down), then tell the
		// client why the connection ends, so that what it sent since fails
		// with shutting_down rather than EOF.
		c.CloseRead()
		wg.Wait()
		c.Send(&protocol.Refuse{Err: protocol.Error{Code: protocol.CodeShuttingDown, Message: "the supervisor is shutting down; requests without a reply were not run"}})
	}
	c.Close() // unblocks the reader and the writers
	wg.Wait()
	s.connMu.Lock()
	delete(s.conns, c)
	s.connMu.Unlock()
}

// clientConn is what the readers of one client connection share (each
// Execute hands the reading to the next reader).
type clientConn struct {
	ctx   context.Context // the connection's Scope: ends its executes with it
	end   context.CancelFunc
	c     *ipc.Conn
	wg    sync.WaitGroup // the readers and the requests they started
	slots chan struct{}  // a token per request in flight (MaxPerClient)
	cs    *connStreams
	read  func() // a reader: made once per connection, not once per Execute
	// labels name the connection's goroutines in profiles: serveConn's,
	// the readers it starts, and the tasks kept goroutines run for it
	// (gopool.GoAs).
	labels golabel.Labels
	// wakes are the workers the reader sent dispatches to without waking
	// them (continue.go); it wakes them before it may wait. The reader's.
	wakes pool.Wakes
}

// readConn reads requests. An Execute takes the continuation path when
// it can (startExecute: the reader sends its Dispatch and reads on, and
// no goroutine waits for the worker); otherwise the reader hands the
// reading to another goroutine (a kept one, s.gos) and runs the Execute
// itself, so that it starts at once on this thread instead of waiting
// for another to pick it up. When the connection ends it cancels ctx,
// which stops the client's executes. Once ctx ends, or a reply cannot be
// written (the client is gone), requests already read from the socket
// are dropped, not computed.
func (s *Supervisor) readConn(cn *clientConn) {
	ctx, end, c, wg, slots := cn.ctx, cn.end, cn.c, &cn.wg, cn.slots
	// The reads wait in the netpoller, holding no thread, and an idle
	// connection holds no read buffer either (ipc/park.go). Serve
	// handles the requests inside that wait (ipc/serve.go); before it
	// may wait, it wakes the workers this reader sent dispatches to
	// (once each for the batch of frames it read).
	var handOff *protocol.Execute
	done := false // the connection ends: the client is gone, or sent what ends it
	err := c.Serve(func(m protocol.Message) bool {
		if ctx.Err() != nil {
			done = true
			return false
		}
		handOff, done = s.handle(cn, m)
		return handOff == nil && !done
	}, cn.wakes.Wake)
	cn.wakes.Wake()
	if handOff == nil {
		if err != nil {
			s.recvFailed(ctx, c, err)
		}
		end()
		return
	}
	// An Execute off the continuation path: the reader hands the reading
	// to another goroutine (a kept one, s.gos) and runs it itself, so
	// that it starts at once on this thread instead of waiting for
	// another to pick it up.
	wg.Add(1)
	s.gos.GoAs(cn.labels, cn.read)
	s.serveExecute(ctx, end, c, handOff, slots)
	<-slots
}

// handle handles m, a request read on cn's connection, on its reader. It
// returns an Execute that the reader must run itself, having handed the
// reading on, or whether the connection ends (done): the client is
// gone, or sent what a client must not.
func (s *Supervisor) handle(cn *clientConn, m protocol.Message) (handOff *protocol.Execute, done bool) {
	ctx, c, wg, slots, cs := cn.ctx, cn.c, &cn.wg, cn.slots, cn.cs
	if _, ok := m.(*protocol.Execute); !ok {
		cn.wakes.Wake() // what follows may wait (a reply's write)
	}
	var err error
	switch m := m.(type) {
	case *protocol.Execute:
		// At MaxPerClient executes in flight, stop reading this client
		// until one ends: its writes back up, which is its backpressure.
		select {
		case slots <- struct{}{}:
		default:
			cn.wakes.Wake() // the executes that would free a slot may not have woken their workers
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return nil, true
			}
		}
		if s.startExecute(cn, m) {
			return nil, false // no goroutine waits for it (continue.go)
		}
		return m, false
	case *protocol.Get:
		err = reply(c, s.Get(m))
	case *protocol.Status:
		err = reply(c, s.Status(m))
	case *protocol.Backup:
		wg.Go(func() { reply(c, s.Backup(ctx, m)) }) // seconds for a large store: the connection goes on meanwhile
	case *protocol.Ping:
		err = c.Send((*protocol.Pong)(m))
	case *protocol.Call:
		// A call may wait long (flux.run waits for its run): the
		// connection goes on meanwhile.
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return nil, true
		}
		wg.Go(func() {
			defer func() { <-slots }()
			s.serveCall(ctx, c, m)
		})
	case *protocol.Subscribe:
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return nil, true
		}
		sctx, cancel := context.WithCancel(ctx)
		if !cs.open(m.ID, cancel) { // before the next message: it may be its Unsubscribe
			// An End for this id would end the open stream too, in the
			// client's eyes, while its Events go on: a protocol error.
			cancel()
			<-slots
			s.cfg.Log.Warn().Uint64("stream", m.ID).Msg("client disconnected: Subscribe with the id of an open stream")
			c.Send(&protocol.Refuse{Err: *protocol.Errorf(protocol.CodeBadRequest, "stream %d is open already", m.ID)})
			return nil, true
		}
		wg.Go(func() {
			defer func() { <-slots }()
			defer cancel()
			s.serveStream(sctx, c, cs, m)
		})
	case *protocol.Unsubscribe:
		cs.unsubscribe(m.ID)
	default:
		s.cfg.Log.Warn().Stringer("kind", m.Kind()).Msg("client disconnected: unexpected message")
		return nil, true
	}
	// An error means the client is gone: what it sent before going is
	// not computed.
	return nil, err != nil
}

// serveExecute runs an Execute and replies. It counts as in flight until
// the reply is written, so that a drain waits for the reply, not only
// for the commit.
// slots holds a token for each of the connection's requests in flight,
// this one's included: with others in flight, the reply may share a
// write with theirs (ipc.Conn.Coalesce).
func (s *Supervisor) serveExecute(ctx context.Context, end context.CancelFunc, c *ipc.Conn, m *protocol.Execute, slots chan struct{}) {
	if !s.enter() {
		reply(c, s.shuttingDown(m))
		return
	}
	defer s.inflight.Done()
	rep := s.execute(ctx, m)
	send := c.Send
	if len(slots) > 1 {
		send = c.Coalesce
	}
	if err := replyWith(send, rep); err != nil {
		end() // the client is gone: stop its other executes and its reader
	}
}

// recvFailed logs why a client's connection ended, unless it ended
// normally, and tells a client that stalled inside a frame why.
func (s *Supervisor) recvFailed(ctx context.Context, c *ipc.Conn, err error) {
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), errors.Is(err, ipc.ErrClosed), ctx.Err() != nil:
	case errors.Is(err, ipc.ErrFrameTimeout):
		s.cfg.Log.Warn().Err(err).Msg("client disconnected: frame incomplete past --frame-timeout")
		c.Send(&protocol.Refuse{Err: protocol.Error{Code: protocol.CodeTimeout, Message: err.Error()}})
	default:
		s.cfg.Log.Warn().Err(err).Msg("client disconnected: bad input")
	}
}

// reply sends m, or, if it does not fit a frame, an error reply with the
// same id, so the client never waits for an answer that cannot come. An
// error means the client is gone.
func reply(c *ipc.Conn, m protocol.Message) error { return replyWith(c.Send, m) }

// replyWith is reply through send (a Conn's Send or Coalesce).
func replyWith(send func(protocol.Message) error, m protocol.Message) error {
	err := send(m)
	if !errors.Is(err, protocol.ErrFrameTooLarge) {
		return err // nil, or the client is gone
	}
	e := protocol.Errorf(protocol.CodeBadRequest, "the reply does not fit a frame: %v (raise --max-frame, or read a smaller subtree)", err)
	switch m := m.(type) {
	case *protocol.Reply:
		if m.Err == nil && m.Version > 0 {
			e.Message = fmt.Sprintf("committed at version %d, but %s", m.Version, e.Message)
		}
		return send(&protocol.Reply{ID: m.ID, Version: m.Version, Attempts: m.Attempts, Conflicts: m.Conflicts, VIP: m.VIP, Err: e, Mode: m.Mode})
	case *protocol.GetReply:
		return send(&protocol.GetReply{ID: m.ID, Err: e})
	case *protocol.StatusReply:
		return send(&protocol.StatusReply{ID: m.ID, Err: e})
	case *protocol.BackupReply:
		return send(&protocol.BackupReply{ID: m.ID, Err: e})
	case *protocol.CallReply:
		return send(&protocol.CallReply{ID: m.ID, Err: e})
	}
	return err
}
