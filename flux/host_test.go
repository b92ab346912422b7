package flux

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
)

// fakeHost is a Host over a bare cas.Store, for engine tests. It knows
// one process, "add", that adds 1 to domain.counters.<args.key> in the
// same commit as the step's records. Hooks let a test make a step slow,
// fail, or commit and then report an error (a reply lost after the
// commit, as a deadline during the durability wait does).
type fakeHost struct {
	store *cas.Store
	known atomic.Int64 // calls of Known: each load of a file makes some

	mu   sync.Mutex
	subs map[chan Signal]struct{}
	// before, when set, runs before a step commits; an error fails the
	// step without a commit.
	before func(ctx context.Context, call Call) error
	// after, when set, runs after a step committed; an error is what Exec
	// reports, the commit standing.
	after func(ctx context.Context, call Call) error
	// durable, when set, runs after Commit applied its records, as the
	// wait for the disk does; an error is what Commit reports.
	durable func(ctx context.Context) error
}

func newFakeHost() *fakeHost {
	return &fakeHost{store: cas.New(cas.Config{}), subs: map[chan Signal]struct{}{}}
}

func (h *fakeHost) Known(p string) bool {
	h.known.Add(1)
	return p == "add"
}

func (h *fakeHost) Snapshot(context.Context, ...contract.Path) (*cas.Snapshot, error) {
	return h.store.Snapshot(), nil
}

func (h *fakeHost) Commit(ctx context.Context, sys cas.Delta, _ cas.Fence) (uint64, error) {
	for {
		snap := h.store.Snapshot()
		r, err := h.store.Commit(ctx, snap.Version(), nil, sys, cas.Options{Mode: cas.Smart})
		snap.Release()
		if err == nil {
			if h.durable != nil {
				if err := h.durable(ctx); err != nil {
					return 0, err
				}
			}
			return uint64(r.Version), nil
		}
		if ctx.Err() != nil {
			return 0, err
		}
	}
}

func (h *fakeHost) Exec(ctx context.Context, call Call) (Done, error) {
	h.mu.Lock()
	before, after := h.before, h.after
	h.mu.Unlock()
	if before != nil {
		if err := before(ctx, call); err != nil {
			return Done{}, err
		}
	}
	if err := ctx.Err(); err != nil {
		return Done{}, failf("canceled", "%v", err)
	}
	var args struct {
		Key string `json:"key"`
	}
	if err := json.Unmarshal(call.Args, &args); err != nil || args.Key == "" {
		return Done{}, failf("bad_args", "add: want {key}")
	}
	for {
		snap := h.store.Snapshot()
		p := contract.Path("domain.counters." + args.Key)
		n := 0
		if e, ok := snap.Get(p); ok {
			n, _ = strconv.Atoi(string(e.Value))
		}
		var d cas.Delta
		d.Set(p, []byte(strconv.Itoa(n+1)))
		d = append(d, call.System(1)...)
		r, err := h.store.Commit(ctx, snap.Version(), []contract.Path{p}, d, cas.Options{Mode: cas.Smart, OpID: call.OpID})
		snap.Release()
		if err != nil {
			if ctx.Err() != nil {
				return Done{}, failf("canceled", "%v", err)
			}
			continue // a conflict: again
		}
		if after != nil {
			if err := after(ctx, call); err != nil {
				return Done{}, err
			}
		}
		return Done{Version: uint64(r.Version), Attempts: 1}, nil
	}
}

func (h *fakeHost) Signals() (<-chan Signal, func()) {
	c := make(chan Signal, 64)
	h.mu.Lock()
	h.subs[c] = struct{}{}
	h.mu.Unlock()
	var once sync.Once
	return c, func() {
		once.Do(func() {
			h.mu.Lock()
			delete(h.subs, c)
			h.mu.Unlock()
		})
	}
}

// signal commits nothing; it publishes a signal to every subscriber. A
// subscriber whose buffer is full misses it, as with the supervisor's hub.
func (h *fakeHost) signal(path string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	v := uint64(h.store.Version())
	for c := range h.subs {
		select {
		case c <- Signal{Version: v, Path: path}:
		default:
		}
	}
}

// subscribers is how many signal subscriptions are open.
func (h *fakeHost) subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// counter reads domain.counters.<key>.
func (h *fakeHost) counter(key string) int {
	snap := h.store.Snapshot()
	defer snap.Release()
	e, ok := snap.Get(contract.Path("domain.counters." + key))
	if !ok {
		return 0
	}
	n, _ := strconv.Atoi(string(e.Value))
	return n
}

// newEngine starts an engine over h with files (name → YAML).
func newEngine(t *testing.T, h *fakeHost, files map[string]string) *Engine {
	t.Helper()
	e, err := New(Config{Host: h, Dir: writeFiles(t, files), Log: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

// eventually polls cond until it holds, or fails the test after 30 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
	}
}
