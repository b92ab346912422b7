package ipc

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/theus-run/theus/protocol"
)

// acceptPair returns a Listener's connection (Blocking: with the
// parker) and the bare socket of its peer.
func acceptPair(t *testing.T, o Options) (*Conn, net.Conn) {
	t.Helper()
	c, peer := acceptServed(t, o, true)
	if c.bfd == nil || c.bfd.park == nil {
		t.Fatal("a Listener's connection with Blocking has no parker")
	}
	return c, peer
}

func frameOf(t *testing.T, m protocol.Message) []byte {
	t.Helper()
	b, err := protocol.AppendFrame(nil, m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestParkedReads: a connection idle past Linger gives back its frame
// reader and still reads what comes next; a frame cut by a pause longer
// than Linger (read partly with read(2), the rest through the netpoller)
// arrives whole; the read deadline holds in the netpoller; the peer's
// end is io.EOF.
func TestParkedReads(t *testing.T) {
	c, peer := acceptPair(t, Options{})
	idle := func() {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); !c.bfd.park.parked.Load(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("an idle connection still holds its frame reader")
			}
		}
	}
	type res struct {
		m   protocol.Message
		err error
	}
	recv := func() chan res {
		ch := make(chan res, 1)
		go func() { m, err := c.Recv(); ch <- res{m, err} }()
		return ch
	}
	wait := func(ch chan res) res {
		t.Helper()
		select {
		case r := <-ch:
			return r
		case <-time.After(30 * time.Second):
			t.Fatal("Recv did not return")
			return res{}
		}
	}

	ch := recv()
	idle()
	if _, err := peer.Write(frameOf(t, &protocol.Ping{Seq: 1})); err != nil {
		t.Fatal(err)
	}
	if r := wait(ch); r.err != nil || r.m.(*protocol.Ping).Seq != 1 {
		t.Fatalf("after idling: %#v, %v", r.m, r.err)
	}

	big := frameOf(t, &protocol.Execute{ID: 2, Process: "p", Args: []byte(`"` + strings.Repeat("x", 200<<10) + `"`)})
	ch = recv()
	if _, err := peer.Write(big[:1000]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * Linger) // the reader waits past its linger inside the frame
	go peer.Write(big[1000:])
	if r := wait(ch); r.err != nil || r.m.(*protocol.Execute).ID != 2 || len(r.m.(*protocol.Execute).Args) != 200<<10+2 {
		t.Fatalf("a frame cut by a pause: %v", r.err)
	}

	c.SetReadDeadline(time.Now().Add(3 * Linger))
	if r := wait(recv()); !errors.Is(r.err, os.ErrDeadlineExceeded) {
		t.Fatalf("past the read deadline: %v, want a timeout", r.err)
	}
	c.SetReadDeadline(time.Time{})

	ch = recv()
	idle()
	peer.Close()
	if r := wait(ch); !errors.Is(r.err, io.EOF) {
		t.Fatalf("after the peer closed: %v, want io.EOF", r.err)
	}
}

