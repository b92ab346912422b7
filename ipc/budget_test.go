package ipc

import (
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/theus-run/theus/protocol"
)

func TestBudgetFIFO(t *testing.T) {
	b := NewBudget(10)
	if err := b.acquire(6, time.Time{}, nil); err != nil {
		t.Fatal(err)
	}
	big := make(chan error, 1)
	go func() { big <- b.acquire(8, time.Time{}, nil) }()
	for b.Waiting() != 1 {
		time.Sleep(time.Millisecond)
	}
	// 3 bytes fit, but an older waiter is first in line.
	if err := b.acquire(3, time.Now().Add(50*time.Millisecond), nil); !errors.Is(err, ErrFrameTimeout) {
		t.Fatalf("jumped the queue: %v", err)
	}
	b.release(6)
	if err := <-big; err != nil {
		t.Fatal(err)
	}
	if got := b.InUse(); got != 8 {
		t.Fatalf("in use %d, want 8", got)
	}
	done := make(chan struct{})
	close(done)
	if err := b.acquire(5, time.Time{}, done); !errors.Is(err, ErrClosed) {
		t.Fatalf("a closed Conn's wait: %v", err)
	}
	if err := b.acquire(11, time.Time{}, nil); !errors.Is(err, ErrFrameTimeout) {
		t.Fatalf("larger than the budget: %v", err)
	}
	b.release(8)
	if b.InUse() != 0 || b.Waiting() != 0 {
		t.Fatalf("in use %d, waiting %d", b.InUse(), b.Waiting())
	}
}

// pairConns returns a Conn of the kind asked for on one end of a
// socketpair, and the raw other end.
func pairConns(t *testing.T, o Options) (*Conn, *os.File) {
	t.Helper()
	local, remote, err := Pair()
	if err != nil {
		t.Fatal(err)
	}
	c, err := FileConn(local, o)
	local.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); remote.Close() })
	return c, remote
}

