package pool

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/theus-run/theus/heavy"
	"github.com/theus-run/theus/ipc"
	"github.com/theus-run/theus/protocol"
)

// badWorker completes the handshake like a real worker, then answers its
// first dispatch with the bytes named by mode.
func badWorker(mode string) int {
	f := os.NewFile(3, "sup")
	c, err := ipc.FileConn(f, ipc.Options{})
	if err != nil {
		return 1
	}
	procs := []protocol.ProcessInfo{{Name: "noop", Semantic: "pure"}}
	switch mode {
	case "twice":
		procs = append(procs, procs[0])
	case "semantic":
		procs[0].Semantic = "EFFECT"
	case "order-a":
		procs = append(procs, protocol.ProcessInfo{Name: "other", Semantic: "pure"})
	}
	c.Send(&protocol.Hello{Magic: protocol.Magic, Protocol: protocol.Version, PID: int64(os.Getpid()), Processes: procs})
	m, err := c.Recv()
	if err != nil {
		return 1
	}
	if w, ok := m.(*protocol.Welcome); ok && mode == "wrong-mapped" {
		c.Send(&protocol.Mapped{Slab: w.Slab + 1}) // not the slab it was given
		c.Recv()
		return 0
	}
	for {
		m, err := c.Recv()
		if err != nil {
			return 0
		}
		d, ok := m.(*protocol.Dispatch)
		if !ok {
			continue
		}
		raw := c.Raw()
		switch mode {
		case "unknown-result":
			c.Send(&protocol.Result{ID: d.ID + 1000})
		case "second-result":
			c.Send(&protocol.Result{ID: d.ID, Result: []byte("1")})
			c.Send(&protocol.Result{ID: d.ID, Result: []byte("2")})
		case "empty-alloc":
			// Ask for 0 and -1 bytes; answer with the codes granted.
			codes := ""
			for i, n := range []int64{0, -1} {
				c.Send(&protocol.Alloc{ID: uint64(i + 1), Dispatch: d.ID, Size: n})
				g, err := c.Recv()
				if gr, ok := g.(*protocol.Grant); err == nil && ok && gr.Err != nil {
					codes += " " + gr.Err.Code
				}
			}
			c.Send(&protocol.Result{ID: d.ID, Result: []byte(strconv.Quote(codes))})
		case "garbage":
			raw.Write([]byte{0, 0, 0, 4, byte(protocol.KindResult), 0xc1, 0xc1, 0xc1})
		case "oversized":
			raw.Write([]byte{0x40, 0, 0, 0, byte(protocol.KindResult)})
		case "wrong-kind":
			c.Send(&protocol.Dispatch{ID: 1})
		}
	}
}

func TestMalformedWorkerFramesReplaceTheWorker(t *testing.T) {
	for _, mode := range []string{"garbage", "oversized", "wrong-kind", "unknown-result"} {
		t.Run(mode, func(t *testing.T) {
			p := start(t, 1, func(c *Config) {
				c.Env = append(c.Env, "THEUS_TEST_BAD_WORKER="+mode)
				c.MaxFrame = 1 << 20
				c.RestartBackoff = 10 * time.Millisecond
			})
			before := p.PIDs()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, _, err := p.Dispatch(ctx, &protocol.Dispatch{Process: "noop"})
			if !errors.Is(err, ErrWorkerCrashed) {
				t.Fatalf("err = %v, want ErrWorkerCrashed", err)
			}
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
				if after := p.PIDs(); len(after) == 1 && after[0] != before[0] {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the worker was not replaced")
				}
			}
		})
	}
}

func TestWrongProtocolVersionRefused(t *testing.T) {
	exe, _ := os.Executable()
	_, err := Start(Config{Command: []string{exe}, Env: []string{"THEUS_TEST_OLD_WORKER=1"}, StartTimeout: 5 * time.Second})
	if !errors.Is(err, protocol.ErrProtocol) {
		t.Fatalf("err = %v, want a protocol mismatch", err)
	}
}

// oldWorker speaks a protocol version this supervisor does not.
func oldWorker() int {
	c, err := ipc.FileConn(os.NewFile(3, "sup"), ipc.Options{})
	if err != nil {
		return 1
	}
	c.Send(&protocol.Hello{Magic: protocol.Magic, Protocol: protocol.Version + 1, Processes: []protocol.ProcessInfo{{Name: "noop"}}})
	m, err := c.Recv()
	if r, ok := m.(*protocol.Refuse); ok && err == nil && r.Err.Code == protocol.CodeProtocol {
		return 0
	}
	return 1
}

