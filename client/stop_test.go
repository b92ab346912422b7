package client

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/theus-run/theus/protocol"
)

// fakeShutRead serves one connection: it reads the Subscribe (id 1),
// shuts its reading side (as the supervisor's drain does with
// ipc.Conn.CloseRead, so that the client's next write fails with EPIPE
// while the client's reader still reads), signals ready, waits for go,
// then sends n numbered Events and a normal End (nil Err), waits a
// little and closes.
func fakeShutRead(t *testing.T, ln net.Listener, n int, ready, goOn chan struct{}) {
	c, err := ln.Accept()
	if err != nil {
		return
	}
	defer c.Close()
	if _, err := protocol.NewReader(c, 0).ReadMessage(); err != nil {
		return
	}
	c.(*net.UnixConn).CloseRead()
	close(ready)
	<-goOn
	var out []byte
	for i := 1; i <= n; i++ {
		out, _ = protocol.AppendFrame(out, &protocol.Event{ID: 1, Body: []byte(strconv.Itoa(i))})
	}
	out, _ = protocol.AppendFrame(out, &protocol.Event{ID: 1, End: true})
	c.Write(out)
	time.Sleep(500 * time.Millisecond)
}

// TestGivenUpStreamFailsNotEnds: a stream whose buffer is full when a
// request's write fails with EPIPE (the peer shut its reading side, its
// writes go on) loses the item the reader held: it then ends with an
// error, never normally (a nil Err after a gap), though the supervisor's
// normal End follows.
func TestGivenUpStreamFailsNotEnds(t *testing.T) {
	ln, path := listenUnix(t)
	defer ln.Close()
	ready, goOn := make(chan struct{}), make(chan struct{})
	const n = StreamBuffer + 100
	go fakeShutRead(t, ln, n, ready, goOn)
	c, err := Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	st := subscribe(t, c)
	<-ready
	close(goOn)
	waitFull(t, st)
	time.Sleep(50 * time.Millisecond)                    // the reader is held on item StreamBuffer+1
	_, xerr := c.Exec(context.Background(), "noop", nil) // its write fails: EPIPE
	got := 0
	for range st.Items() {
		got++
	}
	t.Logf("Exec: %v; items %d of %d sent; Stream.Err %v", xerr, got, n, st.Err())
	if st.Err() == nil && got != n {
		t.Errorf("the stream ended normally (Err nil) yet gave %d of the %d items the supervisor sent", got, n)
	}
}

// TestGivenUpSessionKeepsStreamsWithRoom: stream 1's full buffer holds
// the reader while stream 2's 200 items and its normal End wait in the
// socket; a request's write then fails with EPIPE and the session is
// given up. Stream 2, never full, gets every item in order: an item is
// dropped only where a stream's buffer is full.
func TestGivenUpSessionKeepsStreamsWithRoom(t *testing.T) {
	ln, path := listenUnix(t)
	defer ln.Close()
	const n = 200 // far below StreamBuffer: stream 2 is never full
	ready := make(chan struct{})
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := protocol.NewReader(c, 0)
		for range 2 { // Subscribe 1 and 2
			if _, err := r.ReadMessage(); err != nil {
				return
			}
		}
		var out []byte
		for range StreamBuffer + 1 { // fills stream 1 and holds the reader
			out, _ = protocol.AppendFrame(out, &protocol.Event{ID: 1, Body: []byte("0")})
		}
		for i := 1; i <= n; i++ {
			out, _ = protocol.AppendFrame(out, &protocol.Event{ID: 2, Body: []byte(strconv.Itoa(i))})
		}
		out, _ = protocol.AppendFrame(out, &protocol.Event{ID: 2, End: true})
		c.Write(out)
		c.(*net.UnixConn).CloseRead()
		close(ready)
		time.Sleep(500 * time.Millisecond)
	}()
	c, err := Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	st1 := subscribe(t, c)
	st2 := subscribe(t, c)
	<-ready
	waitFull(t, st1)
	time.Sleep(50 * time.Millisecond)
	_, xerr := c.Exec(context.Background(), "noop", nil) // EPIPE: stop()
	var seen []int
	for b := range st2.Items() {
		var v int
		json.Unmarshal(b, &v)
		seen = append(seen, v)
	}
	t.Logf("Exec: %v; stream 2 gave %d of %d items, Err %v", xerr, len(seen), n, st2.Err())
	gap := -1
	for i, v := range seen {
		if v != i+1 {
			gap = i + 1
			break
		}
	}
	if gap > 0 || (len(seen) != n && st2.Err() == nil) {
		t.Errorf("stream 2 (never full) lost items: got %d of %d, first gap at item %d, Err %v", len(seen), n, gap, st2.Err())
	}
}

// TestCloseFailsAFullStream: Close gives the session up before it
// closes the connection; the reader, held on a full stream, drops its
// item and may read once more before the close: a buffered End (nil
// Err) for that stream must not then end it normally after the drop.
func TestCloseFailsAFullStream(t *testing.T) {
	bad := 0
	const tries = 300
	for range tries {
		ln, path := listenUnix(t)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			if _, err := protocol.NewReader(c, 0).ReadMessage(); err != nil {
				return
			}
			var out []byte
			for range StreamBuffer + 1 {
				out, _ = protocol.AppendFrame(out, &protocol.Event{ID: 1, Body: []byte(`1`)})
			}
			out, _ = protocol.AppendFrame(out, &protocol.Event{ID: 1, End: true})
			c.Write(out)
			io.Copy(io.Discard, c)
		}()
		c, err := Dial(path)
		if err != nil {
			t.Fatal(err)
		}
		st := subscribe(t, c)
		waitFull(t, st)
		time.Sleep(time.Millisecond)
		c.Close()
		n := 0
		for range st.Items() {
			n++
		}
		if st.Err() == nil && n != StreamBuffer+1 {
			bad++
		}
		ln.Close()
	}
	if bad > 0 {
		t.Errorf("%d of %d: Close dropped an item, then the stream ended normally (Err nil)", bad, tries)
	}
}

// subscribe opens a stream on c (a fake supervisor's: any name does).
func subscribe(t *testing.T, c *Client) *Stream {
	t.Helper()
	st, err := c.Subscribe(context.Background(), "anything", nil)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// waitFull waits until st holds StreamBuffer items: the connection's
// reader is then held on the next.
func waitFull(t *testing.T, st *Stream) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); len(st.Items()) < StreamBuffer; time.Sleep(100 * time.Microsecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the stream holds %d items, want a full buffer", len(st.Items()))
		}
	}
}
