package shm

import (
	"bufio"
	"errors"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// requireSealing skips the test only if the kernel lacks memfd sealing
// or one of seals (probed on a fresh memfd: an unknown seal is EINVAL).
// Any other failure fails the test.
func requireSealing(t *testing.T, seals int) {
	t.Helper()
	fd, err := unix.MemfdCreate("theus-probe", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EINVAL) {
		t.Skipf("the kernel lacks sealable memfds: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); errors.Is(err, unix.EINVAL) {
		t.Skipf("the kernel lacks seals %#x: %v", seals, err)
	} else if err != nil {
		t.Fatal(err)
	}
}

var smapsHeader = regexp.MustCompile(`^([0-9a-f]+)-[0-9a-f]+ `)

// smapsKiB sums the named fields of the mapping that starts at mem, read
// from /proc/self/smaps independently of hugeKiB.
func smapsKiB(t *testing.T, mem []byte, fields ...string) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	start := uint64(uintptr(unsafe.Pointer(&mem[0])))
	var total int64
	in, found := false, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if m := smapsHeader.FindStringSubmatch(line); m != nil {
			addr, _ := strconv.ParseUint(m[1], 16, 64)
			in = addr == start
			found = found || in
			continue
		}
		if !in {
			continue
		}
		for _, field := range fields {
			if rest, ok := strings.CutPrefix(line, field+":"); ok {
				n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
				if err != nil {
					t.Fatalf("smaps line %q: %v", line, err)
				}
				total += n
			}
		}
	}
	if err := sc.Err(); err != nil || !found {
		t.Fatalf("no mapping at %#x in smaps (%v)", start, err)
	}
	return total
}

// checkPrepared: every page of the mapping is resident (or swapped out,
// never missing), and Prepared says how much of it huge pages back.
func checkPrepared(t *testing.T, who string, r *Region) {
	t.Helper()
	if kib := smapsKiB(t, r.mem, "Rss", "Swap"); kib != r.Size()>>10 {
		t.Errorf("%s: %d KiB resident or swapped, want all %d: not pre-faulted", who, kib, r.Size()>>10)
	}
	p := r.Prepared
	if p.Huge != (p.HugeKiB > 0) || p.HugeKiB < 0 || p.HugeKiB > r.Size()>>10 {
		t.Errorf("%s: Prepared %+v", who, p)
	}
}

func TestCreateSizes(t *testing.T) {
	for _, c := range []struct{ size, want int64 }{{1, Align}, {Align - 1, Align}, {Align, Align}, {Align + 1, 2 * Align}} {
		r := create(t, c.size)
		if r.Size() != c.want || !r.Writable() {
			t.Errorf("Create(%d): size %d writable %v; want %d", c.size, r.Size(), r.Writable(), c.want)
		}
		r.Bytes(r.Size()-1, 1)[0] = 1 // the last byte is there
	}
	for _, size := range []int64{0, -1, -Align} {
		if r, err := Create("theus-test", size); err == nil {
			r.Close()
			t.Errorf("Create(%d) succeeded", size)
		}
	}
}

// A memfd name longer than the kernel allows (249 bytes) is its EINVAL,
// returned, not a panic on a bad descriptor.
func TestCreateBadName(t *testing.T) {
	if r, err := Create(strings.Repeat("n", 300), Align); !errors.Is(err, unix.EINVAL) {
		if err == nil {
			r.Close()
		}
		t.Fatalf("Create with a 300-byte name: %v, want EINVAL", err)
	}
}

