package ring

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
	"unsafe"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/theus-run/theus/internal/race"
)

// TestMain doubles as the peer process of the cross-process tests and
// benchmarks (THEUS_RING_HELPER names which; see helper_test.go).
func TestMain(m *testing.M) {
	if h := os.Getenv(helperEnv); h != "" {
		os.Exit(runHelper(h))
	}
	race.SkipExitSleep() // this binary, started as a helper
	goleak.VerifyTestMain(m)
}

// heapRing is one ring in ordinary memory, with its writer and reader: the
// code under test is the same, the buffer is small and the test can
// scribble on it.
type heapRing struct {
	mem  []byte
	life life
	w    *Writer
	r    *Reader
}

func newHeapRing(t testing.TB, capacity uint64) *heapRing {
	t.Helper()
	words := make([]uint64, (ctlSize+capacity)/8) // 8-byte aligned
	mem := unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), len(words)*8)
	h := &heapRing{mem: mem}
	m := newRingMem("request", mem, 0, ctlSize, capacity)
	h.w = &Writer{m: m, w: waiter{life: &h.life, word: m.prodPark}}
	h.r = &Reader{m: m, w: waiter{life: &h.life, word: m.consPark}}
	return h
}

func (h *heapRing) data() []byte { return h.mem[ctlSize:] }

// newPair makes a pair and maps it a second time as the worker, in this
// process: two mappings of one memfd.
func newTestPair(t testing.TB, capacity int) (sup, wrk *Pair) {
	t.Helper()
	sup, err := New(capacity)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sup.Close() })
	wrk, err = Map(dupFile(t, sup.File()), Worker)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wrk.Close() })
	return sup, wrk
}

func dupFile(t testing.TB, f *os.File) *os.File {
	t.Helper()
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	return os.NewFile(uintptr(fd), "ring-dup")
}

// randomRecord returns a record of up to max bytes: mostly small ones,
// as calls are, some up to 16 KiB and one in 64 up to max.
func randomRecord(rng *rand.Rand, max int) []byte {
	var n int
	switch k := rng.IntN(64); {
	case k == 0:
		n = rng.IntN(max + 1)
	case k < 16:
		n = rng.IntN(min(max, 16<<10) + 1)
	default:
		n = rng.IntN(min(max, 256) + 1)
	}
	b := make([]byte, n)
	seed := rng.Uint32()
	for i := range b {
		b[i] = byte(seed + uint32(i)*2654435761>>13)
	}
	return b
}

