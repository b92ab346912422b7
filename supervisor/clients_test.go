package supervisor

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/theus-run/theus/client"
	"github.com/theus-run/theus/internal/testprocs"

	"github.com/theus-run/theus/ipc"
	"github.com/theus-run/theus/protocol"
)

// threads returns this process's OS thread count.
func threads(t *testing.T) int {
	t.Helper()
	n, err := strconv.Atoi(procStatus(t, "Threads"))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// procStatus returns the value of field in /proc/self/status, trimmed
// (skipping the test without /proc).
func procStatus(t *testing.T, field string) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status")
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := bytes.CutPrefix(sc.Bytes(), []byte(field+":")); ok {
			return string(bytes.TrimSpace(v))
		}
	}
	t.Fatalf("no %s line in /proc/self/status", field)
	return ""
}

// rawClient dials the supervisor through the netpoller (so that the
// test's own side holds no thread) and checks that it is served.
func rawClient(t *testing.T, sock string) *ipc.Conn {
	t.Helper()
	c, err := ipc.Dial(sock, ipc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Send(&protocol.Ping{Seq: 1}); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	m, err := c.Recv()
	if err != nil {
		t.Fatalf("ping: %v", err)
	}
	if _, ok := m.(*protocol.Pong); !ok {
		t.Fatalf("ping: got %s", m.Kind())
	}
	c.SetReadDeadline(time.Time{})
	return c
}

// TestConnectionThreadsReturn: the OS threads that client connections
// hold (one each, blocked in read(2)) are given back when the
// connections end; executes, which move the reading to a new goroutine,
// do not leave threads behind either.
func TestConnectionThreadsReturn(t *testing.T) {
	h := start(t, 1, nil)
	rawClient(t, h.sock).Close() // warm up
	base := threads(t)
	peak := 0
	for range 3 {
		conns := make([]*ipc.Conn, 1000)
		for i := range conns {
			conns[i] = rawClient(t, h.sock)
			if i%10 == 0 {
				execNoop(t, conns[i], uint64(i))
			}
		}
		peak = max(peak, threads(t))
		for _, c := range conns {
			c.Close()
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	n := threads(t)
	for ; n >= base+64; n = threads(t) {
		if time.Now().After(deadline) {
			t.Fatalf("%d threads before 3000 connections (at most 1000 at once, %d threads then), %d after they closed", base, peak, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("threads: %d before, %d with 1000 connections, %d after", base, peak, n)
}

// execNoop runs a noop on c and checks the reply.
func execNoop(t *testing.T, c *ipc.Conn, id uint64) {
	t.Helper()
	if err := c.Send(&protocol.Execute{ID: id, Process: "noop"}); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	m, err := c.Recv()
	if err != nil {
		t.Fatalf("execute: %v", err)
	}
	if r, ok := m.(*protocol.Reply); !ok || r.ID != id || r.Err != nil {
		t.Fatalf("execute: got %#v", m)
	}
}

// TestMaxClients: with MaxClients N, the first N clients are served and
// the next one gets too_many_clients; a place freed is taken again.
func TestMaxClients(t *testing.T) {
	const n = 3
	h := start(t, 1, func(c *Config) { c.MaxClients = n })
	ctx := context.Background()
	var cs []*client.Client
	for range n {
		c := h.dial(t)
		if _, err := c.Status(ctx); err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	extra := h.dial(t)
	if _, err := extra.Status(ctx); !errors.Is(err, protocol.ErrTooManyClients) {
		t.Fatalf("client %d of %d: %v, want too_many_clients", n+1, n, err)
	}
	for i, c := range cs {
		if _, err := c.Exec(ctx, "noop", nil); err != nil {
			t.Fatalf("client %d: %v", i+1, err)
		}
	}
	cs[0].Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := extra.Status(ctx) // dials again
		if err == nil {
			break
		}
		if !errors.Is(err, protocol.ErrTooManyClients) || time.Now().After(deadline) {
			t.Fatalf("after a client left: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// bigExecute returns the frame of an Execute of noop whose args are a
// JSON string filling a body of about size bytes (noop refuses them with
// bad_args, which shows they were read whole).
func bigExecute(t *testing.T, id uint64, size int) []byte {
	t.Helper()
	b, err := protocol.AppendFrame(nil, &protocol.Execute{ID: id, Process: "noop", Args: []byte(`"` + strings.Repeat("x", size) + `"`)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestStalledFrameDropped: a client that stops in the middle of a frame
// is told so and disconnected after FrameTimeout, and the bytes held for
// its frame are given back.
func TestStalledFrameDropped(t *testing.T) {
	h := start(t, 1, func(c *Config) { c.FrameTimeout = 500 * time.Millisecond })
	nc, err := net.Dial("unix", h.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	frame := bigExecute(t, 1, 1<<20)
	if _, err := nc.Write(frame[:len(frame)/2]); err != nil {
		t.Fatal(err)
	}
	c := ipc.NewConn(nc, ipc.Options{})
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	m, err := c.Recv()
	if err != nil {
		t.Fatalf("a stalled frame: %v, want a Refuse and the connection closed", err)
	}
	if r, ok := m.(*protocol.Refuse); !ok || r.Err.Code != protocol.CodeTimeout {
		t.Fatalf("a stalled frame: got %#v, want a Refuse with timeout", m)
	}
	if m, err := c.Recv(); !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("after the Refuse: %v, %v; want the connection closed", m, err)
	}
	for deadline := time.Now().Add(30 * time.Second); h.s.budget.InUse() != 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes of client buffer still held", h.s.budget.InUse())
		}
	}
}

// heapBytes returns the live heap after a collection.
func heapBytes() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// TestClientBufferBounded: clients that each start a 4 MiB frame and
// stall hold no more than ClientBuffer between them: the frames past it
// wait (their bytes stay in the kernel), other clients' small requests go
// on, and each waiting frame is taken in turn once the others are done.
func TestClientBufferBounded(t *testing.T) {
	const (
		clients = 16
		frame   = 4 << 20
		budget  = 2 * (frame + 1<<10) // two frames (their bodies are a little over 4 MiB)
	)
	h := start(t, 1, func(c *Config) { c.MaxFrame = frame + 1<<10; c.ClientBuffer = budget; c.FrameTimeout = 5 * time.Minute })
	frames := make([][]byte, clients)
	for i := range frames {
		frames[i] = bigExecute(t, uint64(i+1), frame)
	}
	before := heapBytes()
	conns := make([]net.Conn, clients)
	for i := range conns {
		nc, err := net.Dial("unix", h.sock)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		conns[i] = nc
		if _, err := nc.Write(frames[i][:smallFrameProbe]); err != nil {
			t.Fatal(err)
		}
	}
	// Wait until every header is read: two frames taken, the others
	// waiting; or until the heap shows that they were not made to wait.
	body := int64(len(frames[0]) - protocol.HeaderLen)
	var grown int64
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		grown = heapBytes() - before
		if h.s.budget.InUse() == 2*body && h.s.budget.Waiting() == clients-2 || grown > 3*budget {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes taken, %d frames waiting; want %d taken, %d waiting", h.s.budget.InUse(), h.s.budget.Waiting(), 2*body, clients-2)
		}
	}
	if grown > 3*budget {
		t.Fatalf("%d clients stalled in %d-byte frames grew the heap by %d bytes; the budget is %d", clients, frame, grown, budget)
	}
	t.Logf("%d clients stalled in %d-byte frames: the heap grew by %d bytes", clients, frame, grown)
	if _, err := h.dial(t).Exec(context.Background(), "noop", nil); err != nil {
		t.Fatalf("a small request while the buffer is full: %v", err)
	}
	var wg sync.WaitGroup
	for i, nc := range conns {
		wg.Go(func() {
			if _, err := nc.Write(frames[i][smallFrameProbe:]); err != nil {
				t.Errorf("client %d: %v", i+1, err)
				return
			}
			c := ipc.NewConn(nc, ipc.Options{})
			c.SetReadDeadline(time.Now().Add(2 * time.Minute))
			m, err := c.Recv()
			if err != nil {
				t.Errorf("client %d: %v", i+1, err)
				return
			}
			if r, ok := m.(*protocol.Reply); !ok || r.ID != uint64(i+1) || !errors.Is(r.Err, protocol.ErrBadArgs) {
				t.Errorf("client %d: got %#v, want its reply (bad_args)", i+1, m)
			}
		})
	}
	wg.Wait()
}

// smallFrameProbe is how much of a large frame TestClientBufferBounded
// sends before stalling: the header and more than a Conn reads into its
// own buffer, so the body is not complete in it.
const smallFrameProbe = ipc.SmallFrame + 1<<10

// fillArgs are test.fill's args.
type fillArgs = testprocs.FillArgs
