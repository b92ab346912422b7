package client

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"
)

// TestWriteToAPeerThatStoppedReading: a request whose write fails while
// the reader has nothing to wake it (the supervisor stopped reading but
// did not close, so no end and no Refuse reach the reader) returns the
// write's error: the failed write shuts the reading side, which ends
// the reader (it waited for ever before).
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
	if !errors.Is(err, ErrClosed) {
		t.Fatalf("err = %v, want ErrClosed with the write's error", err)
	}
}