func TestPairSealedAndLaidOut(t *testing.T) {
	sup, wrk := newTestPair(t, 64<<10)
	if sup.Capacity() < 64<<10 || sup.Capacity()%64 != 0 || sup.Capacity() != wrk.Capacity() {
		t.Fatalf("capacities %d and %d: want the same, >= 64 KiB, a multiple of 64", sup.Capacity(), wrk.Capacity())
	}
	fd := sup.File().Fd()
	seals, err := unix.FcntlInt(fd, unix.F_GET_SEALS, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_SEAL; seals&want != want {
		t.Fatalf("seals %#x, want %#x", seals, want)
	}
	if _, err := unix.FcntlInt(fd, unix.F_ADD_SEALS, unix.F_SEAL_FUTURE_WRITE); !errors.Is(err, unix.EPERM) {
		t.Errorf("adding a seal: %v, want EPERM (F_SEAL_SEAL)", err)
	}
	if err := unix.Ftruncate(int(fd), 0); !errors.Is(err, unix.EPERM) {
		t.Errorf("ftruncate: %v, want EPERM", err)
	}
	if sup.Writer().MaxRecord() != sup.Capacity()/2-headerSize {
		t.Errorf("MaxRecord %d", sup.Writer().MaxRecord())
	}
}

func TestMapRefusesWhatIsNotAPair(t *testing.T) {
	memfd := func(t *testing.T, seals int, header func([]byte)) *os.File {
		fd, err := unix.MemfdCreate("not-a-ring", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
		if err != nil {
			t.Fatal(err)
		}
		f := os.NewFile(uintptr(fd), "memfd")
		if err := unix.Ftruncate(fd, 1<<20); err != nil {
			t.Fatal(err)
		}
		hdr := make([]byte, 64)
		header(hdr)
		if _, err := f.WriteAt(hdr, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
			t.Fatal(err)
		}
		return f
	}
	all := unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_SEAL
	good := layout{capacity: 64 << 10}
	tests := []struct {
		name   string
		seals  int
		header func([]byte)
	}{
		{"resealable", unix.F_SEAL_SHRINK | unix.F_SEAL_GROW, good.writeHeader},
		{"resizable", unix.F_SEAL_SEAL, good.writeHeader},
		{"no header", all, func([]byte) {}},
		{"other version", all, func(b []byte) { good.writeHeader(b); b[hdrVersion]++ }},
		{"capacity past the end", all, layout{capacity: 1 << 20}.writeHeader},
		{"unaligned capacity", all, layout{capacity: 64<<10 + 4}.writeHeader},
		{"moved reply ring", all, func(b []byte) { good.writeHeader(b); b[hdrRepData]++ }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Map(memfd(t, tt.seals, tt.header), Worker)
			if err == nil {
				p.Close()
				t.Fatal("mapped")
			}
			if !errors.Is(err, ErrBadLayout) && tt.seals == all {
				t.Fatalf("%v, want ErrBadLayout", err)
			}
			t.Log(err)
		})
	}
	f := memfd(t, all, good.writeHeader)
	if _, err := Map(f, Role(7)); err == nil {
		t.Fatal("mapped as Role(7)")
	}
	// A regular file holding a pair's bytes, which its owner could
	// truncate under the mapping: it cannot be sealed, so it is refused.
	sup, err := New(64 << 10)
	if err != nil {
		t.Fatal(err)
	}
	defer sup.Close()
	img := make([]byte, 1<<20)
	n, err := sup.File().ReadAt(img, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	reg, err := os.Create(filepath.Join(t.TempDir(), "pair"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Write(img[:n]); err != nil {
		t.Fatal(err)
	}
	if p, err := Map(reg, Worker); !errors.Is(err, ErrBadLayout) {
		if p != nil {
			p.Close()
		}
		t.Fatalf("Map of a regular file with a pair's bytes = %v, want ErrBadLayout", err)
	}
}

// Records cross in both directions between two mappings of one memfd,
// the worker side echoing from its own goroutine.
func TestPairEchoTwoMappings(t *testing.T) {
	sup, wrk := newTestPair(t, 16<<10)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- echo(ctx, wrk) }()

	rng := rand.New(rand.NewPCG(1, 2))
	w, r := sup.Writer(), sup.Reader()
	var buf []byte
	for i := range 3000 {
		rec := randomRecord(rng, w.MaxRecord())
		for {
			err := w.Write(rec)
			if err == nil {
				break
			}
			if !errors.Is(err, ErrFull) {
				t.Fatal(err)
			}
			if err := w.Wait(ctx, len(rec)); err != nil {
				t.Fatal(err)
			}
		}
		if err := r.Wait(ctx); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		got, err := r.Read(buf)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if !bytes.Equal(got, rec) {
			t.Fatalf("record %d: echoed %d bytes, want %d (%x... vs %x...)", i, len(got), len(rec), head(got), head(rec))
		}
		buf = got
	}
	wrk.Close() // interrupts the echo's Wait
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("echo ended with %v, want ErrClosed", err)
	}
}

func head(b []byte) []byte { return b[:min(len(b), 8)] }

// echo writes back every record it reads, one Commit (at most one wake)
// per batch, until its pair is closed or ctx is done.
func echo(ctx context.Context, p *Pair) error {
	r, w := p.Reader(), p.Writer()
	var b Batch
	for {
		if err := r.Wait(ctx); err != nil {
			return err
		}
		n, err := r.ReadBatch(&b, 0)
		if err != nil {
			return err
		}
		for i := range n {
			for {
				err := w.Append(b.Record(i))
				if err == nil {
					break
				}
				if !errors.Is(err, ErrFull) {
					return err
				}
				if err := w.Commit(); err != nil {
					return err
				}
				if err := w.Wait(ctx, len(b.Record(i))); err != nil {
					return err
				}
			}
		}
		if err := w.Commit(); err != nil {
			return err
		}
	}
}
