package ipc

import (
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/theus-run/theus/protocol"
)

// acceptServed returns a Listener's connection, as the supervisor's are
// (no blocking reads unless blocking), and the bare socket of its peer.
func acceptServed(t *testing.T, o Options, blocking bool) (*Conn, net.Conn) {
	t.Helper()
	o.Blocking = blocking
	l, err := Listen(filepath.Join(t.TempDir(), "run", "s.sock"), o)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	peer, err := net.Dial("unix", l.Path())
	if err != nil {
		t.Fatal(err)
	}
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); peer.Close() })
	return c, peer
}

// seqOf is the number a test frame carries: a Ping's Seq, an Execute's ID.
func seqOf(m protocol.Message) uint64 {
	switch m := m.(type) {
	case *protocol.Ping:
		return m.Seq
	case *protocol.Execute:
		return m.ID
	}
	return 0
}

// serveResult is what a Serve on its own goroutine returned.
func serveAsync(c *Conn, handle func(protocol.Message) bool, idle func()) chan error {
	done := make(chan error, 1)
	go func() { done <- c.Serve(handle, idle) }()
	return done
}

func waitServe(t *testing.T, done chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return")
		return nil
	}
}

// TestServeOneReceivePerRequest: a peer that sends a frame, waits for
// it to be handled and sends the next costs one receive per frame, not
// two (the receive that finds nothing before each wait); idle runs
// before each wait.
func TestServeOneReceivePerRequest(t *testing.T) {
	c, peer := acceptServed(t, Options{}, false)
	const n = 200
	handled := make(chan uint64, 1)
	var idles atomic.Int64
	done := serveAsync(c, func(m protocol.Message) bool {
		handled <- seqOf(m)
		return seqOf(m) < n
	}, func() { idles.Add(1) })
	for i := uint64(1); i <= n; i++ {
		if _, err := peer.Write(frameOf(t, &protocol.Ping{Seq: i})); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-handled:
			if got != i {
				t.Fatalf("handled %d, want %d", got, i)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("frame %d not handled", i)
		}
	}
	if err := waitServe(t, done); err != nil {
		t.Fatal(err)
	}
	// One receive per frame, and the first wait's, which begins with one
	// (the netpoller's readiness was cleared); a few more where a frame
	// came between a wake and its receive.
	if got := c.bfd.park.receives; got > n+n/20+2 {
		t.Errorf("%d receives for %d frames, want about one each", got, n)
	}
	if got := idles.Load(); got < n-1 {
		t.Errorf("idle ran %d times for %d waits", got, n)
	}
}

// TestServeStopsAndResumes: a handler that stops inside a burst leaves
// the rest for the next Serve or Recv, in order; a Serve can stop and
// resume any number of times.
func TestServeStopsAndResumes(t *testing.T) {
	for _, blocking := range []bool{false, true} {
		c, peer := acceptServed(t, Options{}, blocking)
		var burst []byte
		for i := uint64(1); i <= 4; i++ {
			burst = append(burst, frameOf(t, &protocol.Ping{Seq: i})...)
		}
		var got []uint64
		stopAt := func(last uint64) func(protocol.Message) bool {
			return func(m protocol.Message) bool {
				got = append(got, seqOf(m))
				return seqOf(m) != last
			}
		}
		done := serveAsync(c, stopAt(1), func() {})
		if _, err := peer.Write(burst); err != nil {
			t.Fatal(err)
		}
		if err := waitServe(t, done); err != nil {
			t.Fatal(err)
		}
		if err := c.Serve(stopAt(2), func() {}); err != nil { // from what the last one left
			t.Fatal(err)
		}
		m, err := c.Recv()
		if err != nil || seqOf(m) != 3 {
			t.Fatalf("Recv after a stopped Serve: %#v, %v, want Ping 3", m, err)
		}
		got = append(got, seqOf(m))
		done = serveAsync(c, stopAt(5), func() {})
		if _, err := peer.Write(frameOf(t, &protocol.Ping{Seq: 5})); err != nil {
			t.Fatal(err)
		}
		if err := waitServe(t, done); err != nil {
			t.Fatal(err)
		}
		if want := []uint64{1, 2, 3, 4, 5}; !equalSeqs(got, want) {
			t.Fatalf("blocking %v: handled %v, want %v", blocking, got, want)
		}
	}
}

