package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/theus-run/theus/client"
	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/demo"
	"github.com/theus-run/theus/pool"
	"github.com/theus-run/theus/protocol"
)

func pullAll(t *testing.T, c *client.Client, topic string) []client.Message {
	t.Helper()
	ms, err := c.PullLease(context.Background(), topic, 10000, time.Millisecond)
	if err != nil {
		t.Fatalf("pull %s: %v", topic, err)
	}
	return ms
}

// Many concurrent calls of a process that increments one counter and
// emits its new value conflict; only the attempts that committed leave
// a message: as many messages as successful calls, each the value and
// version that call committed.
func TestOutboxNoMessagesFromConflicts(t *testing.T) {
	h := start(t, 4, nil)
	c := h.dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	type commit struct{ value, version uint64 }
	var mu sync.Mutex
	var commits []commit
	conflicts := 0
	for round := 0; round < 10 && (conflicts == 0 || round < 2); round++ {
		var wg sync.WaitGroup
		for range 50 {
			wg.Go(func() {
				res, err := c.Exec(ctx, "outbox.incr", nil)
				if errors.Is(err, protocol.ErrRetryLimit) {
					return // committed nothing: must have emitted nothing
				}
				if err != nil {
					t.Errorf("outbox.incr: %v", err)
					return
				}
				n, _ := strconv.ParseUint(string(res.Result), 10, 64)
				mu.Lock()
				commits = append(commits, commit{n, res.Version})
				conflicts += res.Conflicts
				mu.Unlock()
			})
		}
		wg.Wait()
	}
	if conflicts == 0 {
		t.Fatal("no conflicts in 500 concurrent calls: the test proves nothing")
	}
	ms := pullAll(t, c, "counts")
	var got []commit
	for _, m := range ms {
		n, err := strconv.ParseUint(string(m.Payload), 10, 64)
		if err != nil {
			t.Fatalf("message %s: payload %s", m.ID, m.Payload)
		}
		got = append(got, commit{n, m.Version})
	}
	cmp := func(a, b commit) int { return int(a.value) - int(b.value) }
	slices.SortFunc(commits, cmp)
	slices.SortFunc(got, cmp)
	if !slices.Equal(got, commits) {
		t.Fatalf("%d messages for %d commits (%d conflicts):\nmessages %v\ncommits  %v", len(got), len(commits), conflicts, got, commits)
	}
	for i, cm := range commits {
		if cm.value != uint64(i+1) {
			t.Fatalf("commit %d holds %d: the counter lost an update", i, cm.value)
		}
	}
	t.Logf("%d commits, %d conflicts, %d messages", len(commits), conflicts, len(ms))
}

// A call that fails after emitting, and a PURE process that emits,
// leave no message.
func TestOutboxFailedCallsEmitNothing(t *testing.T) {
	h := start(t, 1, nil)
	c := h.dial(t)
	_, err := c.Exec(context.Background(), "outbox.fail", nil)
	wantCode(t, err, "boom")
	_, err = c.Exec(context.Background(), "outbox.pure", nil)
	wantCode(t, err, protocol.CodeContractViolation)
	if ms := pullAll(t, c, "counts"); len(ms) != 0 {
		t.Fatalf("messages from failed calls: %+v", ms)
	}
	if v := h.s.store.Version(); v != 0 {
		t.Fatalf("version %d after failed calls, want 0", v)
	}
}

func placeOrders(t *testing.T, c *client.Client, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if _, err := c.Exec(context.Background(), "order.place", demo.Order{ID: id, Item: "tea", Qty: 1}); err != nil {
			t.Fatalf("order.place %s: %v", id, err)
		}
	}
}

