package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/theus-run/theus/client"
	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/demo"
	"github.com/theus-run/theus/durable"
	"github.com/theus-run/theus/protocol"
	"github.com/theus-run/theus/signal"
)

// next is w's next item, failing after a generous wait.
func next(t *testing.T, w *client.Watcher) client.Signal {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := w.Next(ctx)
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	return s
}

// nextItem is s's next item, failing after a generous wait.
func nextItem(t *testing.T, s *signal.Sub) signal.Item {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	it, err := s.Next(ctx)
	if err != nil {
		t.Fatalf("in-process subscriber: %v", err)
	}
	return it
}

// `watch domain` sees domain.sig_ping and domain.orders.cmd_ship, not
// global.sig_x; a watch of everything sees all three, in version order.
// Signals written by a process (ping.mark is PURE: writing a signal is
// allowed, only reading one is not) and published from outside alike.
func TestWatchSubtree(t *testing.T) {
	h := start(t, 1, nil)
	if sem := h.s.procs["ping.mark"].spec.Semantic; sem != contract.Pure {
		t.Fatalf("ping.mark is %s, want PURE", sem)
	}
	ctx := context.Background()
	c := h.dial(t)
	dom, err := h.dial(t).Watch(ctx, "domain")
	if err != nil {
		t.Fatal(err)
	}
	all, err := h.dial(t).Watch(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, "ping.mark", map[string]any{"key": "a", "value": 1}); err != nil {
		t.Fatal(err)
	}
	v2, err := c.Signal(ctx, "domain.orders.cmd_ship", map[string]int{"order": 7})
	if err != nil || v2 != 2 {
		t.Fatalf("signal: version %d, %v", v2, err)
	}
	if _, err := c.Signal(ctx, "global.sig_x", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, "ping.send", nil); err != nil {
		t.Fatal(err)
	}
	want := []string{
		`1 domain.sig_ping {"key":"a","value":1}`,
		`2 domain.orders.cmd_ship {"order":7}`,
		`4 domain.sig_ping null`, // global.sig_x (3) is not under domain
	}
	for _, w := range want {
		if s := next(t, dom); fmt.Sprintf("%d %s %s", s.Version, s.Path, s.Value) != w || s.Lagged != 0 {
			t.Fatalf("watch domain: %+v, want %s", s, w)
		}
	}
	for v, p := range []string{"domain.sig_ping", "domain.orders.cmd_ship", "global.sig_x", "domain.sig_ping"} {
		if s := next(t, all); s.Version != uint64(v+1) || s.Path != p {
			t.Fatalf("watch all: %+v, want %s at %d", s, p, v+1)
		}
	}
	if err := dom.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := dom.Next(ctx); err != io.EOF {
		t.Fatalf("after Close: %v, want io.EOF", err)
	}
}

// signal.publish refuses a path outside the SIGNAL zone, a bad path, a
// bad body, and commits nothing; signal.watch refuses a bad prefix.
func TestSignalBadRequests(t *testing.T) {
	h := start(t, 1, nil)
	ctx := context.Background()
	c := h.dial(t)
	for _, body := range []string{
		`{"path":"domain.x"}`,
		`{"path":"domain..sig_x"}`,
		`{"path":""}`,
		`{}`,
		`{"path":"domain.sig_x","other":1}`,
		`{"path":"domain.sig_x","value":}`,
		`[1]`,
	} {
		rep := h.s.Call(ctx, &protocol.Call{Method: protocol.MethodSignalPublish, Body: []byte(body)})
		if rep.Err == nil || rep.Err.Code != protocol.CodeBadRequest {
			t.Errorf("signal.publish %s: %+v, want bad_request", body, rep)
		}
	}
	_, err := c.Signal(ctx, "domain.counter", 1)
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != protocol.CodeBadRequest || pe.Path != "domain.counter" {
		t.Fatalf("Signal to a DATA path: %v, want bad_request naming it", err)
	}
	if v := h.s.store.Version(); v != 0 {
		t.Fatalf("version %d after refused publishes", v)
	}
	if _, err := c.Watch(ctx, "domain..x"); !errors.As(err, &pe) || pe.Code != protocol.CodeBadRequest {
		t.Fatalf("watch of a bad prefix: %v, want bad_request", err)
	}
}

