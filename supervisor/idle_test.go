package supervisor

import (
	"context"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/theus-run/theus/protocol"
)

// rssBytes returns this process's resident set size.
func rssBytes(t *testing.T) int64 {
	t.Helper()
	kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(procStatus(t, "VmRSS"), "kB")), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return kb << 10
}

// idleClients is how many connections TestIdleClients opens:
// $THEUS_IDLE_CLIENTS, else 2000.
func idleClients(t *testing.T) int {
	n := 2000
	if v := os.Getenv("THEUS_IDLE_CLIENTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			t.Fatalf("THEUS_IDLE_CLIENTS=%q: want a positive number", v)
		}
	}
	return n
}

// raiseFiles raises RLIMIT_NOFILE to at least n descriptors, or skips.
func raiseFiles(t *testing.T, n uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skipf("getrlimit: %v", err)
	}
	if lim.Cur >= n {
		return
	}
	if lim.Max < n {
		t.Skipf("need %d open files, the hard limit (ulimit -Hn) is %d", n, lim.Max)
	}
	old := lim
	lim.Cur = n
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skipf("raise the open files limit to %d: %v", n, err)
	}
	t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) })
}

// pingRaw sends a Ping on a bare socket and reads the Pong: the client
// side holds no ipc.Conn (no buffers), so what the process grows by is
// the supervisor's side.
func pingRaw(t *testing.T, nc net.Conn, seq uint64) {
	t.Helper()
	frame, err := protocol.AppendFrame(nil, &protocol.Ping{Seq: seq})
	if err != nil {
		t.Fatal(err)
	}
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	defer nc.SetDeadline(time.Time{})
	if _, err := nc.Write(frame); err != nil {
		t.Fatalf("ping: %v", err)
	}
	fr := protocol.NewReader(nc, 0)
	k, body, err := fr.Next()
	if err != nil {
		t.Fatalf("ping: %v", err)
	}
	m, err := protocol.Decode(k, body)
	if err != nil {
		t.Fatalf("ping: %v", err)
	}
	if p, ok := m.(*protocol.Pong); !ok || p.Seq != seq {
		t.Fatalf("ping %d: got %#v", seq, m)
	}
}

// TestIdleClients: thousands of idle client connections cost memory, not
// threads. Each connection is served once (a Ping) and then left idle;
// the process (supervisor and the test's bare sockets, which hold no
// thread) stays under 100 threads, grows by less than 40 KiB a
// connection (200 MiB for 5,000), and a noop is still answered. The
// figures (and the noop's latency) are logged; THEUS_IDLE_CLIENTS=5000
// runs the figure.
func TestIdleClients(t *testing.T) {
	n := idleClients(t)
	raiseFiles(t, uint64(2*n+256))
	h := start(t, 1, func(c *Config) { c.MaxClients = n + 16 })
	ctx := context.Background()
	cl := h.dial(t)
	if _, err := cl.Exec(ctx, "noop", nil); err != nil { // warm up
		t.Fatal(err)
	}
	baseThreads, baseRSS := threads(t), rssBytes(t)
	peak := baseThreads
	conns := make([]net.Conn, 0, n)
	t.Cleanup(func() {
		for _, nc := range conns {
			nc.Close()
		}
	})
	for i := range n {
		nc, err := net.Dial("unix", h.sock)
		if err != nil {
			t.Fatalf("connection %d: %v", i+1, err)
		}
		conns = append(conns, nc)
		pingRaw(t, nc, uint64(i))
		if i%100 == 0 {
			peak = max(peak, threads(t))
		}
	}
	nThreads, rss := threads(t), rssBytes(t)
	peak = max(peak, nThreads)
	lat := make([]time.Duration, 0, 50)
	for range cap(lat) {
		t0 := time.Now()
		if _, err := cl.Exec(ctx, "noop", nil); err != nil {
			t.Fatalf("noop with %d idle clients: %v", n, err)
		}
		lat = append(lat, time.Since(t0))
	}
	slices.Sort(lat)
	for i := 0; i < n; i += max(1, n/10) { // idle clients are still served
		pingRaw(t, conns[i], uint64(n+i))
	}
	grown := rss - baseRSS
	t.Logf("%d idle clients: threads %d before, %d with them (peak %d); RSS %d MiB before, grew by %d MiB (%d KiB a connection); noop p50 %v, max %v",
		n, baseThreads, nThreads, peak, baseRSS>>20, grown>>20, grown/int64(n)>>10, lat[len(lat)/2], lat[len(lat)-1])
	if peak >= 100 {
		t.Errorf("%d idle clients: %d threads at peak (%d before them), want < 100", n, peak, baseThreads)
	}
	perConn := int64(40 << 10)
	if raceDetector {
		// Each idle connection's goroutine carries the race detector's
		// state too: 70-90 KiB a connection under -race on the
		// development machine, against 13-15 KiB without. The 40 KiB
		// bound is the product's; under -race the test still catches a
		// connection that holds a buffer or a thread.
		perConn = 128 << 10
	}
	if limit := int64(n) * perConn; grown > limit {
		t.Errorf("%d idle clients: RSS grew by %d MiB, want < %d MiB (%d KiB a connection)", n, grown>>20, limit>>20, perConn>>10)
	}
}
