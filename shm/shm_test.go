package shm

import (
	"errors"
	"math"
	"math/big"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/theus-run/theus/internal/race"
)

// TestMain doubles as a child that writes through a read-only mapping
// (THEUS_TEST_WRITE_RO=fd): it must die of SIGSEGV.
func TestMain(m *testing.M) {
	if fd := os.Getenv("THEUS_TEST_WRITE_RO"); fd != "" {
		n, _ := strconv.Atoi(fd)
		r, err := Open(os.NewFile(uintptr(n), "ro"), false)
		if err != nil {
			os.Exit(3)
		}
		View[float32](r.Bytes(BlockAlign, 64))[0] = 1 // SIGSEGV here
		os.Exit(0)
	}
	race.SkipExitSleep() // this binary, started to write where it must not
	goleak.VerifyTestMain(m)
}

func create(t *testing.T, size int64) *Region {
	t.Helper()
	r, err := Create("theus-test", size)
	if errors.Is(err, ErrUnsupported) {
		requireSealing(t, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW) // skips only if the kernel lacks them
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestRegionIsSealedAndReserved(t *testing.T) {
	r := create(t, 3<<20)
	if r.Size() != 4<<20 {
		t.Fatalf("size %d, want rounded up to 4 MiB", r.Size())
	}
	fd := int(r.File().Fd())
	for _, size := range []int64{0, 1 << 20, 64 << 20} {
		if err := unix.Ftruncate(fd, size); !errors.Is(err, unix.EPERM) {
			t.Errorf("ftruncate to %d: %v, want EPERM (sealed)", size, err)
		}
	}
	// Growing by fallocate is refused too: the kernel keeps the size.
	if err := unix.Fallocate(fd, 0, 0, 8<<20); !errors.Is(err, unix.EPERM) {
		t.Errorf("fallocate past the end: %v, want EPERM (sealed)", err)
	}
	seals, err := unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := unix.F_SEAL_SHRINK | unix.F_SEAL_GROW; seals&want != want || seals&unix.F_SEAL_WRITE != 0 {
		t.Fatalf("seals %#x, want shrink and grow (%#x), not write", seals, want)
	}
	// The region is usable at once and reads back what was written.
	View[float32](r.Bytes(BlockAlign, 16))[3] = 2.5
	if View[float32](r.Bytes(BlockAlign, 16))[3] != 2.5 {
		t.Fatal("write lost")
	}
	checkPrepared(t, "owner", r)
	t.Logf("reserve %s, populate %s, huge pages %v (%d KiB)", r.Prepared.Reserve, r.Prepared.Populate, r.Prepared.Huge, r.Prepared.HugeKiB)
}

func TestReadOnlyPeerCannotWrite(t *testing.T) {
	r := create(t, Align)
	ro, err := r.ReadOnlyFile()
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if _, err := Open(ro, true); !errors.Is(err, unix.EACCES) {
		t.Fatalf("writable map of a read-only descriptor: %v, want EACCES", err)
	}
	peer, err := Open(ro, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Mprotect(peer.mem, unix.PROT_READ|unix.PROT_WRITE); !errors.Is(err, unix.EACCES) {
		t.Fatalf("mprotect to writable: %v, want EACCES", err)
	}
	if err := unix.Ftruncate(int(ro.Fd()), 0); err == nil {
		t.Fatal("ftruncate through the read-only descriptor succeeded")
	}
	unix.Munmap(peer.mem)

	// A write through the read-only mapping kills the writer, not us.
	exe, _ := os.Executable()
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.ExtraFiles = []*os.File{ro}
	cmd.Env = append(os.Environ(), "THEUS_TEST_WRITE_RO=3")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("child: %v", err)
	}
	// Go turns the SIGSEGV into a fatal "unexpected fault address" (exit 2).
	ws := ee.Sys().(syscall.WaitStatus)
	if !(ws.Signaled() && ws.Signal() == syscall.SIGSEGV) && !(ws.ExitStatus() == 2 && strings.Contains(string(out), "SIGSEGV")) {
		t.Fatalf("child writing a read-only mapping: %v\n%s", ws, out)
	}
	if View[float32](r.Bytes(BlockAlign, 64))[0] != 0 {
		t.Fatal("the read-only peer changed the region")
	}
}

func TestFutureWriteSealStopsReopening(t *testing.T) {
	requireSealing(t, unix.F_SEAL_FUTURE_WRITE) // Linux 5.1
	r := create(t, Align)
	if err := r.SealFutureWrite(); err != nil {
		t.Fatal(err)
	}
	if seals, err := unix.FcntlInt(r.File().Fd(), unix.F_GET_SEALS, 0); err != nil || seals&unix.F_SEAL_FUTURE_WRITE == 0 {
		t.Fatalf("seals %#x, %v: want F_SEAL_FUTURE_WRITE", seals, err)
	}
	// Reopening read-write through /proc works, but writing through it does not.
	rw, err := os.OpenFile("/proc/self/fd/"+strconv.Itoa(int(r.File().Fd())), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rw.Close()
	if _, err := unix.Mmap(int(rw.Fd()), 0, Align, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); !errors.Is(err, unix.EPERM) {
		t.Fatalf("writable map after F_SEAL_FUTURE_WRITE: %v, want EPERM", err)
	}
	if _, err := rw.WriteAt([]byte{1}, BlockAlign); err == nil {
		t.Fatal("write(2) after F_SEAL_FUTURE_WRITE succeeded")
	}
	// The mapping made before the seal stays writable.
	r.Bytes(BlockAlign, 1)[0] = 7
}

func TestAllocatorAgainstModel(t *testing.T) {
	const size = 1 << 20
	a := NewAllocator(size)
	var blocks []Block
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 20000 {
		if len(blocks) > 0 && (r.IntN(2) == 0 || i%97 == 0) {
			j := r.IntN(len(blocks))
			if err := a.Free(blocks[j].Off, blocks[j].Gen); err != nil {
				t.Fatal(err)
			}
			if err := a.Free(blocks[j].Off, blocks[j].Gen); !errors.Is(err, ErrStale) {
				t.Fatalf("double free: %v", err)
			}
			blocks = append(blocks[:j], blocks[j+1:]...)
			continue
		}
		n := int64(1 + r.IntN(8<<10))
		b, err := a.Alloc(n, "w")
		if errors.Is(err, ErrArenaFull) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if b.Off == 0 || b.Off%BlockAlign != 0 || b.Len < n || b.Off+b.Len > size {
			t.Fatalf("bad block %+v for %d bytes", b, n)
		}
		for _, o := range blocks {
			if b.Off < o.Off+o.Len && o.Off < b.Off+b.Len {
				t.Fatalf("block %+v overlaps %+v", b, o)
			}
		}
		blocks = append(blocks, b)
	}
	var sum int64
	for _, b := range blocks {
		sum += b.Len
	}
	if st := a.Stats(); st.InUse != sum || st.Blocks != len(blocks) {
		t.Fatalf("stats %+v, model %d bytes in %d blocks", st, sum, len(blocks))
	}
	for _, b := range blocks {
		a.Free(b.Off, b.Gen)
	}
	// Everything coalesces back into one span: no fragmentation left.
	if st := a.Stats(); st.InUse != 0 || st.FreeSpans != 1 || st.LargestFree != size-BlockAlign {
		t.Fatalf("after freeing everything: %+v", st)
	}
}

func TestArenaFullAndReclaim(t *testing.T) {
	a := NewAllocator(1 << 16)
	if _, err := a.Alloc(1<<16, "w"); !errors.Is(err, ErrArenaFull) {
		t.Fatalf("err = %v", err)
	}
	b1, _ := a.Alloc(1000, "dead")
	a.Alloc(1000, "alive")
	a.Alloc(1000, "dead")
	if freed := a.FreeOwner("dead"); freed != 2*1024 {
		t.Fatalf("freed %d", freed)
	}
	if st := a.Stats(); st.Blocks != 1 || st.InUse != 1024 {
		t.Fatalf("stats %+v", st)
	}
	// A reused offset gets a new generation: the old descriptor is stale.
	b4, _ := a.Alloc(1000, "new")
	if b4.Off == b1.Off && b4.Gen == b1.Gen {
		t.Fatal("generation reused")
	}
	if _, err := a.Lookup(b1.Off, b1.Gen); !errors.Is(err, ErrStale) {
		t.Fatalf("stale lookup: %v", err)
	}
}

func TestDescriptorChecks(t *testing.T) {
	a := NewAllocator(1 << 20)
	b, _ := a.Alloc(4096, "w1")
	good := Descriptor{Off: b.Off, Gen: b.Gen, Len: 4096, DType: F32, Shape: []int64{32, 32}}
	if _, err := good.Check(a, "w1"); err != nil {
		t.Fatal(err)
	}
	bad := map[string]struct {
		d     Descriptor
		owner string
		want  error
	}{
		"out of range":    {Descriptor{Off: 1 << 30, Gen: b.Gen, Len: 4, DType: F32, Shape: []int64{1}}, "w1", ErrStale},
		"stale gen":       {Descriptor{Off: b.Off, Gen: b.Gen + 1, Len: 4096, DType: F32, Shape: []int64{1024}}, "w1", ErrStale},
		"other's block":   {good, "w2", ErrNotOwner},
		"longer":          {Descriptor{Off: b.Off, Gen: b.Gen, Len: 8192, DType: F32, Shape: []int64{2048}}, "w1", ErrBadDescriptor},
		"shape too big":   {Descriptor{Off: b.Off, Gen: b.Gen, Len: 4096, DType: F32, Shape: []int64{33, 32}}, "w1", ErrBadDescriptor},
		"bad dtype":       {Descriptor{Off: b.Off, Gen: b.Gen, Len: 4096, DType: 99, Shape: []int64{1024}}, "w1", ErrBadDescriptor},
		"negative dim":    {Descriptor{Off: b.Off, Gen: b.Gen, Len: 4096, DType: U8, Shape: []int64{-1}}, "w1", ErrBadDescriptor},
		"overflow":        {Descriptor{Off: b.Off, Gen: b.Gen, Len: 4096, DType: U8, Shape: []int64{1 << 40, 1 << 40}}, "w1", ErrBadDescriptor},
		"stride outside":  {Descriptor{Off: b.Off, Gen: b.Gen, Len: 4096, DType: F32, Shape: []int64{32, 32}, Strides: []int64{33, 1}}, "w1", ErrBadDescriptor},
		"stride negative": {Descriptor{Off: b.Off, Gen: b.Gen, Len: 4096, DType: F32, Shape: []int64{32, 32}, Strides: []int64{-32, 1}}, "w1", ErrBadDescriptor},
		"strides rank":    {Descriptor{Off: b.Off, Gen: b.Gen, Len: 4096, DType: F32, Shape: []int64{32, 32}, Strides: []int64{1}}, "w1", ErrBadDescriptor},
	}
	for name, c := range bad {
		if _, err := c.d.Check(a, c.owner); !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", name, err, c.want)
		}
	}
	transposed := Descriptor{Off: b.Off, Gen: b.Gen, Len: 4096, DType: F32, Shape: []int64{32, 32}, Strides: []int64{1, 32}}
	if _, err := transposed.Check(a, "*"); err != nil {
		t.Fatalf("a transposed view: %v", err)
	}
}

// FuzzDescriptorCheck: descriptors from a worker, however forged, are
// accepted only when every element they reach lies inside their block.
func FuzzDescriptorCheck(f *testing.F) {
	f.Add(int64(64), int64(4096), uint64(1), uint8(2), int64(32), int64(32), int64(0), int64(0))
	f.Add(int64(64), int64(4096), uint64(1), uint8(2), int64(32), int64(32), int64(1), int64(32))
	// At the edge: the last element, one past it, one past a partial
	// element, broadcast, and strides whose reach overflows int64.
	f.Add(int64(64), int64(4096), uint64(1), uint8(2), int64(2), int64(1), int64(1023), int64(0))
	f.Add(int64(64), int64(4096), uint64(1), uint8(2), int64(2), int64(1), int64(1024), int64(0))
	f.Add(int64(64), int64(4095), uint64(1), uint8(2), int64(2), int64(1), int64(1023), int64(0))
	f.Add(int64(64), int64(4096), uint64(1), uint8(2), int64(4), int64(32), int64(0), int64(1))
	f.Add(int64(64), int64(4096), uint64(1), uint8(2), int64(3), int64(1), int64(math.MaxInt64/2+1), int64(0))
	f.Add(int64(64), int64(4096), uint64(1), uint8(2), int64(2), int64(2), int64(math.MaxInt64), int64(1))
	f.Fuzz(func(t *testing.T, off, n int64, gen uint64, dt uint8, d0, d1, s0, s1 int64) {
		a := NewAllocator(1 << 20)
		b, _ := a.Alloc(4096, "w")
		d := Descriptor{Off: off, Len: n, Gen: gen, DType: DType(dt), Shape: []int64{d0, d1}}
		if s0 != 0 || s1 != 0 {
			d.Strides = []int64{s0, s1}
		}
		got, err := d.Check(a, "w")
		if err != nil {
			return
		}
		if got.Off != b.Off || d.Len > b.Len {
			t.Fatalf("accepted %+v outside block %+v", d, b)
		}
		elems, _ := d.Elems()
		if elems == 0 {
			return
		}
		// The byte just past the farthest element, without overflow.
		last := big.NewInt(elems - 1)
		if d.Strides != nil {
			last = new(big.Int).Add(new(big.Int).Mul(big.NewInt(d0-1), big.NewInt(s0)), new(big.Int).Mul(big.NewInt(d1-1), big.NewInt(s1)))
		}
		end := new(big.Int).Mul(new(big.Int).Add(last, big.NewInt(1)), big.NewInt(d.DType.Size()))
		if end.Cmp(big.NewInt(d.Len)) > 0 {
			t.Fatalf("accepted %+v reaching element %v", d, last)
		}
	})
}
