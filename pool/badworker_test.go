package pool

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

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
	c.Send(&protocol.Hello{Magic: protocol.Magic, Protocol: protocol.Version, PID: int64(os.Getpid()),
		Processes: []protocol.ProcessInfo{{Name: "noop", Semantic: "pure"}}})
	if _, err := c.Recv(); err != nil {
		return 1
	}
	for {
		m, err := c.Recv()
		if err != nil {
			return 0
		}
		if _, ok := m.(*protocol.Dispatch); !ok {
			continue
		}
		raw := c.Raw()
		switch mode {
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
	for _, mode := range []string{"garbage", "oversized", "wrong-kind"} {
		t.Run(mode, func(t *testing.T) {
			p := start(t, 1, func(c *Config) {
				c.Env = append(c.Env, "THEUS_TEST_BAD_WORKER="+mode)
				c.MaxFrame = 1 << 20
				c.RestartBackoff = 10 * time.Millisecond
			})
			before := p.PIDs()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := p.Dispatch(ctx, &protocol.Dispatch{Process: "noop"})
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
