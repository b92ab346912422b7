package ipc

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/theus-run/theus/protocol"
)

// acceptPair returns a Listener's connection (Blocking: with the
// parker) and the bare socket of its peer.
func acceptPair(t *testing.T, o Options) (*Conn, net.Conn) {
	t.Helper()
	o.Blocking = true
	l, err := Listen(filepath.Join(t.TempDir(), "run", "t.sock"), o)
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
	if c.bfd == nil || c.bfd.park == nil {
		t.Fatal("a Listener's connection with Blocking has no parker")
	}
	t.Cleanup(func() { c.Close(); peer.Close() })
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

// TestQuietWait: a dialed connection whose SetQuiet reports that nothing
// is awaited waits for bytes without the receive that would find none,
// and reads the frame that comes after that check whole; one that
// reports something awaited receives first, as without SetQuiet.
func TestQuietWait(t *testing.T) {
	for _, quiet := range []bool{true, false} {
		t.Run(fmt.Sprintf("quiet=%v", quiet), func(t *testing.T) {
			c, peer := dialPair(t)
			asked := make(chan struct{}, 1)
			c.SetQuiet(func() bool {
				select {
				case asked <- struct{}{}:
				default:
				}
				return quiet
			})
			type res struct {
				m   protocol.Message
				err error
			}
			ch := make(chan res, 1)
			go func() { m, err := c.Recv(); ch <- res{m, err} }()
			select {
			case <-asked: // the readiness is cleared: what is written now wakes the wait
			case <-time.After(30 * time.Second):
				t.Fatal("Recv never asked whether anything is awaited")
			}
			// Time for a receive after the check, if one were made: it
			// would find nothing and count.
			time.Sleep(50 * time.Millisecond)
			want := frameOf(t, &protocol.Execute{ID: 7, Process: "p", Args: []byte(`"x"`)}) // within the stash: one receive reads it
			if _, err := peer.Write(want); err != nil {
				t.Fatal(err)
			}
			var r res
			select {
			case r = <-ch:
			case <-time.After(30 * time.Second):
				t.Fatal("a quiet wait slept through the bytes that came after it began")
			}
			if r.err != nil {
				t.Fatal(r.err)
			}
			if e, ok := r.m.(*protocol.Execute); !ok || e.ID != 7 || string(e.Args) != `"x"` {
				t.Fatalf("read %#v, want the Execute written", r.m)
			}
			got := c.bfd.park.receives // Recv returned: the reader is done with it
			if quiet && got != 1 {
				t.Errorf("a quiet wait made %d receives, want 1 (the one that found the frame)", got)
			}
			if !quiet && got != 2 {
				t.Errorf("a wait with something awaited made %d receives, want 2 (one that found nothing, then the frame)", got)
			}
		})
	}
}

// TestQuietWaitWokenByAFailedWrite: the peer's last frame and its end,
// come before a quiet wait began (so no readiness event is left for
// it), are read once a write finds the peer gone: the write shuts the
// reading side, which wakes the wait.
func TestQuietWaitWokenByAFailedWrite(t *testing.T) {
	c, peer := dialPair(t)
	c.SetQuiet(func() bool { return true })
	if _, err := peer.Write(frameOf(t, &protocol.Refuse{Err: *protocol.Errorf(protocol.CodeTooManyClients, "full")})); err != nil {
		t.Fatal(err)
	}
	peer.Close()
	time.Sleep(50 * time.Millisecond) // the netpoller sees the bytes and the end before the wait
	type res struct {
		m   protocol.Message
		err error
	}
	ch := make(chan res, 2)
	go func() {
		for range 2 {
			m, err := c.Recv()
			ch <- res{m, err}
		}
	}()
	time.Sleep(50 * time.Millisecond) // the wait begins, quiet
	if err := c.Send(&protocol.Ping{Seq: 1}); err == nil {
		t.Fatal("a write to a closed peer succeeded")
	}
	for i, want := range []string{"the Refuse", "the end"} {
		select {
		case r := <-ch:
			switch {
			case i == 0 && (r.err != nil || r.m.Kind() != protocol.KindRefuse):
				t.Fatalf("first Recv: %v, %v; want the Refuse", r.m, r.err)
			case i == 1 && !errors.Is(r.err, io.EOF):
				t.Fatalf("second Recv: %v, %v; want io.EOF", r.m, r.err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("a quiet wait slept through %s after a write found the peer gone", want)
		}
	}
}

// dialPair returns a dialed connection (as a client's) and the bare
// socket of its peer, both closed at the test's end.
func dialPair(t *testing.T) (*Conn, net.Conn) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "t.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := Dial(path, Options{})
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