func bigFrame(t *testing.T, size int) []byte {
	t.Helper()
	b, err := protocol.AppendFrame(nil, &protocol.Execute{ID: 1, Process: "p", Args: []byte(`"` + strings.Repeat("x", size) + `"`)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFrameTimeout: a peer that stalls inside a frame, or trickles it a
// byte at a time, gets ErrFrameTimeout, and the frame's bytes go back to
// the budget; an idle peer (between frames) does not.
func TestFrameTimeout(t *testing.T) {
	for _, blocking := range []bool{true, false} {
		for _, trickle := range []bool{false, true} {
			name := map[bool]string{true: "blocking", false: "netpoller"}[blocking] + map[bool]string{true: "/trickle", false: "/stall"}[trickle]
			t.Run(name, func(t *testing.T) {
				b := NewBudget(1 << 20)
				c, peer := pairConns(t, Options{Blocking: blocking, Budget: b, FrameTimeout: 300 * time.Millisecond})
				frame := bigFrame(t, 512<<10)
				res := make(chan error, 1)
				go func() { _, err := c.Recv(); res <- err }()
				if _, err := peer.Write(frame[:256<<10]); err != nil {
					t.Fatal(err)
				}
				stop := make(chan struct{})
				defer close(stop)
				if trickle {
					go func() {
						for i := 256 << 10; i < len(frame); i++ {
							select {
							case <-stop:
								return
							case <-time.After(50 * time.Millisecond):
							}
							peer.Write(frame[i : i+1])
						}
					}()
				}
				select {
				case err := <-res:
					if !errors.Is(err, ErrFrameTimeout) {
						t.Fatalf("Recv: %v, want ErrFrameTimeout", err)
					}
				case <-time.After(30 * time.Second):
					t.Fatal("Recv still waits for a stalled frame after 30 s")
				}
				if n := b.InUse(); n != 0 {
					t.Fatalf("%d bytes still taken", n)
				}
			})
		}
	}
}

// TestFrameTimeoutSmallFrame: a small frame (no budget taken) that
// stalls after its first bytes is bounded by the frame timeout too: the
// fast path without a deadline is only for a frame already buffered
// whole.
func TestFrameTimeoutSmallFrame(t *testing.T) {
	for _, blocking := range []bool{true, false} {
		t.Run(map[bool]string{true: "blocking", false: "netpoller"}[blocking], func(t *testing.T) {
			c, peer := pairConns(t, Options{Blocking: blocking, FrameTimeout: 300 * time.Millisecond})
			frame, err := protocol.AppendFrame(nil, &protocol.Execute{ID: 1, Process: "p", Args: []byte(`"` + strings.Repeat("x", 100) + `"`)})
			if err != nil {
				t.Fatal(err)
			}
			if len(frame) > SmallFrame {
				t.Fatalf("a %d-byte frame is not small", len(frame))
			}
			res := make(chan error, 1)
			go func() { _, err := c.Recv(); res <- err }()
			if _, err := peer.Write(frame[:len(frame)/2]); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-res:
				if !errors.Is(err, ErrFrameTimeout) {
					t.Fatalf("Recv: %v, want ErrFrameTimeout", err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("Recv still waits for a stalled small frame after 30 s")
			}
		})
	}
}

// TestFrameTimeoutNotBetweenFrames: the deadline covers a frame, not the
// wait for the next one, and a frame completed in time is returned.
func TestFrameTimeoutNotBetweenFrames(t *testing.T) {
	c, peer := pairConns(t, Options{Blocking: true, Budget: NewBudget(1 << 20), FrameTimeout: 100 * time.Millisecond})
	frame := bigFrame(t, 512<<10)
	go func() {
		time.Sleep(300 * time.Millisecond) // idle past the frame timeout
		peer.Write(frame)
	}()
	m, err := c.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := m.(*protocol.Execute); !ok || len(e.Args) != 512<<10+2 {
		t.Fatalf("got %#v", m)
	}
}

// TestCloseRead: CloseRead wakes a blocked Recv and drops frames already
// buffered, while Send still works; Close does the same.
func TestCloseRead(t *testing.T) {
	for _, blocking := range []bool{true, false} {
		c, peer := pairConns(t, Options{Blocking: blocking})
		var frames []byte
		for i := range 3 {
			frames, _ = protocol.AppendFrame(frames, &protocol.Ping{Seq: uint64(i)})
		}
		peer.Write(frames)
		if _, err := c.Recv(); err != nil { // reads all three into its buffer
			t.Fatal(err)
		}
		c.CloseRead()
		if _, err := c.Recv(); !errors.Is(err, ErrClosed) {
			t.Fatalf("blocking=%v: Recv after CloseRead: %v", blocking, err)
		}
		if err := c.Send(&protocol.Pong{Seq: 9}); err != nil {
			t.Fatalf("blocking=%v: Send after CloseRead: %v", blocking, err)
		}
		got, err := protocol.NewReader(peer, 0).ReadMessage()
		if err != nil || got.(*protocol.Pong).Seq != 9 {
			t.Fatalf("blocking=%v: the peer got %v, %v", blocking, got, err)
		}
	}
	// A Recv blocked in a read is woken, and the peer's writes fail.
	for _, blocking := range []bool{true, false} {
		c, peer := pairConns(t, Options{Blocking: blocking})
		res := make(chan error, 1)
		go func() { _, err := c.Recv(); res <- err }()
		time.Sleep(50 * time.Millisecond)
		if err := c.CloseRead(); err != nil {
			t.Fatalf("blocking=%v: CloseRead: %v", blocking, err)
		}
		select {
		case err := <-res:
			if !errors.Is(err, io.EOF) && !errors.Is(err, ErrClosed) {
				t.Fatalf("blocking=%v: woken Recv: %v", blocking, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("blocking=%v: CloseRead did not wake a blocked Recv", blocking)
		}
		if _, err := peer.Write([]byte{0}); err == nil {
			t.Fatalf("blocking=%v: the peer's write succeeded after CloseRead", blocking)
		}
	}
}