// Create reserves every page before it maps any: when the pages cannot
// be had (here: over RLIMIT_FSIZE, which fallocate obeys), it fails
// there, never with a SIGBUS on first touch.
func TestCreateReservesUpFront(t *testing.T) {
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	if old.Cur != unix.RLIM_INFINITY && old.Cur <= 2*Align {
		t.Skipf("RLIMIT_FSIZE already %d", old.Cur)
	}
	lim := old
	lim.Cur = Align
	if err := unix.Setrlimit(unix.RLIMIT_FSIZE, &lim); err != nil {
		t.Fatal(err)
	}
	r, err := Create("theus-test", 2*Align)
	if err := unix.Setrlimit(unix.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(err, unix.EFBIG) {
		if err == nil {
			r.Close()
		}
		t.Fatalf("Create over RLIMIT_FSIZE: %v, want EFBIG from the reservation", err)
	}
}

func TestRegionPrepared(t *testing.T) {
	r := create(t, 2*Align)
	checkPrepared(t, "owner", r)

	ro, err := r.ReadOnlyFile()
	if err != nil {
		t.Fatal(err)
	}
	reader, err := Open(ro, false)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	if reader.Writable() || reader.Size() != r.Size() {
		t.Fatalf("read-only peer: writable %v size %d", reader.Writable(), reader.Size())
	}
	checkPrepared(t, "read-only peer", reader)

	rw, err := os.OpenFile("/proc/self/fd/"+strconv.Itoa(int(r.File().Fd())), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	writer, err := Open(rw, true)
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()
	if !writer.Writable() || writer.Size() != r.Size() {
		t.Fatalf("writable peer: writable %v size %d", writer.Writable(), writer.Size())
	}
	checkPrepared(t, "writable peer", writer)
	// One region, three mappings: a write through the peer is seen by all.
	off := r.Size() - BlockAlign
	View[int64](writer.Bytes(off, 8))[0] = 42
	if View[int64](r.Bytes(off, 8))[0] != 42 || View[int64](reader.Bytes(off, 8))[0] != 42 {
		t.Fatal("a write through the writable peer is not in the region")
	}
}

func TestBytesPanicsOutside(t *testing.T) {
	r := create(t, Align)
	if b := r.Bytes(Align-8, 8); len(b) != 8 || cap(b) != 8 {
		t.Fatalf("Bytes at the end: len %d cap %d", len(b), cap(b))
	}
	defer func() {
		if recover() == nil {
			t.Fatal("Bytes past the end of the region did not panic")
		}
	}()
	r.Bytes(Align-8, 16)
}

func TestClose(t *testing.T) {
	r, err := Create("theus-test", Align)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err == nil {
		t.Fatal("a second Close reported nothing")
	}
	if f, err := r.ReadOnlyFile(); err == nil {
		f.Close()
		t.Fatal("ReadOnlyFile of a closed region succeeded")
	}
	if err := r.SealFutureWrite(); err == nil {
		t.Fatal("SealFutureWrite of a closed region succeeded")
	}
}

// Open maps only a memfd sealed against both shrinking and growing.
func TestOpenRefuses(t *testing.T) {
	requireSealing(t, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW)
	memfd := func(size int64, seals int) *os.File {
		fd, err := unix.MemfdCreate("theus-test", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
		if err != nil {
			t.Fatal(err)
		}
		f := os.NewFile(uintptr(fd), "memfd")
		t.Cleanup(func() { f.Close() })
		if err := unix.Ftruncate(fd, size); err != nil {
			t.Fatal(err)
		}
		if seals != 0 {
			if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
				t.Fatal(err)
			}
		}
		return f
	}
	disk, err := os.Create(t.TempDir() + "/region")
	if err != nil {
		t.Fatal(err)
	}
	defer disk.Close()
	disk.Truncate(Align)
	for name, f := range map[string]*os.File{
		"unsealed":                      memfd(Align, 0),
		"sealed against shrinking only": memfd(Align, unix.F_SEAL_SHRINK),
		"sealed against growing only":   memfd(Align, unix.F_SEAL_GROW),
		"sealed but empty":              memfd(0, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW),
		"a file on disk":                disk,
	} {
		if r, err := Open(f, false); err == nil {
			unix.Munmap(r.mem) // f is closed by its cleanup
			t.Errorf("%s: mapped", name)
		}
	}
	// The same memfd, sealed, maps.
	r, err := Open(memfd(Align, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW), false)
	if err != nil {
		t.Fatalf("a sealed memfd: %v", err)
	}
	unix.Munmap(r.mem)
}

// hugeKiB counts the huge pages of one mapping, the one at mem, as
// smaps does. Read-only mappings of a file on a filesystem with large
// folios can be PMD-mapped whatever shmem's THP setting; where the kernel
// maps none that way (measured independently), there is nothing to count.
func TestHugeKiB(t *testing.T) {
	if hugeKiB(nil) != 0 {
		t.Fatal("hugeKiB(nil)")
	}
	const size = 2 * Align
	path := t.TempDir() + "/huge"
	if err := os.WriteFile(path, make([]byte, size), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Sync()
	unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED) // no small folios left in the cache
	// Two mappings of the file, one after the other, each 2 MiB aligned,
	// of different sizes: a count of the wrong one cannot match.
	resv, err := unix.Mmap(-1, 0, 3*size, unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(resv)
	start := uintptr(unsafe.Pointer(&resv[0]))
	skip := int((start+Align-1)&^(Align-1) - start)
	var maps [2][]byte
	for i, n := range []int{size, size / 2} {
		p, err := unix.MmapPtr(int(f.Fd()), 0, unsafe.Pointer(&resv[skip+i*size]), uintptr(n), unix.PROT_READ, unix.MAP_SHARED|unix.MAP_FIXED)
		if err != nil {
			t.Fatal(err)
		}
		maps[i] = unsafe.Slice((*byte)(p), n)
		unix.Madvise(maps[i], unix.MADV_HUGEPAGE)
		unix.Madvise(maps[i], unix.MADV_POPULATE_READ)
	}
	var want [2]int64
	for i, m := range maps {
		want[i] = smapsKiB(t, m, "ShmemPmdMapped", "FilePmdMapped")
		if got := hugeKiB(m); got != want[i] {
			t.Errorf("mapping %d: hugeKiB = %d, smaps says %d", i, got, want[i])
		}
	}
	if want == [2]int64{} {
		t.Skip("the kernel mapped no huge page of the file: nothing to count")
	}
	t.Logf("huge KiB per mapping: %v", want)
}
