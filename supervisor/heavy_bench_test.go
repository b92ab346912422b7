package supervisor

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/theus-run/theus/client"
	"github.com/theus-run/theus/demo"
	"github.com/theus-run/theus/pool"
	"github.com/theus-run/theus/protocol"
)

// The HEAVY benchmarks move 1 GiB tensors: they need about 3 GiB of
// memory (THEUS_BENCH_TENSOR=BYTES for another size).
func tensorBytes() int64 {
	if n, err := strconv.ParseInt(os.Getenv("THEUS_BENCH_TENSOR"), 10, 64); err == nil && n >= 4096 {
		return n / 4096 * 4096
	}
	return 1 << 30
}

// sink reads transfers on fd 3 (an 8-byte length, then the bytes) and
// acknowledges each, once read in full, with one byte.
func sink() {
	buf := make([]byte, 1<<20)
	var hdr [8]byte
	for {
		if _, err := readFull(3, hdr[:]); err != nil {
			return
		}
		n := int64(0)
		for i := range 8 {
			n |= int64(hdr[i]) << (8 * i)
		}
		for n > 0 {
			k, err := unix.Read(3, buf[:min(int64(len(buf)), n)])
			if err != nil || k == 0 {
				return
			}
			n -= int64(k)
		}
		unix.Write(3, []byte{1})
	}
}

func readFull(fd int, b []byte) (int, error) {
	got := 0
	for got < len(b) {
		n, err := unix.Read(fd, b[got:])
		if err != nil {
			return got, err
		}
		if n == 0 {
			return got, os.ErrClosed
		}
		got += n
	}
	return got, nil
}

// socketCopy sends src through a Unix socket to another process, which
// reads all of it, and waits for its acknowledgement.
func socketCopy(b *testing.B, fd int, src []byte) time.Duration {
	t := time.Now()
	var hdr [8]byte
	for i := range 8 {
		hdr[i] = byte(int64(len(src)) >> (8 * i))
	}
	unix.Write(fd, hdr[:])
	for off := 0; off < len(src); {
		n, err := unix.Write(fd, src[off:min(len(src), off+1<<20)])
		if err != nil {
			b.Fatal(err)
		}
		off += n
	}
	var ack [1]byte
	if _, err := readFull(fd, ack[:]); err != nil {
		b.Fatal(err)
	}
	return time.Since(t)
}

func heavySupervisor(b *testing.B, workers int, size int64, inline int) *harness {
	return benchSupervisorWith(b, Config{Workers: workers, HeavySize: size, HeavyInline: inline})
}

func execB(b *testing.B, c *client.Client, process string, args any) {
	if _, err := c.Exec(context.Background(), process, args); err != nil {
		b.Fatalf("%s: %v", process, err)
	}
}

func median(ds []time.Duration) time.Duration {
	slices.Sort(ds)
	return ds[len(ds)/2]
}

// prefaulted returns n bytes of private memory, every page touched: the
// in-process baselines never fault.
func prefaulted(n int64) []float32 {
	xs := make([]float32, n/4)
	for i := 0; i < len(xs); i += 1024 {
		xs[i] = 1
	}
	return xs
}

// BenchmarkHeavyHandoff: tensor.peek of one element of a 1 GiB tensor
// against the same peek of a 4 KiB tensor, and against copying 1 GiB
// through a Unix socket to another process, all in one run. The peeks go
// through a client (two hops); dispatch-peek is the supervisor-to-worker
// handoff alone (an in-process Execute).
func BenchmarkHeavyHandoff(b *testing.B) {
	big := tensorBytes()
	h := heavySupervisor(b, 1, big+64<<20, 0)
	c := benchClient(b, h)
	execB(b, c, "tensor.fill", map[string]any{"key": "big", "n": big / 4, "value": 1})
	execB(b, c, "tensor.fill", map[string]any{"key": "small", "n": 1024, "value": 1})
	var small, large, direct []time.Duration
	args := []byte(`{"key":"big","index":` + strconv.FormatInt(big/4-1, 10) + `}`)
	for b.Loop() {
		t := time.Now()
		execB(b, c, "tensor.peek", map[string]any{"key": "small", "index": 1023})
		small = append(small, time.Since(t))
		t = time.Now()
		execB(b, c, "tensor.peek", map[string]any{"key": "big", "index": big/4 - 1})
		large = append(large, time.Since(t))
		t = time.Now() // the handoff alone: supervisor to worker and back, no client hop
		if rep := h.s.Execute(context.Background(), &protocol.Execute{Process: "tensor.peek", Args: args}); rep.Err != nil {
			b.Fatal(rep.Err)
		}
		direct = append(direct, time.Since(t))
	}
	b.StopTimer()
	fd := peer(b, "sink", unix.SOCK_STREAM)
	src := make([]byte, big)
	for i := 0; i < len(src); i += 4096 {
		src[i] = 1
	}
	var copies []time.Duration
	for range 3 {
		copies = append(copies, socketCopy(b, fd, src))
	}
	ps, pl, pd, cp := median(small), median(large), median(direct), slices.Min(copies)
	b.ReportMetric(float64(pd.Microseconds()), "dispatch-peek-1GiB-µs")
	b.ReportMetric(float64(cp)/float64(pd), "socket-copy/dispatch-peek-1GiB")
	b.ReportMetric(float64(ps.Microseconds()), "peek-4KiB-µs")
	b.ReportMetric(float64(pl.Microseconds()), "peek-1GiB-µs")
	b.ReportMetric(float64(cp.Milliseconds()), "socket-copy-ms")
	b.ReportMetric(float64(pl)/float64(ps), "peek-1GiB/peek-4KiB")
	b.ReportMetric(float64(cp)/float64(pl), "socket-copy/peek-1GiB")
}

