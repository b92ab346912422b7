package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/theus-run/theus/ipc"
	"github.com/theus-run/theus/protocol"
)

// TestDoRetryIsBounded: a supervisor that keeps hanging up makes a
// request with an op id be sent again, but only for Request.RetryFor,
// even when ctx has no deadline.
func TestDoRetryIsBounded(t *testing.T) {
	ln, path := listenUnix(t)
	defer ln.Close()
	var accepted atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close() // the supervisor goes away before replying
		}
	}()
	c, err := Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	done := make(chan error, 1)
	go func() {
		_, err := c.Do(context.Background(), Request{Process: "noop", OpID: "op-1", RetryFor: 300 * time.Millisecond})
		done <- err
	}()
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Do retried for more than 30s with RetryFor 300ms")
	}
	if !errors.Is(err, ErrClosed) || !strings.Contains(err.Error(), "gave up after retrying for 300ms") {
		t.Fatalf("err = %v, want the connection's error after the retry budget", err)
	}
	if accepted.Load() < 2 {
		t.Fatalf("%d connections: the request was not sent again", accepted.Load())
	}
	// A negative budget sends once. (Let the last connection of the retries
	// above be counted first: the listener counts after the client dialed.)
	before := settled(&accepted)
	if _, err := c.Do(context.Background(), Request{Process: "noop", OpID: "op-2", RetryFor: -1}); err == nil {
		t.Fatal("a hung-up request succeeded")
	}
	if n := settled(&accepted) - before; n > 1 {
		t.Fatalf("RetryFor -1: %d connections, want at most 1", n)
	}
}

// listenUnix listens on a socket in a temporary directory: a fake
// supervisor's, for the test to accept from.
func listenUnix(t *testing.T) (net.Listener, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	return ln, path
}

// settled returns n once it has not changed for 200 ms.
func settled(n *atomic.Int64) int64 {
	last := n.Load()
	for {
		time.Sleep(200 * time.Millisecond)
		if now := n.Load(); now == last {
			return now
		}
		last = n.Load()
	}
}

// Options.MaxFrame is the client's frame limit: a request over it fails
// alone, before anything is sent, and the connection goes on.
func TestMaxFrameOption(t *testing.T) {
	ln, path := listenUnix(t)
	defer ln.Close()
	got := make(chan int, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		n, _ := io.Copy(io.Discard, c)
		got <- int(n)
	}()
	if _, err := DialOptions(path, Options{MaxFrame: -1}); err == nil {
		t.Fatal("a negative MaxFrame accepted")
	}
	c, err := DialOptions(path, Options{MaxFrame: 4096})
	if err != nil {
		t.Fatal(err)
	}
	big := json.RawMessage(`"` + strings.Repeat("x", 8192) + `"`)
	_, err = c.Do(context.Background(), Request{Process: "noop", Args: big, RetryFor: -1})
	if !errors.Is(err, protocol.ErrFrameTooLarge) {
		t.Fatalf("an 8 KiB execute with MaxFrame 4096: %v, want ErrFrameTooLarge", err)
	}
	c.Close()
	if n := <-got; n != 0 {
		t.Fatalf("%d bytes reached the server", n)
	}
}

// A request without an op id may have run: it is never sent again, even
// when the supervisor hangs up after reading it.
func TestNoOpIDNoResend(t *testing.T) {
	ln, path := listenUnix(t)
	defer ln.Close()
	var sends atomic.Int64 // connections that carried a request
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.SetReadDeadline(time.Now().Add(time.Second))
			if n, _ := c.Read(make([]byte, 5)); n > 0 {
				sends.Add(1)
			}
			c.Close()
		}
	}()
	c, err := Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Do(context.Background(), Request{Process: "noop"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("err = %v, want the connection's end", err)
	}
	if n := settled(&sends); n != 1 {
		t.Fatalf("a request without an op id was sent %d times, want once", n)
	}
}

func TestTimeoutMS(t *testing.T) {
	for d, want := range map[time.Duration]int64{
		0: 0, 500 * time.Microsecond: 1, time.Millisecond: 1, 1500 * time.Microsecond: 2,
		protocol.MaxTimeout + time.Hour: protocol.MaxTimeout.Milliseconds(),
	} {
		if got := timeoutMS(d); got != want {
			t.Errorf("timeoutMS(%s) = %d, want %d", d, got, want)
		}
	}
}

