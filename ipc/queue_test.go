package ipc

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"github.com/theus-run/theus/protocol"
)

// TestQueueFlushNoWait: Queue writes nothing; FlushNoWait writes what
// the socket takes, never waits, and leaves the rest at the head of the
// queue when the peer does not read, so that a Flush (or the next Send)
// finishes it with every frame whole and in order.
func TestQueueFlushNoWait(t *testing.T) {
	c, peer := acceptPair(t, Options{})
	if err := c.Queue(&protocol.Ping{Seq: 1}); err != nil {
		t.Fatal(err)
	}
	peer.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if n, err := peer.Read(make([]byte, 64)); err == nil {
		t.Fatalf("Queue wrote %d bytes", n)
	}
	peer.SetReadDeadline(time.Time{})
	if done, err := c.FlushNoWait(); !done || err != nil {
		t.Fatalf("FlushNoWait on an empty socket: %v, %v", done, err)
	}
	var want bytes.Buffer
	want.Write(frameOf(t, &protocol.Ping{Seq: 1}))
	readN(t, peer, want.Bytes())

	// The peer stops reading: queue far more than the socket buffers.
	want.Reset()
	big := &protocol.Reply{Result: bytes.Repeat([]byte{'7'}, 60<<10)}
	leftover := false
	for i := range 64 {
		big.ID = uint64(i)
		if err := c.Queue(big); err != nil {
			t.Fatal(err)
		}
		want.Write(frameOf(t, big))
		start := time.Now()
		done, err := c.FlushNoWait()
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("FlushNoWait took %v", d)
		}
		if !done {
			leftover = true
			break
		}
	}
	if !leftover {
		t.Fatal("4 MiB went into a socket that nobody reads")
	}
	// The next sender goes after what is left.
	if err := c.Queue(&protocol.Ping{Seq: 99}); err != nil {
		t.Fatal(err)
	}
	want.Write(frameOf(t, &protocol.Ping{Seq: 99}))
	read := make(chan error, 1)
	go func() { read <- readExact(peer, want.Bytes()) }()
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := <-read; err != nil {
		t.Fatal(err)
	}
}

// readN reads len(want) bytes from peer and compares them.
func readN(t *testing.T, peer net.Conn, want []byte) {
	t.Helper()
	if err := readExact(peer, want); err != nil {
		t.Fatal(err)
	}
}

func readExact(peer net.Conn, want []byte) error {
	got := make([]byte, len(want))
	peer.SetReadDeadline(time.Now().Add(30 * time.Second))
	defer peer.SetReadDeadline(time.Time{})
	if _, err := io.ReadFull(peer, got); err != nil {
		return err
	}
	if !bytes.Equal(got, want) {
		return errMismatch
	}
	return nil
}

var errMismatch = io.ErrUnexpectedEOF

// TestRecvLeavesQueuedFrames: a Recv that Buffered said returns at once
// does, even with replies queued for a peer that does not read: the
// queue is its owner's to flush (FlushNoWait, Flush), never Recv's.
func TestRecvLeavesQueuedFrames(t *testing.T) {
	c, peer := acceptPair(t, Options{WriteTimeout: time.Minute})
	big := &protocol.Reply{Result: bytes.Repeat([]byte{'7'}, 60<<10)}
	for {
		if err := c.Queue(big); err != nil {
			t.Fatal(err)
		}
		done, err := c.FlushNoWait()
		if err != nil {
			t.Fatal(err)
		}
		if !done {
			break // the socket is full and nobody writes: left queued
		}
	}
	var two []byte
	two = append(two, frameOf(t, &protocol.Ping{Seq: 1})...)
	two = append(two, frameOf(t, &protocol.Ping{Seq: 2})...)
	if _, err := peer.Write(two); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Recv(); err != nil {
		t.Fatal(err)
	}
	if !c.Buffered() {
		t.Fatal("the second frame is not buffered")
	}
	got := make(chan error, 1)
	go func() {
		_, err := c.Recv()
		got <- err
	}()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second): // far below the write timeout it would wait out
		c.Close()
		t.Fatal("Recv of a buffered frame waited: it wrote the queue to a peer that does not read")
	}
}
