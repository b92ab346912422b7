package ipc

import (
	"errors"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/theus-run/theus/protocol"
)

// TestDeferBatchesReplies: replies given to Defer while frames the reader
// has read wait in its buffer go out in one write once the reader has
// returned them all, never before and never later; a lone request's reply
// is written at once. Both transports.
func TestDeferBatchesReplies(t *testing.T) {
	for _, blocking := range []bool{true, false} {
		c, peer := pairConns(t, Options{Blocking: blocking})
		const n = 10
		var batch []byte
		for i := range n {
			var err error
			if batch, err = protocol.AppendFrame(batch, &protocol.Ping{Seq: uint64(i)}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := peer.Write(batch); err != nil { // one write: the reader gets all ten at once
			t.Fatal(err)
		}
		for i := range n {
			m, err := c.Recv()
			if err != nil {
				t.Fatal(err)
			}
			if i == n-1 {
				// The buffer is drained: the nine deferred replies are out,
				// in one write, before the reader could block again.
				if got := pongs(t, peer); got != n-1 {
					t.Fatalf("blocking=%v: %d replies written once the buffer was drained, want %d", blocking, got, n-1)
				}
			} else if got := pongs(t, peer); got != 0 {
				t.Fatalf("blocking=%v: %d replies written while %d requests wait in the buffer", blocking, got, n-1-i)
			}
			if err := c.Defer((*protocol.Pong)(m.(*protocol.Ping))); err != nil {
				t.Fatal(err)
			}
		}
		if got := pongs(t, peer); got != 1 { // the last one: nothing buffered, written at once
			t.Fatalf("blocking=%v: the last reply: %d written, want 1", blocking, got)
		}
		// A lone request: its reply is written at once.
		if _, err := peer.Write(batch[:len(batch)/n]); err != nil {
			t.Fatal(err)
		}
		m, err := c.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Defer((*protocol.Pong)(m.(*protocol.Ping))); err != nil {
			t.Fatal(err)
		}
		if got := pongs(t, peer); got != 1 {
			t.Fatalf("blocking=%v: a lone request's reply: %d written, want 1", blocking, got)
		}
	}
}

// pongs reads what the peer can read now, waiting briefly for a write in
// flight, and counts the Pong frames in it.
func pongs(t *testing.T, peer *os.File) int {
	t.Helper()
	fd := int(peer.Fd())
	buf := make([]byte, 1<<16)
	var got []byte
	deadline := time.Now().Add(50 * time.Millisecond)
	for time.Now().Before(deadline) {
		k, _, err := unix.Recvfrom(fd, buf, unix.MSG_DONTWAIT)
		if errors.Is(err, unix.EAGAIN) {
			time.Sleep(time.Millisecond)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, buf[:k]...)
	}
	frames := 0
	for len(got) >= 4 {
		size := int(got[0])<<24 | int(got[1])<<16 | int(got[2])<<8 | int(got[3])
		if len(got) < 4+size {
			t.Fatalf("a partial frame: %d of %d bytes", len(got)-4, size)
		}
		got = got[4+size:]
		frames++
	}
	return frames
}