func ids(ms []client.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

// Ack removes exactly the messages it names; a pulled message that is
// not acked comes back once its lease ends, and not before.
func TestOutboxAckAndLease(t *testing.T) {
	h := start(t, 1, nil)
	c := h.dial(t)
	ctx := context.Background()
	now := time.Unix(1000, 0)
	o := h.s.outbox
	o.mu.Lock()
	o.now = func() time.Time { return now } // read under o.mu
	o.mu.Unlock()
	advance := func(d time.Duration) {
		o.mu.Lock()
		now = now.Add(d)
		o.mu.Unlock()
	}
	placeOrders(t, c, "a", "b", "c", "d", "e")
	ms, err := c.PullLease(ctx, demo.OrdersTopic, 2, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(ms); !slices.Equal(got, []string{"orders.0", "orders.1"}) {
		t.Fatalf("first pull %v", got)
	}
	if ms[0].Version != 1 || string(ms[0].Payload) != `{"id":"a","item":"tea","qty":1}` {
		t.Fatalf("first message %+v", ms[0])
	}
	ms, err = c.PullLease(ctx, demo.OrdersTopic, 0, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(ms); !slices.Equal(got, []string{"orders.2", "orders.3", "orders.4"}) {
		t.Fatalf("second pull %v: leased messages came back", got)
	}
	advance(9 * time.Second)
	if ms, _ := c.Pull(ctx, demo.OrdersTopic, 0); len(ms) != 0 {
		t.Fatalf("before the leases end: %v", ids(ms))
	}
	res, err := c.Ack(ctx, "orders.1", "orders.3", "orders.3", "orders.7")
	if err != nil {
		t.Fatal(err)
	}
	if res.Acked != 2 || !slices.Equal(res.Unknown, []string{"orders.7"}) {
		t.Fatalf("ack: %+v", res)
	}
	advance(2 * time.Second)
	ms, err = c.Pull(ctx, demo.OrdersTopic, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(ms); !slices.Equal(got, []string{"orders.0", "orders.2", "orders.4"}) {
		t.Fatalf("after the leases end: %v, want the unacked ones", got)
	}
	if res, err := c.Ack(ctx, "orders.1"); err != nil || res.Acked != 0 || !slices.Equal(res.Unknown, []string{"orders.1"}) {
		t.Fatalf("second ack of orders.1: %+v, %v", res, err)
	}
}

// Bad pull and ack bodies are bad_request and change nothing.
func TestOutboxBadRequests(t *testing.T) {
	h := start(t, 1, nil)
	c := h.dial(t)
	placeOrders(t, c, "a")
	tooMany := make([]string, maxAckIDs+1)
	for i := range tooMany {
		tooMany[i] = "orders." + strconv.Itoa(i)
	}
	many, _ := json.Marshal(map[string]any{"ids": tooMany})
	tests := []struct {
		name, method, body string
	}{
		{"pull without topic", protocol.MethodOutboxPull, `{}`},
		{"pull dotted topic", protocol.MethodOutboxPull, `{"topic":"a.b"}`},
		{"pull private topic", protocol.MethodOutboxPull, `{"topic":"internal_x"}`},
		{"pull negative max", protocol.MethodOutboxPull, `{"topic":"orders","max":-1}`},
		{"pull negative lease", protocol.MethodOutboxPull, `{"topic":"orders","lease_ms":-1}`},
		{"pull lease too long", protocol.MethodOutboxPull, `{"topic":"orders","lease_ms":86400001}`},
		{"pull unknown field", protocol.MethodOutboxPull, `{"topic":"orders","limit":1}`},
		{"pull trailing data", protocol.MethodOutboxPull, `{"topic":"orders"} {}`},
		{"pull not an object", protocol.MethodOutboxPull, `[1]`},
		{"ack no ids", protocol.MethodOutboxAck, `{}`},
		{"ack empty ids", protocol.MethodOutboxAck, `{"ids":[]}`},
		{"ack no seq", protocol.MethodOutboxAck, `{"ids":["orders"]}`},
		{"ack bad seq", protocol.MethodOutboxAck, `{"ids":["orders.x"]}`},
		{"ack negative seq", protocol.MethodOutboxAck, `{"ids":["orders.-1"]}`},
		{"ack padded seq", protocol.MethodOutboxAck, `{"ids":["orders.00"]}`},
		{"ack seq too big", protocol.MethodOutboxAck, `{"ids":["orders.18446744073709551616"]}`},
		{"ack bad topic", protocol.MethodOutboxAck, `{"ids":["sig_x.0"]}`},
		{"ack one bad among good", protocol.MethodOutboxAck, `{"ids":["orders.0","orders.x"]}`},
		{"ack too many", protocol.MethodOutboxAck, string(many)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := h.s.Call(context.Background(), &protocol.Call{ID: 1, Method: tt.method, Body: []byte(tt.body)})
			if rep.Err == nil || rep.Err.Code != protocol.CodeBadRequest {
				t.Fatalf("got %s, %+v; want bad_request", rep.Body, rep.Err)
			}
			if v := h.s.store.Version(); v != 1 {
				t.Fatalf("version %d after a bad request, want 1", v)
			}
		})
	}
	if ms := pullAll(t, c, demo.OrdersTopic); len(ms) != 1 {
		t.Fatalf("messages after bad requests: %v", ids(ms))
	}
}

// Unacked messages survive a restart under --durability sync, acked ones
// do not come back, and ids are not reused.
func TestOutboxSurvivesRestart(t *testing.T) {
	state := t.TempDir()
	startIt := func() (*Supervisor, *client.Client) {
		sock := filepath.Join(t.TempDir(), "run", "s.sock")
		s, err := Start(Config{Plugins: testPlugins(t), Workers: 1, Socket: sock, StateDir: state,
			Log: zerolog.Nop(), Pool: pool.Config{Env: quickExit()}})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { s.Serve(context.Background()); close(done) }()
		c, err := client.Dial(sock)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(); s.Shutdown(context.Background()); <-done })
		return s, c
	}
	s, c := startIt()
	placeOrders(t, c, "a", "b", "c")
	if _, err := c.Ack(context.Background(), "orders.1"); err != nil {
		t.Fatal(err)
	}
	pullAll(t, c, demo.OrdersTopic) // leased: a restart ends the lease
	c.Close()
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, c = startIt()
	placeOrders(t, c, "d")
	ms, err := c.Pull(context.Background(), demo.OrdersTopic, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(ms); !slices.Equal(got, []string{"orders.0", "orders.2", "orders.3"}) {
		t.Fatalf("after a restart: %v", got)
	}
	if string(ms[1].Payload) != `{"id":"c","item":"tea","qty":1}` {
		t.Fatalf("orders.2 holds %s", ms[1].Payload)
	}
}

// A worker's emits are checked again by the supervisor (a worker need
// not use the SDK): a topic that is not one DATA-zone segment or a
// payload that is not JSON fails the attempt with process_failed, a
// PURE process emitting with contract_violation.
func TestOutboxDeltaChecksEmits(t *testing.T) {
	effect := contract.Contract{Name: "p", Semantic: contract.Effect}
	ok := protocol.Emit{Topic: "orders", Payload: []byte(`{"a":1}`)}
	d, err := outboxDelta("p", effect, []protocol.Emit{ok, ok})
	if err != nil || len(d) != 2 || d[0].Op != contract.OpAppend || d[0].Path != "global.internal_outbox.orders" {
		t.Fatalf("good emits: %+v, %v", d, err)
	}
	tests := []struct {
		name  string
		c     contract.Contract
		emits []protocol.Emit
		code  string
		want  string
	}{
		{"dotted topic", effect, []protocol.Emit{ok, {Topic: "a.b", Payload: []byte("1")}}, protocol.CodeProcessFailed, `outbox message 1: contract: invalid outbox topic "a.b"`},
		{"private topic", effect, []protocol.Emit{{Topic: "internal_x", Payload: []byte("1")}}, protocol.CodeProcessFailed, "PRIVATE zone"},
		{"empty topic", effect, []protocol.Emit{{Payload: []byte("1")}}, protocol.CodeProcessFailed, "invalid outbox topic"},
		{"payload not JSON", effect, []protocol.Emit{{Topic: "orders", Payload: []byte("{")}}, protocol.CodeProcessFailed, "payload is not JSON"},
		{"empty payload", effect, []protocol.Emit{{Topic: "orders"}}, protocol.CodeProcessFailed, "payload is not JSON"},
		{"pure", contract.Contract{Name: "p"}, []protocol.Emit{ok}, protocol.CodeContractViolation, "PURE process emits"},
		{"too many", effect, make([]protocol.Emit, protocol.MaxEmits+1), protocol.CodeProcessFailed, fmt.Sprintf("over %d", protocol.MaxEmits)},
	}
	s := &Supervisor{}
	s.base = context.Background()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := outboxDelta("p", tt.c, tt.emits)
			we := s.wireError(err)
			if we.Code != tt.code || !strings.Contains(we.Message, tt.want) {
				t.Fatalf("got %v, want %s containing %q", we, tt.code, tt.want)
			}
		})
	}
}
