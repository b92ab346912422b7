package ring

import (
	"context"
	"fmt"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// BenchmarkEcho: 64-byte request/reply echoes with a peer process (the
// test binary re-executed), keeping 1, 16 or 256 in flight, over
//
//   - seqpacket: SOCK_SEQPACKET, one blocking write and read per message;
//   - stream: SOCK_STREAM, the peer echoes what one read returns with one
//     write, the benchmark tops up with one write per batch of replies;
//   - ring: this package, one Commit (at most one wake) per batch, parking
//     at once when empty;
//   - ring-spin: the same, both readers polling 5 µs before parking;
//   - ring-bell: the same, both readers sleeping on doorbell pipes
//     through the netpoller, the peer at GOMAXPROCS 1: the transport
//     between the supervisor and a worker, without their work.
//
// wakes/op counts the benchmark's wakes of its peer, parks/op its own
// parks (each one a wake by the peer). One op is one round trip; compare the ns/op of a row with the others of
// the same in-flight count, from the same run (docs/BENCHMARKS.md).
func BenchmarkEcho(b *testing.B) {
	for _, inflight := range []int{1, 16, 256} {
		for _, tr := range []struct {
			name string
			run  func(b *testing.B, inflight int)
		}{
			{"seqpacket", benchSeqpacket},
			{"stream", benchStream},
			{"ring", func(b *testing.B, n int) { benchRing(b, n, helperRingEcho) }},
			{"ring-spin", func(b *testing.B, n int) { benchRing(b, n, helperRingEchoSpin) }},
			{"ring-bell", func(b *testing.B, n int) { benchRing(b, n, helperRingEchoBell) }},
		} {
			b.Run(fmt.Sprintf("%s/inflight=%d", tr.name, inflight), func(b *testing.B) { tr.run(b, inflight) })
		}
	}
}

const benchMsg = 64

func socketPeer(b *testing.B, typ int, mode string) (fd int, p *peer) {
	fds, err := unix.Socketpair(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	theirs := os.NewFile(uintptr(fds[1]), "peer")
	p = startPeer(b, mode, theirs)
	theirs.Close()
	b.Cleanup(func() { unix.Close(fds[0]) })
	return fds[0], p
}

func benchSeqpacket(b *testing.B, inflight int) {
	fd, p := socketPeer(b, unix.SOCK_SEQPACKET, helperSeqpacket)
	msg := make([]byte, benchMsg)
	buf := make([]byte, 2*benchMsg)
	b.SetBytes(benchMsg)
	b.ResetTimer()
	sent := 0
	for ; sent < min(inflight, b.N); sent++ {
		if _, err := unix.Write(fd, msg); err != nil {
			b.Fatal(err)
		}
	}
	for range b.N {
		if n, err := unix.Read(fd, buf); err != nil || n != benchMsg {
			b.Fatalf("read %d: %v", n, err)
		}
		if sent < b.N {
			if _, err := unix.Write(fd, msg); err != nil {
				b.Fatal(err)
			}
			sent++
		}
	}
	b.StopTimer()
	unix.Shutdown(fd, unix.SHUT_WR)
	if err := p.stop(); err != nil {
		b.Fatal(err)
	}
}

func benchStream(b *testing.B, inflight int) {
	fd, p := socketPeer(b, unix.SOCK_STREAM, helperStream)
	msgs := make([]byte, inflight*benchMsg)
	buf := make([]byte, (inflight+1)*benchMsg)
	b.SetBytes(benchMsg)
	b.ResetTimer()
	sent := min(inflight, b.N)
	if err := writeAll(fd, msgs[:sent*benchMsg]); err != nil {
		b.Fatal(err)
	}
	got, partial := 0, 0
	for got < b.N {
		n, err := unix.Read(fd, buf)
		if err != nil || n == 0 {
			b.Fatalf("read %d: %v", n, err)
		}
		partial += n
		k := partial / benchMsg
		partial %= benchMsg
		got += k
		if more := min(k, b.N-sent); more > 0 {
			if err := writeAll(fd, msgs[:more*benchMsg]); err != nil {
				b.Fatal(err)
			}
			sent += more
		}
	}
	b.StopTimer()
	unix.Shutdown(fd, unix.SHUT_WR)
	if err := p.stop(); err != nil {
		b.Fatal(err)
	}
}

func benchRing(b *testing.B, inflight int, mode string) {
	sup, err := New(MinCapacity)
	if err != nil {
		b.Fatal(err)
	}
	defer sup.Close()
	var bells []*os.File
	switch mode {
	case helperRingEchoSpin:
		sup.Reader().SetSpin(spinBench)
	case helperRingEchoBell:
		sb, wb, err := NewDoorbells()
		if err != nil {
			b.Fatal(err)
		}
		defer wb.Close()
		err = sup.SetDoorbells(sb.Req, sb.Rep)
		sb.Close()
		if err != nil {
			b.Fatal(err)
		}
		bells = []*os.File{wb.Req, wb.Rep}
	}
	p := startPeer(b, mode, sup.File(), bells...)
	w, r := sup.Writer(), sup.Reader()
	msg := make([]byte, benchMsg)
	var batch Batch
	ctx := context.Background()
	b.SetBytes(benchMsg)
	b.ResetTimer()
	sent := 0
	for ; sent < min(inflight, b.N); sent++ {
		if err := w.Append(msg); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Commit(); err != nil {
		b.Fatal(err)
	}
	batches := 0
	for got := 0; got < b.N; batches++ {
		if err := r.Wait(ctx); err != nil {
			b.Fatal(err)
		}
		k, err := r.ReadBatch(&batch, 0)
		if err != nil {
			b.Fatal(err)
		}
		got += k
		for more := min(k, b.N-sent); more > 0; more-- {
			if err := w.Append(msg); err != nil {
				b.Fatal(err)
			}
			sent++
		}
		if err := w.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(w.Wakes())/float64(b.N), "wakes/op")
	b.ReportMetric(float64(b.N)/float64(batches), "replies/batch")
	b.ReportMetric(float64(r.Parks())/float64(b.N), "parks/op")
	if err := p.stop(); err != nil {
		b.Fatal(err)
	}
}
