package pool

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/theus-run/theus/ipc"
	"github.com/theus-run/theus/protocol"
)

// TestHostileRingWorker: a worker that does what it likes with its ring
// pair and its doorbells (fills and saturates them, makes them blocking,
// reads the supervisor's wakes, keeps the park words saying what suits
// it), then hangs or dies, costs the supervisor nothing: a dispatch to
// it ends with its context or the worker's death, the slot gets a new
// worker, and Close returns. With eventfd doorbells the dispatch blocked
// in the supervisor's doorbell write for ever, and Close behind it.
func TestHostileRingWorker(t *testing.T) {
	for _, mode := range []string{"ring-hostile-hang", "ring-hostile-die"} {
		t.Run(mode, func(t *testing.T) {
			p := start(t, 1, func(c *Config) {
				c.Env = append(c.Env, "THEUS_TEST_BAD_WORKER="+mode)
				c.Transport = TransportRing
				c.RestartBackoff = 10 * time.Millisecond
				c.KillGrace = 200 * time.Millisecond
			})
			before := p.PIDs()
			for i := range 3 {
				done := make(chan error, 1)
				go func() {
					ctx, cancel := context.WithTimeout(context.Background(), time.Second)
					defer cancel()
					_, blocks, err := p.Dispatch(ctx, &protocol.Dispatch{Process: "noop"})
					blocks.Close()
					done <- err
				}()
				select {
				case err := <-done:
					if err == nil {
						t.Fatalf("dispatch %d: answered by a worker that never answers", i)
					}
					if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, ErrWorkerCrashed) {
						t.Fatalf("dispatch %d: %v", i, err)
					}
				case <-time.After(time.Minute):
					t.Fatalf("dispatch %d still running a minute after its deadline", i)
				}
			}
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
				if after := p.PIDs(); len(after) == 1 && len(before) == 1 && after[0] != before[0] {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the worker was not replaced")
				}
			}
			closed := make(chan struct{})
			go func() {
				p.Close(context.Background())
				close(closed)
			}()
			select {
			case <-closed:
			case <-time.After(time.Minute):
				t.Fatal("Close still waiting after a minute")
			}
		})
	}
}

// hostileRingWorker says in its Hello that it mapped its ring pair, and
// attacks it instead: it fills or saturates both of its doorbell
// descriptors and makes them blocking, reads the one it rings (taking
// what else is written to it), keeps the request ring's park word at
// parked (so that the supervisor rings at each Commit) and the reply
// ring's at running (so that it is never rung), and reads nothing. Then
// it hangs until the supervisor closes its socket (hang) or kills
// itself (die).
func hostileRingWorker(mode string) int {
	c, err := ipc.FileConn(os.NewFile(3, "sup"), ipc.Options{})
	if err != nil {
		return 1
	}
	fds := ringFDs()
	st, err := os.NewFile(uintptr(fds[0]), "ring").Stat()
	if err != nil {
		return 1
	}
	raw, err := unix.Mmap(fds[0], 0, int(st.Size()), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return 1
	}
	for _, fd := range fds[1:] {
		unix.SetNonblock(fd, true)
		max := binary.NativeEndian.AppendUint64(nil, 1<<64-2)
		for i := 0; i < 1<<14; i++ { // an eventfd at its largest count, a pipe full
			if _, err := unix.Write(fd, max); err != nil {
				break
			}
		}
		unix.FcntlInt(uintptr(fd), unix.F_SETFL, 0)
	}
	go func() { // take the supervisor's wakes
		runtime.LockOSThread()
		var b [64]byte
		for {
			if _, err := unix.Read(fds[2], b[:]); errors.Is(err, unix.EBADF) {
				return // a pipe's write end: nothing to take
			}
		}
	}()
	// The layout of docs/PROTOCOL.md#rings: the consumer park words at
	// +256 of the control blocks, the request ring's at 1024, the reply
	// ring's at 2048.
	reqPark := (*atomic.Uint32)(unsafe.Pointer(&raw[1024+256]))
	repPark := (*atomic.Uint32)(unsafe.Pointer(&raw[2048+256]))
	go func() {
		for {
			reqPark.Store(1)
			repPark.Store(0)
			time.Sleep(time.Millisecond)
		}
	}()
	c.Send(&protocol.Hello{Magic: protocol.Magic, Protocol: protocol.Version, PID: int64(os.Getpid()), Ring: true,
		Processes: []protocol.ProcessInfo{{Name: "noop", Semantic: "pure"}}})
	if _, err := c.Recv(); err != nil { // Welcome
		return 1
	}
	if mode == "ring-hostile-die" {
		time.Sleep(50 * time.Millisecond) // let the supervisor use it
		unix.Kill(os.Getpid(), unix.SIGKILL)
	}
	for { // ignore Pings and Cancels; exit with the socket
		if _, err := c.Recv(); err != nil {
			return 0
		}
	}
}
