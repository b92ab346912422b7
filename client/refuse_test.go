package client

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/theus-run/theus/protocol"
)

// TestReplyBeforeTheEndIsKept: a supervisor that answers a request and
// then refuses and closes (as a drain does) while the request's write
// is still going on: the write fails, yet the reply came first, so the
// request ran and its caller gets the reply, not "not run".
func TestReplyBeforeTheEndIsKept(t *testing.T) {
	ln, path := listenUnix(t)
	defer ln.Close()
	served := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			served <- err
			return
		}
		defer c.Close()
		// Read the start of the request only (its id is 1, a new
		// connection's first): the rest keeps the client's write waiting
		// on a full socket buffer.
		if _, err := io.ReadFull(c, make([]byte, 4096)); err != nil {
			served <- err
			return
		}
		var out []byte
		for _, m := range []protocol.Message{
			&protocol.Reply{ID: 1, Result: []byte(`{"ok":true}`)},
			&protocol.Refuse{Err: *protocol.Errorf(protocol.CodeShuttingDown, "the supervisor is shutting down")},
		} {
			if out, err = protocol.AppendFrame(out, m); err != nil {
				served <- err
				return
			}
		}
		if _, err := c.Write(out); err != nil {
			served <- err
			return
		}
		time.Sleep(200 * time.Millisecond) // the client reads the reply and the Refuse, its write still waiting
		io.Copy(io.Discard, c)             // until the client closes
		served <- nil
	}()
	c, err := Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	big := `"` + strings.Repeat("x", 8<<20) + `"` // far more than a socket buffer
	res, err := c.Exec(context.Background(), "noop", []byte(big))
	if err != nil {
		t.Fatalf("a request the supervisor answered before it closed: %v, want its reply", err)
	}
	if string(res.Result) != `{"ok":true}` {
		t.Fatalf("result %s, want the reply's", res.Result)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
}

// TestCloseDoesNotWaitForAStream: a stream whose reader takes nothing
// fills its buffer and holds the connection's reader; Close still
// returns, and the stream ends with ErrClosed after the items it holds.
func TestCloseDoesNotWaitForAStream(t *testing.T) {
	ln, path := listenUnix(t)
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		if _, err := protocol.NewReader(c, 0).ReadMessage(); err != nil { // the Subscribe: id 1
			return
		}
		var out []byte
		for range StreamBuffer + 100 {
			out, _ = protocol.AppendFrame(out, &protocol.Event{ID: 1, Body: []byte(`1`)})
		}
		c.Write(out)
		io.Copy(io.Discard, c) // until the client closes
	}()
	c, err := Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	st := subscribe(t, c)
	waitFull(t, st)
	closed := make(chan struct{})
	go func() { c.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(30 * time.Second):
		t.Fatal("Close waited for a stream whose reader takes nothing")
	}
	n := 0
	for range st.Items() {
		n++
	}
	if n != StreamBuffer {
		t.Errorf("the stream gave %d items after Close, want the %d it held", n, StreamBuffer)
	}
	if !errors.Is(st.Err(), ErrClosed) {
		t.Errorf("stream error %v, want ErrClosed", st.Err())
	}
}

// TestNextRequestAfterKeptReply: after a request got the reply that came
// before its connection's end (TestReplyBeforeTheEndIsKept), the next
// request dials again and is served, not failed with the ended
// connection's error.
func TestNextRequestAfterKeptReply(t *testing.T) {
	ln, path := listenUnix(t)
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		io.ReadFull(c, make([]byte, 4096))
		var out []byte
		out, _ = protocol.AppendFrame(out, &protocol.Reply{ID: 1, Result: []byte(`{"ok":true}`)})
		out, _ = protocol.AppendFrame(out, &protocol.Refuse{Err: *protocol.Errorf(protocol.CodeShuttingDown, "the supervisor is shutting down")})
		c.Write(out)
		time.Sleep(200 * time.Millisecond)
		io.Copy(io.Discard, c)
		c.Close()
		// the next connection: a supervisor that serves
		c2, err := ln.Accept()
		if err != nil {
			return
		}
		defer c2.Close()
		r := protocol.NewReader(c2, 0)
		for {
			m, err := r.ReadMessage()
			if err != nil {
				return
			}
			if x, ok := m.(*protocol.Execute); ok {
				b, _ := protocol.AppendFrame(nil, &protocol.Reply{ID: x.ID, Result: []byte(`2`)})
				c2.Write(b)
			}
		}
	}()
	c, err := Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	big := `"` + strings.Repeat("x", 8<<20) + `"`
	if _, err := c.Exec(context.Background(), "noop", []byte(big)); err != nil {
		t.Fatalf("first: %v", err)
	}
	res, err := c.Exec(context.Background(), "noop", nil)
	if err != nil {
		t.Errorf("the request after a kept reply was not sent: %v", err)
	} else {
		t.Logf("second: %s", res.Result)
	}
}