// Under load, many writers commit signals beside DATA (ping.mark) and
// from outside (signal.publish) at once, with --durability sync. A
// watcher that, on each signal, reads the key its commit wrote must find
// it at exactly the signal's version, in a snapshot at least that new,
// and the journal must have it on disk; versions strictly increase and
// none is missed.
func TestSignalOrderingUnderLoad(t *testing.T) {
	h := start(t, 2, func(cfg *Config) { cfg.StateDir = t.TempDir(); cfg.Durability = durable.Sync })
	ctx := context.Background()
	w, err := h.dial(t).Watch(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	in := h.s.signals.Subscribe("", 0) // in-process, as flux will
	defer in.Close()
	const writers, each = 6, 20
	var wg sync.WaitGroup
	for g := range writers {
		c := h.dial(t)
		wg.Go(func() {
			for i := range each {
				var err error
				if i%4 == 3 {
					_, err = c.Signal(ctx, fmt.Sprintf("domain.cmd_w%d", g), i)
				} else {
					_, err = c.Exec(ctx, "ping.mark", map[string]any{"key": fmt.Sprintf("k%d_%d", g, i), "value": i})
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	getter := h.dial(t)
	var last uint64
	for n := 0; n < writers*each; n++ {
		s := next(t, w)
		if s.Lagged != 0 || s.Version <= last {
			t.Fatalf("item %d: %+v after version %d", n, s, last)
		}
		last = s.Version
		if d := h.s.journal.Durable(); uint64(d) < s.Version {
			t.Fatalf("signal at version %d published with version %d on disk", s.Version, d)
		}
		if s.Path != demo.PingSignal {
			continue
		}
		var m demo.Mark
		if err := json.Unmarshal(s.Value, &m); err != nil {
			t.Fatal(err)
		}
		v, err := getter.Get(ctx, demo.PingsPath+"."+m.Key)
		if err != nil {
			t.Fatalf("signal at version %d: get of the key its commit wrote: %v", s.Version, err)
		}
		if v.Version < s.Version || v.Entries[0].Version != s.Version {
			t.Fatalf("signal at version %d: get saw snapshot %d, entry version %d", s.Version, v.Version, v.Entries[0].Version)
		}
	}
	wg.Wait()
	var inLast uint64
	for range writers * each {
		it := nextItem(t, in)
		if it.Lagged != 0 || it.Version <= inLast {
			t.Fatalf("in-process: %+v after %d", it, inLast)
		}
		inLast = it.Version
	}
}

// A subscriber that reads nothing does not slow commits: every commit
// completes while its buffer is full, its signals are counted as missed,
// one with room gets them all, and it then gets a lagged item with the
// exact number missed, before the next signal.
func TestSlowSubscriberLagged(t *testing.T) {
	h := start(t, 1, nil)
	ctx := context.Background()
	slow := h.s.signals.Subscribe("domain", 4)
	defer slow.Close()
	roomy := h.s.signals.Subscribe("domain", 1000)
	defer roomy.Close()
	const n = 100
	c := h.dial(t)
	for i := range n {
		if _, err := c.Exec(ctx, "ping.send", map[string]int{"value": i}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		if it := nextItem(t, roomy); it.Version != uint64(i+1) || it.Lagged != 0 {
			t.Fatalf("the subscriber with room got %+v at %d", it, i)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for st := h.s.signals.Stats(); st.Published+st.Missed < 2*n; st = h.s.signals.Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v", st)
		}
		time.Sleep(time.Millisecond)
	}
	if missed := h.s.signals.Stats().Missed; missed != n-4 {
		t.Fatalf("missed %d of %d with a buffer of 4, want %d", missed, n, n-4)
	}
	for i := range 4 {
		if it := nextItem(t, slow); it.Version != uint64(i+1) || it.Lagged != 0 {
			t.Fatalf("the slow subscriber got %+v, want version %d", it, i+1)
		}
	}
	// The count comes with the next signal, which has room now.
	if _, err := c.Exec(ctx, "ping.send", nil); err != nil {
		t.Fatal(err)
	}
	if it := nextItem(t, slow); it.Lagged != n-4 {
		t.Fatalf("got %+v, want lagged %d", it, n-4)
	}
	if it := nextItem(t, slow); it.Version != n+1 || it.Lagged != 0 {
		t.Fatalf("after the lag: %+v, want version %d", it, n+1)
	}
}

// A watch ends with shutting_down when the supervisor drains.
func TestWatchEndsOnDrain(t *testing.T) {
	h := startNoServe(t, func(*Config) {})
	c, err := client.Dial(h.s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	w, err := c.Watch(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	go h.s.Shutdown(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = w.Next(ctx)
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != protocol.CodeShuttingDown {
		t.Fatalf("Next after a drain: %v, want shutting_down", err)
	}
}

// A Stream.Close sent right behind its Subscribe ends the stream: the
// connection's reader opens a stream before it reads the next message,
// so the Unsubscribe finds it (it was ignored when the stream's own
// goroutine opened it, and the stream then never ended). A second
// Subscribe with an id that is open is refused and leaves the first.
func TestUnsubscribeAtOnce(t *testing.T) {
	h := start(t, 1, nil)
	c := h.dial(t)
	for i := range 200 {
		st, err := c.Subscribe(context.Background(), protocol.StreamSignals, map[string]string{"prefix": "domain.x"})
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
		deadline := time.After(30 * time.Second)
	drain: // what the stream sent before the Unsubscribe came, then its end
		for {
			select {
			case _, ok := <-st.Items():
				if !ok {
					break drain
				}
			case <-deadline:
				t.Fatalf("try %d: a stream closed right after its Subscribe never ended", i)
			}
		}
		if err := st.Err(); err != nil {
			t.Fatalf("try %d: a stream closed by the client ended with %v", i, err)
		}
	}
}

// A Subscribe with the id of a stream still open is a protocol error:
// an End for that id would end the open stream too in the client's
// eyes while its Events went on. The client gets a Refuse (bad_request)
// and the connection ends; no End for the open stream comes before the
// Refuse (after it, a client reads nothing more).
func TestSubscribeWithAnOpenIDIsRefused(t *testing.T) {
	h := start(t, 1, nil)
	c := rawClient(t, h.sock)
	defer c.Close()
	sub := &protocol.Subscribe{ID: 7, Method: protocol.StreamSignals, Body: []byte(`{"prefix":"domain"}`)}
	for range 2 { // the second while the first is open: the reader opens a stream before it reads on
		if err := c.Send(sub); err != nil {
			t.Fatal(err)
		}
	}
	for {
		m, err := c.Recv()
		if err != nil {
			t.Fatalf("the connection ended (%v) without a Refuse", err)
		}
		switch m := m.(type) {
		case *protocol.Event:
			if m.End {
				t.Fatalf("an End for stream %d (%v): the open stream looks over while it goes on", m.ID, m.Err)
			}
			continue // the open stream's first item
		case *protocol.Refuse:
			if m.Err.Code != protocol.CodeBadRequest {
				t.Fatalf("Refuse %v, want bad_request", &m.Err)
			}
		default:
			t.Fatalf("got %s", m.Kind())
		}
		break
	}
	for { // what the open stream sent as the connection closed (a client stops reading at the Refuse), then the end
		if _, err := c.Recv(); err != nil {
			break
		}
	}
}
