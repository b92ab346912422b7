package supervisor

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/theus-run/theus/client"

	"github.com/theus-run/theus/ipc"
	"github.com/theus-run/theus/protocol"
)

// threads returns this process's OS thread count.
func threads(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status")
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := bytes.CutPrefix(sc.Bytes(), []byte("Threads:")); ok {
			n, err := strconv.Atoi(string(bytes.TrimSpace(v)))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no Threads line in /proc/self/status")
	return 0
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
