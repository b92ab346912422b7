package worker

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/theus-run/theus/ipc"
	"github.com/theus-run/theus/protocol"
)

// fakeSupervisor runs Serve on one end of a socketpair, in this process,
// and returns the other end, past the handshake (no HEAVY zone).
func fakeSupervisor(t testing.TB, defs ...Def) *ipc.Conn {
	t.Helper()
	conn, _ := serveHere(t, defs...)
	return conn
}

// serveHere is fakeSupervisor that also returns the worker's Hello. The
// ring pair, if any, is the caller's to set (EnvRingFD).
func serveHere(t testing.TB, defs ...Def) (*ipc.Conn, *protocol.Hello) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvFD, strconv.Itoa(fds[1]))
	t.Setenv(EnvHeavyFD, "")
	t.Setenv(EnvSupervisorPID, "")
	f := os.NewFile(uintptr(fds[0]), "supervisor")
	conn, err := ipc.FileConn(f, ipc.Options{})
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- Serve(context.Background(), defs...) }()
	t.Cleanup(func() {
		conn.Close() // Serve returns at the end of file
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("Serve did not return after the connection closed")
		}
	})
	m, err := conn.Recv()
	if err != nil {
		t.Fatal(err)
	}
	h, ok := m.(*protocol.Hello)
	if !ok {
		t.Fatalf("first frame %s, want a Hello", m.Kind())
	}
	if err := conn.Send(&protocol.Welcome{Protocol: protocol.Version, HeartbeatMS: 1000}); err != nil {
		t.Fatal(err)
	}
	return conn, h
}

// TestCancelBehindItsDispatch: a Cancel that arrives right behind its
// Dispatch (one write; the caller gave up at once) stops the process.
// The reader that takes the Dispatch hands the reading to a new
// goroutine: the dispatch must be registered before that goroutine can
// read the Cancel, or the Cancel finds nothing to stop and the process
// runs on until the supervisor kills the worker.
func TestCancelBehindItsDispatch(t *testing.T) {
	wait := Process("wait", Contract{}, func(ctx *Ctx, _ None) (bool, error) {
		select {
		case <-ctx.Done():
			return true, ctx.Err()
		case <-time.After(10 * time.Second): // far longer than a Cancel takes, even on a loaded machine
			return false, nil
		}
	})
	conn := fakeSupervisor(t, wait)
	const rounds, n = 20, 1000
	id := uint64(0)
	for round := range rounds {
		go func(first uint64) {
			for i := first; i < first+n; i++ {
				if conn.SendBatch(&protocol.Dispatch{ID: i, Attempt: 1, Process: "wait", Version: 1}, &protocol.Cancel{ID: i}) != nil {
					return
				}
			}
		}(id + 1)
		id += n
		lost := 0
		for range n {
			m, err := conn.Recv()
			if err != nil {
				t.Fatal(err)
			}
			if r := m.(*protocol.Result); r.Err == nil || r.Err.Code != protocol.CodeCanceled {
				lost++
			}
		}
		if lost > 0 {
			t.Fatalf("round %d: %d of %d Cancels right behind their Dispatch were lost", round, lost, n)
		}
	}
}

// TestDispatchDeadline: a Dispatch's deadline is its process's: the
// context reports it and ends at it with DeadlineExceeded, and the Result
// says timeout. A Dispatch without one runs until it returns.
func TestDispatchDeadline(t *testing.T) {
	type seen struct {
		Deadline int64  `json:"deadline"` // unix ns; 0: none
		Err      string `json:"err"`
	}
	wait := Process("wait", Contract{}, func(ctx *Ctx, in struct {
		MS int `json:"ms"`
	}) (seen, error) {
		var s seen
		if dl, ok := ctx.Deadline(); ok {
			s.Deadline = dl.UnixNano()
		}
		select {
		case <-ctx.Done():
			return s, ctx.Err()
		case <-time.After(time.Duration(in.MS) * time.Millisecond):
			return s, nil
		}
	})
	conn := fakeSupervisor(t, wait)
	dl := time.Now().Add(100 * time.Millisecond)
	if err := conn.Send(&protocol.Dispatch{ID: 1, Attempt: 1, Process: "wait", Args: []byte(`{"ms":30000}`), Deadline: dl.UnixNano()}); err != nil {
		t.Fatal(err)
	}
	if err := conn.Send(&protocol.Dispatch{ID: 2, Attempt: 1, Process: "wait", Args: []byte(`{"ms":300}`)}); err != nil {
		t.Fatal(err)
	}
	got := map[uint64]*protocol.Result{}
	for len(got) < 2 {
		m, err := conn.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if res, ok := m.(*protocol.Result); ok {
			got[res.ID] = res
			if res.ID == 1 && time.Now().Before(dl) {
				t.Errorf("dispatch 1 ended %v before its deadline", time.Until(dl))
			}
		}
	}
	if r := got[1]; r.Err == nil || r.Err.Code != protocol.CodeTimeout {
		t.Errorf("past its deadline: %+v, want a timeout", r.Err)
	}
	if r := got[2]; r.Err != nil || string(r.Result) != `{"deadline":0,"err":""}` {
		t.Errorf("no deadline: %+v %s, want a success that saw none", r.Err, r.Result)
	}
}