// BenchmarkHeavySum: tensor.sum over a 1 GiB tensor in a worker against
// the same sum over 1 GiB of pre-faulted private memory in this process.
func BenchmarkHeavySum(b *testing.B) {
	big := tensorBytes()
	h := heavySupervisor(b, 1, big+64<<20, 0)
	c := benchClient(b, h)
	execB(b, c, "tensor.fill", map[string]any{"key": "big", "n": big / 4, "value": 1})
	local := prefaulted(big)
	var worker, inproc []time.Duration
	for b.Loop() {
		t := time.Now()
		execB(b, c, "tensor.sum", map[string]any{"key": "big"})
		worker = append(worker, time.Since(t))
		t = time.Now()
		demo.SumF32(local)
		inproc = append(inproc, time.Since(t))
	}
	w, l := median(worker), median(inproc)
	b.ReportMetric(float64(big)/w.Seconds()/1e9, "sum-GB/s")
	b.ReportMetric(float64(big)/l.Seconds()/1e9, "inprocess-GB/s")
	b.ReportMetric(l.Seconds()/w.Seconds(), "bandwidth-ratio")
}

// BenchmarkHeavyFill: tensor.fill of a 1 GiB tensor, committed, against
// filling 1 GiB of pre-faulted private memory in this process.
func BenchmarkHeavyFill(b *testing.B) {
	big := tensorBytes()
	h := heavySupervisor(b, 1, 2*big+64<<20, 0) // the new tensor and the one it replaces
	c := benchClient(b, h)
	local := prefaulted(big)
	var worker, inproc []time.Duration
	for b.Loop() {
		t := time.Now()
		execB(b, c, "tensor.fill", map[string]any{"key": "big", "n": big / 4, "value": 2})
		worker = append(worker, time.Since(t))
		t = time.Now()
		demo.FillF32(local, 2)
		inproc = append(inproc, time.Since(t))
	}
	b.Logf("fills %v, in process %v", worker, inproc)
	w, l := median(worker), median(inproc)
	b.ReportMetric(float64(w.Milliseconds()), "fill-commit-ms")
	b.ReportMetric(float64(l.Milliseconds()), "inprocess-fill-ms")
	b.ReportMetric(w.Seconds()/l.Seconds(), "fill-ratio")
}

// BenchmarkHeavyStart: what a 1 GiB zone adds to starting a supervisor
// with 2 workers (start with it minus start without it, same run),
// against one MADV_POPULATE_WRITE of a fresh 1 GiB memfd per mapping
// (the supervisor's and each worker's).
func BenchmarkHeavyStart(b *testing.B) {
	const workers = 2
	big := tensorBytes()
	exe, _ := os.Executable()
	start := func(size int64) time.Duration {
		sock := filepath.Join(b.TempDir(), "run", "s.sock")
		t := time.Now()
		s, err := Start(Config{Plugins: []pool.Plugin{{Command: []string{exe}}}, Workers: workers, Socket: sock, HeavySize: size, Log: zerolog.Nop()})
		d := time.Since(t)
		if err != nil {
			b.Fatal(err)
		}
		s.Shutdown(context.Background())
		return d
	}
	populate := func() time.Duration {
		fd, err := unix.MemfdCreate("bench", unix.MFD_CLOEXEC)
		if err != nil {
			b.Fatal(err)
		}
		defer unix.Close(fd)
		unix.Ftruncate(fd, big)
		mem, err := unix.Mmap(fd, 0, int(big), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
		if err != nil {
			b.Fatal(err)
		}
		defer unix.Munmap(mem)
		t := time.Now()
		if err := unix.Madvise(mem, unix.MADV_POPULATE_WRITE); err != nil {
			b.Skip("no MADV_POPULATE_WRITE")
		}
		return time.Since(t)
	}
	var with, without, raw []time.Duration
	for b.Loop() {
		without = append(without, start(0))
		with = append(with, start(big))
		raw = append(raw, populate())
	}
	extra := median(with) - median(without)
	base := time.Duration(workers+1) * median(raw)
	b.ReportMetric(float64(extra.Milliseconds()), "zone-ms")
	b.ReportMetric(float64(median(raw).Milliseconds()), "populate-1GiB-ms")
	b.ReportMetric(extra.Seconds()/base.Seconds(), "start-ratio")
}

// BenchmarkHeavyInline: tensor.fill and tensor.peek of tensors from
// 1 KiB to 256 KiB, inline (their bytes in the messages) against through
// the arena, to choose the inline limit.
func BenchmarkHeavyInline(b *testing.B) {
	for _, op := range []string{"fill", "peek"} {
		for _, size := range []int64{64, 256, 1 << 10, 2 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10} {
			for _, mode := range []string{"inline", "arena"} {
				b.Run(op+"-"+mode+"-"+shmSize(size), func(b *testing.B) {
					inline := 1 << 20 // everything here inline
					if mode == "arena" {
						inline = 1 // nothing inline
					}
					h := heavySupervisor(b, 1, 64<<20, inline)
					c := benchClient(b, h)
					fill := map[string]any{"key": "t", "n": size / 4, "value": 1}
					execB(b, c, "tensor.fill", fill)
					if op == "fill" {
						latency(b, func() { execB(b, c, "tensor.fill", fill) })
						return
					}
					latency(b, func() { execB(b, c, "tensor.peek", map[string]any{"key": "t", "index": 0}) })
				})
			}
		}
	}
}

func shmSize(n int64) string {
	if n < 1<<10 {
		return strconv.FormatInt(n, 10) + "B"
	}
	return strconv.FormatInt(n>>10, 10) + "KiB"
}
