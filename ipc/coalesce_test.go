package ipc

import (
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/theus-run/theus/protocol"
)

// countWrites is a net.Conn that counts its writes.
type countWrites struct {
	net.Conn
	n atomic.Int64
}

func (w *countWrites) Write(b []byte) (int, error) {
	w.n.Add(1)
	return w.Conn.Write(b)
}

// TestCoalesceSharesWrites: senders that become runnable together and
// send with Coalesce share one write (with Send, each would write its
// own: on one processor the first writes before the next runs), every
// frame arrives once and in full, and a lone Coalesce writes at once.
func TestCoalesceSharesWrites(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	local, remote, err := Pair()
	if err != nil {
		t.Fatal(err)
	}
	nc, err := net.FileConn(local)
	local.Close()
	if err != nil {
		t.Fatal(err)
	}
	cw := &countWrites{Conn: nc}
	c := NewConn(cw, Options{})
	defer c.Close()
	defer remote.Close()
	got := make(chan int, 1)
	go func() { got <- countPings(t, remote) }()

	const senders = 16
	start := make(chan struct{})
	var ready, done sync.WaitGroup
	for i := range senders {
		ready.Add(1)
		done.Go(func() {
			ready.Done()
			<-start
			if err := c.Coalesce(&protocol.Ping{Seq: uint64(i)}); err != nil {
				t.Error(err)
			}
		})
	}
	ready.Wait()
	close(start)
	done.Wait()
	if n := cw.n.Load(); n > 2 {
		t.Fatalf("%d senders made runnable together: %d writes, want 1 (2 at most)", senders, n)
	}
	// A lone sender: nothing else runs, the write is at once.
	before := cw.n.Load()
	if err := c.Coalesce(&protocol.Ping{Seq: senders}); err != nil {
		t.Fatal(err)
	}
	if cw.n.Load() != before+1 {
		t.Fatalf("a lone Coalesce did not write before returning")
	}
	c.Close()
	if n := <-got; n != senders+1 {
		t.Fatalf("the peer read %d pings, want %d", n, senders+1)
	}
}

// countPings reads frames from r until it ends and counts the Pings.
func countPings(t *testing.T, r *os.File) int {
	fr := protocol.NewReader(r, protocol.DefaultMaxFrame)
	n := 0
	for {
		k, size, err := fr.Header()
		if err != nil { // io.EOF once the Conn is closed
			return n
		}
		body := make([]byte, size)
		if err := fr.Body(body); err != nil {
			t.Error(err)
			return n
		}
		if _, err := protocol.Decode(k, body); err != nil {
			t.Error(err)
			return n
		}
		n++
	}
}
