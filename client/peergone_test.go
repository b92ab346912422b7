package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/theus-run/theus/protocol"
)

// TestWriteToAPeerThatStoppedReading: a request whose write fails while
// the reader has nothing to wake it (the supervisor stopped reading but
// did not close, so no end and no Refuse reach the reader) returns
// ErrClosed: once endGrace passed, the client shuts its reading side,
// which ends the reader (it waited for ever before).
func TestWriteToAPeerThatStoppedReading(t *testing.T) {
	ln, path := listenUnix(t)
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.(*net.UnixConn).CloseRead() // the client's writes fail from now on
		accepted <- c
	}()
	c, err := Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var server net.Conn
	select {
	case server = <-accepted:
	case <-time.After(30 * time.Second):
		t.Fatal("the fake supervisor did not accept")
	}
	defer server.Close()
	done := make(chan error, 1)
	go func() {
		_, err := c.Do(context.Background(), Request{Process: "noop", RetryFor: -1})
		done <- err
	}()
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("a request whose write failed waited 30s for a reader that nothing wakes")
	}
	if !errors.Is(err, ErrClosed) || !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("err = %v, want ErrClosed with the write's error (EPIPE)", err)
	}
}

// TestSupervisorGoesAfterAReply: a supervisor that answers one request
// and closes with another in flight (its end coming with the reply)
// fails that other request with ErrClosed, not when its context ends.
func TestSupervisorGoesAfterAReply(t *testing.T) {
	ln, path := listenUnix(t)
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		r := protocol.NewReader(c, 0)
		for range 2 {
			if _, err := r.ReadMessage(); err != nil {
				return
			}
		}
		out, _ := protocol.AppendFrame(nil, &protocol.Reply{ID: 1, Result: []byte(`1`)})
		c.Write(out)
		c.Close()
	}()
	c, err := Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errs := make(chan error, 2)
	go func() { _, err := c.Do(ctx, Request{Process: "one", RetryFor: -1}); errs <- err }()
	time.Sleep(50 * time.Millisecond)
	go func() { _, err := c.Do(ctx, Request{Process: "two", RetryFor: -1}); errs <- err }()
	failed := 0
	for range 2 {
		switch err := <-errs; {
		case err == nil:
		case errors.Is(err, ErrClosed):
			failed++
		default:
			t.Fatalf("a request: %v, want its reply or ErrClosed", err)
		}
	}
	if failed != 1 {
		t.Fatalf("%d requests failed, want 1 (the one in flight when the supervisor went)", failed)
	}
}

// TestDrainAnswersRequestsInFlight: a supervisor that drains stops
// reading, answers the requests it read, then sends a Refuse and
// closes. A request the client sends meanwhile fails to write; the
// requests in flight still get their replies, and the failed one gets
// the Refuse's shutting_down. (Before, the failed write shut the
// client's reading side, so the supervisor's last replies could not be
// written and the requests in flight failed with the broken pipe.)
func TestDrainAnswersRequestsInFlight(t *testing.T) {
	ln, path := listenUnix(t)
	defer ln.Close()
	stopped, answer := make(chan struct{}), make(chan struct{})
	served := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			served <- err
			return
		}
		defer c.Close()
		m, err := protocol.NewReader(c, 0).ReadMessage()
		if err != nil {
			served <- err
			return
		}
		x, ok := m.(*protocol.Execute)
		if !ok {
			served <- fmt.Errorf("got %s, want an Execute", m.Kind())
			return
		}
		c.(*net.UnixConn).CloseRead() // the drain: the client's writes fail from now on
		close(stopped)
		<-answer
		var out []byte
		out, _ = protocol.AppendFrame(out, &protocol.Reply{ID: x.ID, Result: []byte(`"first"`)})
		out, _ = protocol.AppendFrame(out, &protocol.Refuse{Err: *protocol.Errorf(protocol.CodeShuttingDown, "the supervisor is shutting down")})
		_, err = c.Write(out)
		served <- err
	}()
	c, err := Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	first := make(chan error, 1)
	go func() {
		res, err := c.Do(ctx, Request{Process: "first", RetryFor: -1})
		if err == nil && string(res.Result) != `"first"` {
			err = fmt.Errorf("result %s", res.Result)
		}
		first <- err
	}()
	<-stopped
	second := make(chan error, 1)
	go func() { _, err := c.Do(ctx, Request{Process: "second", RetryFor: -1}); second <- err }()
	time.Sleep(300 * time.Millisecond) // the second's write fails meanwhile
	close(answer)
	if err := <-served; err != nil {
		t.Fatalf("the supervisor's last replies: %v", err)
	}
	if err := <-first; err != nil {
		t.Fatalf("the request in flight: %v, want its reply", err)
	}
	err = <-second
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != protocol.CodeShuttingDown || !errors.Is(err, ErrClosed) {
		t.Fatalf("the request sent during the drain: %v, want ErrClosed with shutting_down", err)
	}
}