func equalSeqs(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestServeLeavesToRecv: what Serve's receive does not hold whole or
// cannot decode is Recv's, with Recv's results: a frame larger than the
// receive, one cut by a pause, a body that is not a message (a bad_frame
// error), a frame over the limit, the read deadline, the reading side
// closed, the peer's end.
func TestServeLeavesToRecv(t *testing.T) {
	all := func(seqs *[]uint64) func(protocol.Message) bool {
		return func(m protocol.Message) bool { *seqs = append(*seqs, seqOf(m)); return true }
	}
	t.Run("large and cut frames", func(t *testing.T) {
		c, peer := acceptServed(t, Options{}, false)
		var seqs []uint64
		done := serveAsync(c, all(&seqs), func() {})
		big := frameOf(t, &protocol.Execute{ID: 2, Process: "p", Args: []byte(`"` + strings.Repeat("x", 100<<10) + `"`)})
		small := frameOf(t, &protocol.Ping{Seq: 4})
		stream := append(append(append(frameOf(t, &protocol.Ping{Seq: 1}), big...), frameOf(t, &protocol.Ping{Seq: 3})...), small[:3]...)
		if _, err := peer.Write(stream); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
		if _, err := peer.Write(small[3:]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
		peer.Close()
		if err := waitServe(t, done); !errors.Is(err, io.EOF) {
			t.Fatalf("after the peer's end: %v, want io.EOF", err)
		}
		if want := []uint64{1, 2, 3, 4}; !equalSeqs(seqs, want) {
			t.Fatalf("handled %v, want %v", seqs, want)
		}
	})
	t.Run("bad frame", func(t *testing.T) {
		c, peer := acceptServed(t, Options{}, false)
		var seqs []uint64
		done := serveAsync(c, all(&seqs), func() {})
		bad := []byte{0, 0, 0, 3, byte(protocol.KindPing), 0xc1, 0xc1} // 0xc1: never used in msgpack
		if _, err := peer.Write(append(frameOf(t, &protocol.Ping{Seq: 1}), bad...)); err != nil {
			t.Fatal(err)
		}
		var pe *protocol.Error
		if err := waitServe(t, done); !errors.As(err, &pe) || pe.Code != protocol.CodeBadFrame {
			t.Fatalf("a body that is not a message: %v, want bad_frame", err)
		}
		if !equalSeqs(seqs, []uint64{1}) {
			t.Fatalf("handled %v before the bad frame, want [1]", seqs)
		}
		// Recv's contract after a bad_frame: the stream goes on.
		if _, err := peer.Write(frameOf(t, &protocol.Ping{Seq: 2})); err != nil {
			t.Fatal(err)
		}
		if m, err := c.Recv(); err != nil || seqOf(m) != 2 {
			t.Fatalf("after a bad frame: %#v, %v", m, err)
		}
	})
	t.Run("over the limit", func(t *testing.T) {
		c, peer := acceptServed(t, Options{MaxFrame: 64}, false)
		done := serveAsync(c, func(protocol.Message) bool { return true }, func() {})
		if _, err := peer.Write([]byte{0, 0, 1, 0, byte(protocol.KindPing)}); err != nil {
			t.Fatal(err)
		}
		if err := waitServe(t, done); !errors.Is(err, protocol.ErrFrameTooLarge) {
			t.Fatalf("a frame over the limit: %v", err)
		}
	})
	t.Run("deadline", func(t *testing.T) {
		c, _ := acceptServed(t, Options{}, false)
		c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if err := waitServe(t, serveAsync(c, func(protocol.Message) bool { return true }, func() {})); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("past the deadline: %v", err)
		}
	})
	t.Run("close read", func(t *testing.T) {
		c, peer := acceptServed(t, Options{}, false)
		handled := make(chan struct{}, 1)
		done := serveAsync(c, func(protocol.Message) bool { handled <- struct{}{}; return true }, func() {})
		if _, err := peer.Write(frameOf(t, &protocol.Ping{Seq: 1})); err != nil {
			t.Fatal(err)
		}
		<-handled
		time.Sleep(20 * time.Millisecond) // waiting again, most likely
		c.CloseRead()
		if err := waitServe(t, done); !errors.Is(err, ErrClosed) {
			t.Fatalf("after CloseRead: %v, want ErrClosed", err)
		}
	})
}

// TestServeAnyCut: frames of many sizes, written in pieces cut at random
// and read by Serves that stop at random and Recvs between them, are
// each handled once, in order, on a connection with or without blocking
// reads.
func TestServeAnyCut(t *testing.T) {
	for _, blocking := range []bool{false, true} {
		c, peer := acceptServed(t, Options{}, blocking)
		rng := rand.New(rand.NewPCG(1, uint64(len(t.Name()))))
		const n = 600
		var stream []byte
		for i := uint64(1); i <= n; i++ {
			var m protocol.Message = &protocol.Ping{Seq: i}
			if rng.IntN(3) == 0 {
				size := rng.IntN(2000)
				if rng.IntN(50) == 0 {
					size = 70 << 10 // over SmallFrame: the budget's path
				}
				m = &protocol.Execute{ID: i, Process: "p", Args: []byte(`"` + strings.Repeat("z", size) + `"`)}
			}
			stream = append(stream, frameOf(t, m)...)
		}
		go func() {
			rng := rand.New(rand.NewPCG(2, 3))
			for rest := stream; len(rest) > 0; {
				k := min(len(rest), 1+rng.IntN(900))
				if _, err := peer.Write(rest[:k]); err != nil {
					return
				}
				rest = rest[k:]
				if rng.IntN(8) == 0 {
					time.Sleep(time.Duration(rng.IntN(300)) * time.Microsecond)
				}
			}
		}()
		var got []uint64
		for uint64(len(got)) < n {
			if rng.IntN(5) == 0 {
				m, err := c.Recv()
				if err != nil {
					t.Fatalf("Recv after %d frames: %v", len(got), err)
				}
				got = append(got, seqOf(m))
				continue
			}
			stopAfter := 1 + rng.IntN(20)
			err := c.Serve(func(m protocol.Message) bool {
				got = append(got, seqOf(m))
				stopAfter--
				return stopAfter > 0 && uint64(len(got)) < n
			}, func() {})
			if err != nil {
				t.Fatalf("Serve after %d frames: %v", len(got), err)
			}
		}
		for i, seq := range got {
			if seq != uint64(i+1) {
				t.Fatalf("blocking %v: frame %d is number %d", blocking, i+1, seq)
			}
		}
	}
}

// alignedBurst returns frames that are exactly stashSize bytes, then
// one more, a Ping numbered 99.
func alignedBurst(t *testing.T) []byte {
	t.Helper()
	var b []byte
	for seq := uint64(1); ; seq++ {
		f := frameOf(t, &protocol.Ping{Seq: seq})
		if len(b)+len(f) > stashSize-64 {
			break
		}
		b = append(b, f...)
	}
	for pad := 0; pad < 200 && len(b) != stashSize; pad++ {
		if f := frameOf(t, &protocol.Execute{ID: 98, Process: "p", Args: []byte(`"` + strings.Repeat("x", pad) + `"`)}); len(b)+len(f) == stashSize {
			b = append(b, f...)
		}
	}
	if len(b) != stashSize {
		t.Fatalf("the burst is %d bytes, not %d", len(b), stashSize)
	}
	return append(b, frameOf(t, &protocol.Ping{Seq: 99})...)
}

// TestServeReceiveThatFillsTheStash: a receive that fills the stash
// with whole frames may have left more in the socket, which no
// readiness event announces: Serve receives again before it waits.
func TestServeReceiveThatFillsTheStash(t *testing.T) {
	c, peer := acceptServed(t, Options{}, false)
	got99 := make(chan struct{})
	done := serveAsync(c, func(m protocol.Message) bool {
		if seqOf(m) == 99 {
			close(got99)
		}
		return true
	}, func() {})
	time.Sleep(50 * time.Millisecond) // Serve waits
	if _, err := peer.Write(alignedBurst(t)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-got99:
	case err := <-done:
		t.Fatal(err)
	case <-time.After(30 * time.Second):
		t.Fatalf("the frame after the first %d bytes was never handled", stashSize)
	}
}

// TestServeIdleAfterAStashOfWholeFrames: a receive that fills the stash
// with whole frames, after which the socket holds nothing, is followed
// by a wait, and idle runs before it, after the last frame's handler.
// (The supervisor's idle wakes the workers that those frames' dispatches
// went to: without it, they slept until the client's next request,
// which a client waiting for their replies never sends.)
func TestServeIdleAfterAStashOfWholeFrames(t *testing.T) {
	c, peer := acceptServed(t, Options{}, false)
	burst := alignedBurst(t)[:stashSize] // whole frames, the last an Execute
	var last atomic.Bool
	idled := make(chan struct{})
	done := serveAsync(c, func(m protocol.Message) bool {
		if _, ok := m.(*protocol.Execute); ok {
			last.Store(true)
		}
		return true
	}, func() {
		if last.Load() && !isClosed(idled) {
			close(idled)
		}
	})
	time.Sleep(50 * time.Millisecond) // Serve waits
	if _, err := peer.Write(burst); err != nil {
		t.Fatal(err)
	}
	select {
	case <-idled:
	case err := <-done:
		t.Fatal(err)
	case <-time.After(10 * time.Second):
		t.Fatalf("Serve waits after a receive of %d bytes of whole frames without running idle", stashSize)
	}
}

// isClosed reports whether ch is closed (for one goroutine's use).
func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// TestServeCloseDuringAHandler: Close returns while a handler runs (it
// does not wait for Serve's read to end), and Serve then ends with
// ErrClosed; the socket's descriptor is closed once it has.
func TestServeCloseDuringAHandler(t *testing.T) {
	c, peer := acceptServed(t, Options{}, false)
	release, inHandler := make(chan struct{}), make(chan struct{})
	done := serveAsync(c, func(protocol.Message) bool { close(inHandler); <-release; return true }, func() {})
	if _, err := peer.Write(frameOf(t, &protocol.Ping{Seq: 1})); err != nil {
		t.Fatal(err)
	}
	<-inHandler
	closed := make(chan struct{})
	go func() { c.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(30 * time.Second):
		close(release)
		t.Fatal("Close waited for a handler")
	}
	close(release)
	if err := waitServe(t, done); !errors.Is(err, ErrClosed) && !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Serve after Close: %v, want ErrClosed", err)
	}
	if _, err := peer.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("the peer reads %v, want io.EOF: the socket is not closed", err)
	}
}

