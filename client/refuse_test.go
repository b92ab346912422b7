package client

import (
	"context"
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