// stopReading accepts one connection on ln and shuts its reading side at
// once: the client's writes fail from then on. It returns the server's
// end, closed at the test's end.
func stopReading(t *testing.T, ln net.Listener) <-chan net.Conn {
	t.Helper()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		c.(*net.UnixConn).CloseRead()
		t.Cleanup(func() { c.Close() })
		accepted <- c
	}()
	return accepted
}

// dialStopped dials a fake supervisor that stopped reading at once
// (stopReading), and returns the client, the listener (for later
// connections) and the supervisor's end; all are closed at the test's
// end.
func dialStopped(t *testing.T) (*Client, net.Listener, net.Conn) {
	t.Helper()
	ln, path := listenUnix(t)
	t.Cleanup(func() { ln.Close() })
	accepted := stopReading(t, ln)
	c, err := Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	server, ok := <-accepted
	if !ok {
		t.Fatal("the fake supervisor did not accept")
	}
	return c, ln, server
}

// TestFailedSendHonorsContext: a request whose send failed while the
// supervisor stopped reading and does not close waits for the
// connection's end only as long as its context lets it.
func TestFailedSendHonorsContext(t *testing.T) {
	c, _, _ := dialStopped(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.Do(ctx, Request{Process: "noop", RetryFor: -1}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the context's deadline (the connection's end comes %v later)", err, endGrace)
	}
}

// TestCloseEndsRetiredSessions: Close also ends a connection that a
// failed send retired, whose reader still waits for a drain's last
// replies, once a later request dialed a new one.
func TestCloseEndsRetiredSessions(t *testing.T) {
	c, ln, _ := dialStopped(t)
	old := c.s
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	c.Do(ctx, Request{Process: "noop", RetryFor: -1}) // fails its send: old is retired
	second := stopReading(t, ln)
	if _, err := c.session(); err != nil { // what the next request does: dial again
		t.Fatal(err)
	}
	<-second
	if old.ended() {
		t.Skip("the retired connection ended before Close: nothing to check")
	}
	c.Close()
	if !old.ended() {
		t.Fatal("Close returned with a retired connection's reader still running")
	}
}

// TestSubscribeGetsTheRefuse: a Subscribe whose send failed during a
// drain returns the Refuse the supervisor sent before it closed.
func TestSubscribeGetsTheRefuse(t *testing.T) {
	c, _, server := dialStopped(t)
	go func() {
		time.Sleep(200 * time.Millisecond) // the Subscribe's send fails meanwhile
		out, _ := protocol.AppendFrame(nil, &protocol.Refuse{Err: *protocol.Errorf(protocol.CodeShuttingDown, "the supervisor is shutting down")})
		server.Write(out)
		server.Close()
	}()
	_, err := c.Subscribe(context.Background(), protocol.StreamLog, nil)
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != protocol.CodeShuttingDown || !errors.Is(err, ErrClosed) {
		t.Fatalf("Subscribe: %v, want ErrClosed with shutting_down", err)
	}
}