// TestParkedStash: what the wait of an idle connection reads (its stash)
// is the start of the frames that follow, whole frames or a frame's head,
// and a connection that idles again reads on from the socket; a dialed
// connection waits the same way.
func TestParkedStash(t *testing.T) {
	c, peer := acceptPair(t, Options{})
	idle := func(c *Conn) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); !c.bfd.park.parked.Load(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("an idle connection still holds its frame reader")
			}
		}
	}
	got := make(chan protocol.Message, 16)
	errs := make(chan error, 1)
	go func() {
		for {
			m, err := c.Recv()
			if err != nil {
				errs <- err
				return
			}
			got <- m
		}
	}()
	want := func(seqs ...uint64) {
		t.Helper()
		for _, seq := range seqs {
			select {
			case m := <-got:
				var id uint64
				switch m := m.(type) {
				case *protocol.Ping:
					id = m.Seq
				case *protocol.Execute:
					id = m.ID
				}
				if id != seq {
					t.Fatalf("got %#v, want number %d", m, seq)
				}
			case err := <-errs:
				t.Fatalf("Recv: %v", err)
			case <-time.After(30 * time.Second):
				t.Fatalf("no frame %d", seq)
			}
		}
	}
	// Whole frames, all in the stash.
	idle(c)
	var burst []byte
	for i := uint64(1); i <= 3; i++ {
		burst = append(burst, frameOf(t, &protocol.Ping{Seq: i})...)
	}
	if len(burst) >= stashSize {
		t.Fatalf("the burst is %d bytes, not under the stash's %d", len(burst), stashSize)
	}
	if _, err := peer.Write(burst); err != nil {
		t.Fatal(err)
	}
	want(1, 2, 3)
	// Frames past the stash, the last cut by a pause.
	idle(c)
	big := frameOf(t, &protocol.Execute{ID: 5, Process: "p", Args: []byte(`"` + strings.Repeat("y", 100<<10) + `"`)})
	burst = append(frameOf(t, &protocol.Ping{Seq: 4}), big[:stashSize+100]...)
	if _, err := peer.Write(burst); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if _, err := peer.Write(big[stashSize+100:]); err != nil {
		t.Fatal(err)
	}
	want(4, 5)
	idle(c)
	if _, err := peer.Write(frameOf(t, &protocol.Ping{Seq: 6})); err != nil {
		t.Fatal(err)
	}
	want(6)

	// A dialed connection parks as an accepted one does.
	l, err := Listen(filepath.Join(t.TempDir(), "run", "d.sock"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	d, err := Dial(l.Path(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.bfd == nil || d.bfd.park == nil {
		t.Fatal("a dialed connection has no parker: its reads are system calls the scheduler hands off")
	}
	s, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	dgot := make(chan error, 1)
	go func() {
		m, err := d.Recv()
		if err == nil && m.(*protocol.Ping).Seq != 7 {
			err = fmt.Errorf("got %#v", m)
		}
		dgot <- err
	}()
	idle(d)
	if err := s.Send(&protocol.Ping{Seq: 7}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-dgot:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the dialed connection read nothing")
	}
}

// TestParkedWrites: a write to a peer that does not read parks (it does
// not fail and holds no thread) until the peer reads, and fails after the
// write timeout if it never does.
func TestParkedWrites(t *testing.T) {
	c, peer := acceptPair(t, Options{WriteTimeout: time.Second})
	blob := &protocol.Execute{ID: 1, Process: "p", Args: []byte(`"` + strings.Repeat("x", 4<<20) + `"`)}
	done := make(chan error, 1)
	go func() { done <- c.Send(blob) }()
	fr := protocol.NewReader(peer, 0)
	peer.SetReadDeadline(time.Now().Add(30 * time.Second))
	m, err := fr.ReadMessage()
	if err != nil || m.(*protocol.Execute).ID != 1 {
		t.Fatalf("reading a large frame: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("a write the peer read in the end: %v", err)
	}
	go func() { done <- c.Send(blob) }()
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("a write the peer never reads: %v, want a timeout", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a write the peer never reads did not time out")
	}
}

// TestFailedWriteWakesTheReader: a peer that shut its reading side
// and keeps its end open sends no end, so nothing would wake a reader
// waiting for its next frame; a write that finds the peer gone shuts
// this side's reading side, and the reader reads on to the end.
func TestFailedWriteWakesTheReader(t *testing.T) {
	c, peer := dialPair(t)
	if _, err := peer.Write(frameOf(t, &protocol.Ping{Seq: 1})); err != nil {
		t.Fatal(err)
	}
	var got []uint64
	done := serveAsync(c, func(m protocol.Message) bool { got = append(got, seqOf(m)); return true }, func() {})
	if err := peer.(*net.UnixConn).CloseRead(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the reader waits
	var err error
	for range 2 { // the first write may still be taken by the socket
		if err = c.Send(&protocol.Ping{Seq: 2}); err != nil {
			break
		}
	}
	if err == nil {
		t.Fatal("writes to a peer that shut its reading side succeeded")
	}
	if err := waitServe(t, done); !errors.Is(err, io.EOF) {
		t.Fatalf("the reader after a failed write: %v, want io.EOF", err)
	}
	if !equalSeqs(got, []uint64{1}) {
		t.Fatalf("read %v before the end, want [1]", got)
	}
}

// TestPeerDrainsKeepsReading: with PeerDrains, a write that finds the
// peer not reading leaves the reading side open, so what the peer sends
// after (a drain's last replies) is read; CloseRead then ends the
// reader.
func TestPeerDrainsKeepsReading(t *testing.T) {
	c, peer := dialPairOptions(t, Options{PeerDrains: true})
	var mu sync.Mutex
	var got []uint64
	done := serveAsync(c, func(m protocol.Message) bool {
		mu.Lock()
		got = append(got, seqOf(m))
		mu.Unlock()
		return true
	}, func() {})
	if err := peer.(*net.UnixConn).CloseRead(); err != nil {
		t.Fatal(err)
	}
	var err error
	for range 2 { // the first write may still be taken by the socket
		if err = c.Send(&protocol.Ping{Seq: 2}); err != nil {
			break
		}
	}
	if err == nil {
		t.Fatal("writes to a peer that shut its reading side succeeded")
	}
	if _, err := peer.Write(frameOf(t, &protocol.Ping{Seq: 3})); err != nil {
		t.Fatalf("the peer's write after the failed one: %v (this side's reading was shut)", err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Millisecond) {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the frame the peer sent after the failed write was not read")
		}
	}
	c.CloseRead()
	if err := waitServe(t, done); !errors.Is(err, ErrClosed) {
		t.Fatalf("the reader after CloseRead: %v, want ErrClosed", err)
	}
	if !equalSeqs(got, []uint64{3}) {
		t.Fatalf("read %v, want [3]", got)
	}
}

// dialPair returns a dialed connection (as a client's) and the bare
// socket of its peer, both closed at the test's end.
func dialPair(t *testing.T) (*Conn, net.Conn) {
	t.Helper()
	return dialPairOptions(t, Options{})
}

// dialPairOptions is dialPair with the dialed connection's Options.
func dialPairOptions(t *testing.T, o Options) (*Conn, net.Conn) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "t.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := Dial(path, o)
	if err != nil {
		t.Fatal(err)
	}
	peer, err := ln.Accept()
	if err != nil {
		c.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); peer.Close() })
	return c, peer
}

// TestListenerIgnoresPeerDrains: a server's connection shuts its reading
// side when a write finds its client gone, whatever its Options say: a
// client that stopped reading must not have its requests computed.
func TestListenerIgnoresPeerDrains(t *testing.T) {
	l, err := Listen(filepath.Join(t.TempDir(), "run", "l.sock"), Options{PeerDrains: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	peer, err := net.Dial("unix", l.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.bfd == nil || c.bfd.park == nil {
		t.Fatal("an accepted connection without its parker")
	}
	if c.bfd.park.peerDrains {
		t.Fatal("an accepted connection keeps reading after its client is gone (PeerDrains)")
	}
}