// TestServeHandlerWriteTimesOut: a handler's Send to a peer that does
// not read times out and closes the Conn from inside Serve's read; the
// Send, and then Serve, return (the close must not wait for the read
// that the handler runs in).
func TestServeHandlerWriteTimesOut(t *testing.T) {
	c, peer := acceptServed(t, Options{WriteTimeout: 100 * time.Millisecond}, false)
	sent := make(chan error, 1)
	done := serveAsync(c, func(protocol.Message) bool {
		sent <- c.Send(&protocol.Execute{ID: 1, Process: "p", Args: []byte(`"` + strings.Repeat("x", 4<<20) + `"`)})
		return true
	}, func() {})
	if _, err := peer.Write(frameOf(t, &protocol.Ping{Seq: 1})); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-sent:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Send to a peer that does not read: %v, want a timeout", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the handler's Send never returned")
	}
	if err := waitServe(t, done); err == nil {
		t.Fatal("Serve on a closed Conn returned nil")
	}
}

// TestServeLengthWithTheTopBitSet: a length that is negative as a
// 32-bit int is refused as too large, not taken for a short frame.
func TestServeLengthWithTheTopBitSet(t *testing.T) {
	c, peer := acceptServed(t, Options{}, false)
	done := serveAsync(c, func(protocol.Message) bool { return true }, func() {})
	head := []byte{0xff, 0xff, 0xff, 0xf0, byte(protocol.KindPing)}
	if _, err := peer.Write(append(head, make([]byte, 20)...)); err != nil {
		t.Fatal(err)
	}
	if err := waitServe(t, done); !errors.Is(err, protocol.ErrFrameTooLarge) {
		t.Fatalf("a length with the top bit set: %v, want ErrFrameTooLarge", err)
	}
}

