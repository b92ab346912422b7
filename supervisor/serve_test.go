package supervisor

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/theus-run/theus/protocol"
)

// TestPipelinedFramesThatFillAReceive: 64 Unsubscribes of no stream (8
// bytes each framed: 512, exactly what the connection's reader takes in
// one receive) and a Ping, in one write, which nothing answers but the
// Pong: the reader must receive again after the 64, not wait for a
// readiness event that never comes.
func TestPipelinedFramesThatFillAReceive(t *testing.T) {
	h := start(t, 1, nil)
	c := rawClient(t, h.sock)
	defer c.Close()
	time.Sleep(50 * time.Millisecond) // the reader waits
	var ms []protocol.Message
	for range 64 {
		ms = append(ms, &protocol.Unsubscribe{ID: 200})
	}
	ms = append(ms, &protocol.Ping{Seq: 7})
	if err := c.SendBatch(ms...); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	m, err := c.Recv()
	if err != nil {
		t.Fatalf("64 Unsubscribes (512 bytes), then a Ping: %v", err)
	}
	if p, ok := m.(*protocol.Pong); !ok || p.Seq != 7 {
		t.Fatalf("got %#v, want Pong 7", m)
	}
}

// TestClientThatStopsReading: a client that sends Pings and never reads
// the Pongs makes a reply's write time out (Config.WriteTimeout) on the
// connection's reader, which closes the connection: the supervisor
// counts it no more, while the client is still there, and Shutdown
// returns.
func TestClientThatStopsReading(t *testing.T) {
	const writeTimeout = time.Second
	h := start(t, 1, func(c *Config) { c.WriteTimeout = writeTimeout })
	peer, err := net.Dial("unix", h.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	go func() {
		for i := range 3000 { // one at a time: each handled inside the reader's wait
			f, _ := protocol.AppendFrame(nil, &protocol.Ping{Seq: uint64(i)})
			if _, err := peer.Write(f); err != nil {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	// The client is still there: the write's timeout alone ends it, well
	// before the default one (10 s) would.
	for deadline := time.Now().Add(8 * writeTimeout); h.s.Stats().Clients != 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s after a client stopped reading, with a write timeout of %s, the supervisor counts %d clients", 8*writeTimeout, writeTimeout, h.s.Stats().Clients)
		}
	}
	peer.Close()
	done := make(chan struct{})
	go func() { h.s.Shutdown(context.Background()); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Shutdown did not return")
	}
}

// TestClientThatSendsAndCloses: a client that sends a request with no
// reply and closes, its end coming with the request, is gone: its place
// under MaxClients is free again soon after.
func TestClientThatSendsAndCloses(t *testing.T) {
	h := start(t, 1, func(c *Config) { c.MaxClients = 1 })
	nc, err := net.Dial("unix", h.sock)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // accepted, and its reader waits
	frame, _ := protocol.AppendFrame(nil, &protocol.Unsubscribe{ID: 7})
	if _, err := nc.Write(frame); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	c := h.dial(t)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		_, err := c.Status(context.Background())
		if err == nil {
			return
		}
		if !errors.Is(err, protocol.ErrTooManyClients) {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("30 s after a client sent an Unsubscribe and closed, its place is taken: %v", err)
		}
	}
}
