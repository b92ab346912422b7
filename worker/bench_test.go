package worker

// BenchmarkRingDispatch: the worker's side of the dispatch path, in this
// process: Serve with a ring pair, fed Dispatches through its request
// ring and read back through its reply ring, as the supervisor's pool
// does. allocs/op are the worker's (the feeding side allocates nothing
// per dispatch); its CPU is most of ns/op.

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/theus-run/theus/ipc"
	"github.com/theus-run/theus/protocol"
	"github.com/theus-run/theus/ring"
)

func BenchmarkRingDispatch(b *testing.B) {
	noop := Process("noop", Contract{}, func(*Ctx, None) (None, error) { return None{}, nil })
	for _, inflight := range []int{1, 16} {
		b.Run("inflight="+strconv.Itoa(inflight), func(b *testing.B) {
			pair := ringWorker(b, noop)
			out := ring.NewShared(pair.Writer())
			r := pair.Reader()
			var batch ring.Batch
			var buf []byte
			ctx := context.Background()
			dp := &protocol.Dispatch{Attempt: 1, Process: "noop", Version: 1}
			sent, got := 0, 0
			send := func() {
				sent++
				dp.ID = uint64(sent)
				dp.Deadline = time.Now().Add(time.Minute).UnixNano()
				var err error
				if buf, err = encodeRecord(buf[:0], dp); err != nil {
					b.Fatal(err)
				}
				if _, err := out.Append(buf, false); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range min(inflight, b.N) {
				send()
			}
			for got < b.N {
				n, err := r.ReadBatch(&batch, 0)
				if err != nil {
					b.Fatal(err)
				}
				if n == 0 {
					if err := r.Wait(ctx); err != nil {
						b.Fatal(err)
					}
					continue
				}
				for i := range n {
					if rec := batch.Record(i); len(rec) == 0 || protocol.Kind(rec[0]) != protocol.KindResult {
						b.Fatalf("reply record %v", rec)
					}
				}
				got += n
				for range min(n, b.N-sent) {
					send()
				}
			}
		})
	}
}

// encodeRecord is a ring record: m's kind, then its msgpack body.
func encodeRecord(dst []byte, m protocol.Message) ([]byte, error) {
	return m.MarshalMsg(append(dst, byte(m.Kind())))
}

// ringWorker runs Serve in this process with a ring pair, past the
// handshake, and returns the supervisor's side of the pair.
func ringWorker(b testing.TB, defs ...Def) *ring.Pair {
	b.Helper()
	pair, _ := ringWorkerConn(b, defs...)
	return pair
}

// ringWorkerConn is ringWorker, with the supervisor's end of the
// worker's socket.
func ringWorkerConn(b testing.TB, defs ...Def) (*ring.Pair, *ipc.Conn) {
	b.Helper()
	pair, err := ring.New(4096)
	if err != nil {
		b.Skipf("no ring pair here: %v", err)
	}
	sup, wrk, err := ring.NewDoorbells()
	if err != nil {
		b.Fatal(err)
	}
	if err := pair.SetDoorbells(sup.Req, sup.Rep); err != nil {
		b.Fatal(err)
	}
	sup.Close()
	// Serve takes the descriptors it is given: hand it copies.
	mem, err := unix.Dup(int(pair.File().Fd()))
	if err != nil {
		b.Fatal(err)
	}
	wrkFDs := []int{mem}
	for _, f := range []*os.File{wrk.Req, wrk.Rep} {
		fd, err := unix.Dup(int(f.Fd()))
		if err != nil {
			b.Fatal(err)
		}
		wrkFDs = append(wrkFDs, fd)
	}
	wrk.Close()
	b.Setenv(EnvRingFD, fmt.Sprintf("%d,%d,%d", wrkFDs[0], wrkFDs[1], wrkFDs[2]))
	b.Cleanup(func() { pair.Close() }) // after Serve returned (cleanups run last first)
	conn, h := serveHere(b, defs...)
	if !h.Ring {
		b.Fatal("the worker did not map the ring pair")
	}
	return pair, conn
}