// TestServeSeesTheEndAfterTheLastFrame: a peer that writes a frame and
// closes, so that the end comes with the frame (before Serve waits, or
// while it does), ends Serve with io.EOF once the frame is handled: a
// receive that returns bytes does not report an end that came with
// them, and no readiness event follows, so the wait that follows has a
// deadline (endCheck) that makes the next receive.
func TestServeSeesTheEndAfterTheLastFrame(t *testing.T) {
	for _, before := range []bool{true, false} {
		c, peer := acceptServed(t, Options{}, false)
		var got atomic.Int64
		handle := func(protocol.Message) bool { got.Add(1); return true }
		var done chan error
		if !before {
			done = serveAsync(c, handle, func() {})
			time.Sleep(50 * time.Millisecond) // Serve waits
		}
		if _, err := peer.Write(frameOf(t, &protocol.Ping{Seq: 1})); err != nil {
			t.Fatal(err)
		}
		peer.Close()
		if before {
			time.Sleep(50 * time.Millisecond)
			done = serveAsync(c, handle, func() {})
		}
		if err := waitServe(t, done); !errors.Is(err, io.EOF) || got.Load() != 1 {
			t.Fatalf("end before Serve %v: %v after %d frames, want io.EOF after 1", before, err, got.Load())
		}
	}
}