// waitReplaced waits until the pool's one worker is another process than
// pid.
func waitReplaced(t *testing.T, p *Pool, pid int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if after := p.PIDs(); len(after) == 1 && after[0] != pid {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the worker was not replaced")
		}
	}
}

// A second Result for one dispatch is a worker that lost track of the
// connection: the first answers the call, the second ends the worker.
func TestSecondResultEndsTheWorker(t *testing.T) {
	p := start(t, 1, func(c *Config) {
		c.Env = append(c.Env, "THEUS_TEST_BAD_WORKER=second-result")
		c.RestartBackoff = 10 * time.Millisecond
	})
	before := p.PIDs()
	res, err := dispatch(t, p, "noop", "")
	if err != nil || string(res.Result) != "1" {
		t.Fatalf("dispatch = %v, %v; want the first result", res, err)
	}
	waitReplaced(t, p, before[0])
}

func TestEmptyAllocIsABadRequest(t *testing.T) {
	p := start(t, 1, func(c *Config) { c.Env = append(c.Env, "THEUS_TEST_BAD_WORKER=empty-alloc") })
	res, err := dispatch(t, p, "noop", "")
	if err != nil {
		t.Fatal(err)
	}
	if want := strconv.Quote(" " + protocol.CodeBadRequest + " " + protocol.CodeBadRequest); string(res.Result) != want {
		t.Fatalf("grants for 0 and -1 bytes: %s, want %s", res.Result, want)
	}
}

func TestMalformedHelloRefused(t *testing.T) {
	exe, _ := os.Executable()
	for mode, want := range map[string]string{"twice": `process "noop" twice`, "semantic": `semantic "EFFECT"`} {
		_, err := Start(Config{Command: []string{exe}, Env: []string{"THEUS_TEST_BAD_WORKER=" + mode}, StartTimeout: 10 * time.Second})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: Start = %v, want an error with %q", mode, err, want)
		}
	}
}

// flood writes garbage lines to stdout and stderr as fast as it can, for
// the life of the worker.
func flood() {
	line := []byte(strings.Repeat("garbage ", 16) + "\n")
	for {
		os.Stdout.Write(line)
		os.Stderr.Write(line)
	}
}

// A worker may list its processes in any order: two workers of one pool
// that list the same processes in different orders are both accepted.
func TestHelloOrderDoesNotMatter(t *testing.T) {
	exe, _ := os.Executable()
	p, err := Start(Config{Command: []string{exe}, Env: []string{"THEUS_TEST_BAD_WORKER=order-a"}, StartTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	if err := p.checkRegistry([]protocol.ProcessInfo{{Name: "other", Semantic: "pure"}, {Name: "noop", Semantic: "pure"}}); err != nil {
		t.Fatalf("the same processes in another order: %v", err)
	}
	if err := p.checkRegistry([]protocol.ProcessInfo{{Name: "other", Semantic: "effect"}, {Name: "noop", Semantic: "pure"}}); err == nil {
		t.Fatal("another contract accepted")
	}
	// A contract's paths are a set too.
	a := []protocol.ProcessInfo{{Name: "x", Inputs: []string{"domain.a", "domain.b"}, Outputs: []string{"domain.c", "domain.d"}}}
	b := []protocol.ProcessInfo{{Name: "x", Inputs: []string{"domain.b", "domain.a"}, Outputs: []string{"domain.d", "domain.c"}}}
	c := []protocol.ProcessInfo{{Name: "x", Inputs: []string{"domain.b", "domain.a"}, Outputs: []string{"domain.d"}}}
	if !sameInfo(a[0], b[0]) || sameInfo(a[0], c[0]) {
		t.Fatal("contracts compared by order, or a missing path ignored")
	}
}

// The handshake's Mapped must name the worker's own slab: one that names
// another is refused before the slab is sealed or shown to anyone.
func TestWrongMappedRefused(t *testing.T) {
	z, err := heavy.New(heavy.Config{Size: 8 << 20, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer z.Close()
	exe, _ := os.Executable()
	_, err = Start(Config{Command: []string{exe}, Heavy: z, Env: []string{"THEUS_TEST_BAD_WORKER=wrong-mapped"}, StartTimeout: 10 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "want mapped slab") {
		t.Fatalf("Start = %v, want the handshake refused for a wrong Mapped", err)
	}
	if st := z.Stats(); st.Slabs != 0 || st.Retired != 0 {
		t.Fatalf("a refused worker left a slab: %+v", st)
	}
}