// Requests reuse their Execute messages (executes): concurrent requests,
// with and without args, op ids and timeouts, each reach the supervisor
// with exactly its own fields, and each gets its own reply.
func TestExecutesCarryTheirOwnFields(t *testing.T) {
	ln, path := listenUnix(t)
	defer ln.Close()
	type seen struct {
		process, args, opID string
		timeoutMS           int64
	}
	got := make(chan seen, 1000)
	go func() { // a supervisor that answers each Execute with its args
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		conn := ipc.NewConn(nc, ipc.Options{})
		defer conn.Close()
		for {
			m, err := conn.Recv()
			if err != nil {
				return
			}
			x := m.(*protocol.Execute)
			got <- seen{x.Process, string(x.Args), x.OpID, x.TimeoutMS}
			if err := conn.Send(&protocol.Reply{ID: x.ID, Result: x.Args}); err != nil {
				return
			}
		}
	}()
	c, err := Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const callers, calls = 8, 50
	var wrong atomic.Int64
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			for j := range calls {
				r := Request{Process: "p" + strconv.Itoa(i)}
				want := ""
				if j%2 == 0 { // every other one with args, an op id and a timeout
					want = `{"i":` + strconv.Itoa(i) + `,"j":` + strconv.Itoa(j) + `}`
					r.Args, r.OpID, r.Timeout = json.RawMessage(want), "op-"+strconv.Itoa(i)+"-"+strconv.Itoa(j), time.Duration(j+1)*time.Second
				}
				res, err := c.Do(context.Background(), r)
				if err != nil {
					t.Error(err)
					return
				}
				if string(res.Result) != want {
					wrong.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if n := wrong.Load(); n != 0 {
		t.Fatalf("%d replies were another request's", n)
	}
	// Every reply came after its Execute was recorded (the race detector
	// does not see the socket order, so got is drained, not closed).
	for range callers * calls {
		s := <-got
		if s.args == "" {
			if s.opID != "" || s.timeoutMS != 0 {
				t.Fatalf("a request without args arrived with %+v", s)
			}
			continue
		}
		var a struct{ I, J int }
		if err := json.Unmarshal([]byte(s.args), &a); err != nil {
			t.Fatal(err)
		}
		want := seen{"p" + strconv.Itoa(a.I), s.args, "op-" + strconv.Itoa(a.I) + "-" + strconv.Itoa(a.J), int64(a.J+1) * 1000}
		if s != want {
			t.Fatalf("arrived %+v, want %+v", s, want)
		}
	}
	if len(got) != 0 {
		t.Fatalf("%d executes more than were sent", len(got))
	}
}

// TestRequestChecks: a negative timeout is refused before anything is
// sent, and a context already past its deadline ends the request at
// once, without a send.
func TestRequestChecks(t *testing.T) {
	ln, path := listenUnix(t)
	defer ln.Close()
	sent := make(chan int64, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			sent <- -1
			return
		}
		defer c.Close()
		n, _ := io.Copy(io.Discard, c) // until the client closes
		sent <- n
	}()
	c, err := Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	bounded, stop := context.WithTimeout(context.Background(), 10*time.Second) // this fake never answers
	defer stop()
	_, err = c.Do(bounded, Request{Process: "noop", Timeout: -time.Second, RetryFor: -1})
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != protocol.CodeBadRequest {
		t.Errorf("a negative timeout: %v, want bad_request", err)
	}
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	if _, err := c.Do(ctx, Request{Process: "noop"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a context past its deadline: %v, want DeadlineExceeded", err)
	}
	c.Close()
	if n := <-sent; n != 0 {
		t.Errorf("%d bytes reached the supervisor, want none", n)
	}
}

// TestRetryable: what Do sends again (for a request with an op id): a
// lost or refused connection, a supervisor away or draining or unable to
// write to disk; not a Close, nor a process's error.
func TestRetryable(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("%w: %w", ErrClosed, io.EOF), true},
		{errClientClosed, false},
		{fmt.Errorf("dial: %w", syscall.ECONNREFUSED), true},
		{fmt.Errorf("dial: %w", syscall.ENOENT), true},
		{&net.OpError{Op: "dial", Err: errors.New("x")}, true},
		{protocol.Errorf(protocol.CodeShuttingDown, "draining"), true},
		{protocol.Errorf(protocol.CodeNotDurable, "disk"), true},
		{protocol.Errorf(protocol.CodeNotFound, "no such process"), false},
		{errors.New("other"), false},
	} {
		if got := retryable(c.err); got != c.want {
			t.Errorf("retryable(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