// TestServeCheckKeepsTheCallersDeadline: the deadline that looks for an
// end does not replace the caller's: a read deadline still ends Serve
// with a timeout, sooner or later than endCheck, and Serve goes on past
// endCheck when the caller set none.
func TestServeCheckKeepsTheCallersDeadline(t *testing.T) {
	for _, dl := range []time.Duration{endCheck / 2, 5 * endCheck} {
		c, peer := acceptServed(t, Options{}, false)
		c.SetReadDeadline(time.Now().Add(dl))
		done := serveAsync(c, func(protocol.Message) bool { return true }, func() {})
		if _, err := peer.Write(frameOf(t, &protocol.Ping{Seq: 1})); err != nil {
			t.Fatal(err)
		}
		if err := waitServe(t, done); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("deadline %v: %v, want a timeout", dl, err)
		}
	}
	c, peer := acceptServed(t, Options{}, false)
	seen := make(chan uint64, 2)
	done := serveAsync(c, func(m protocol.Message) bool { seen <- seqOf(m); return seqOf(m) != 2 }, func() {})
	for seq := uint64(1); seq <= 2; seq++ {
		if _, err := peer.Write(frameOf(t, &protocol.Ping{Seq: seq})); err != nil {
			t.Fatal(err)
		}
		if got := <-seen; got != seq {
			t.Fatalf("handled %d, want %d", got, seq)
		}
		time.Sleep(5 * endCheck) // past the check's deadline
	}
	if err := waitServe(t, done); err != nil {
		t.Fatalf("Serve with no deadline, past endCheck: %v", err)
	}
}

// TestServeDeadlineSetDuringTheCheck: a handler or idle that sets a
// read deadline while the end's check is armed (frame 2 and the peer's
// end came in one wake, after frame 1's receive armed it) does not undo
// the check: Serve still sees the end.
func TestServeDeadlineSetDuringTheCheck(t *testing.T) {
	for _, who := range []string{"handler clears", "handler sets an hour", "idle clears"} {
		c, peer := acceptServed(t, Options{}, false)
		inFirst, goOn := make(chan struct{}), make(chan struct{})
		set := func() {
			if who == "handler sets an hour" {
				c.SetReadDeadline(time.Now().Add(time.Hour))
			} else {
				c.SetReadDeadline(time.Time{})
			}
		}
		done := serveAsync(c, func(m protocol.Message) bool {
			if seqOf(m) == 1 {
				close(inFirst)
				<-goOn
			}
			if who != "idle clears" {
				set()
			}
			return true
		}, func() {
			if who == "idle clears" {
				set()
			}
		})
		if _, err := peer.Write(frameOf(t, &protocol.Ping{Seq: 1})); err != nil {
			t.Fatal(err)
		}
		<-inFirst
		if _, err := peer.Write(frameOf(t, &protocol.Ping{Seq: 2})); err != nil {
			t.Fatal(err)
		}
		peer.Close()
		time.Sleep(50 * time.Millisecond) // frame 2 and the end wait, one event
		close(goOn)
		if err := waitServe(t, done); !errors.Is(err, io.EOF) {
			t.Fatalf("%s: %v, want io.EOF", who, err)
		}
	}
}
