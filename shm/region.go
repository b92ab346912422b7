package shm

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Align is the granularity of a region's size: 2 MiB, so huge pages can
// back all of it.
const Align = 2 << 20

// Region is one memfd mapped into this process.
type Region struct {
	f        *os.File
	mem      []byte
	writable bool
	// Prepared says how the pages were prepared: how long it took and
	// whether huge pages back the mapping.
	Prepared Preparation
}

// Preparation reports the cost of making a region's pages resident.
type Preparation struct {
	Reserve  time.Duration // fallocate: the pages exist
	Populate time.Duration // MADV_POPULATE_WRITE (or touching): the page tables exist
	Warm     time.Duration // a write to every page of a writable mapping (Open)
	Huge     bool          // huge pages back at least part of the mapping
	HugeKiB  int64         // how much of it, from /proc/self/smaps
}

// ErrUnsupported is returned when the kernel lacks memfd sealing or
// MADV_POPULATE_WRITE-era features the region needs.
var ErrUnsupported = errors.New("shm: kernel lacks a needed feature")

// Create makes a region of at least size bytes (rounded up to Align):
// a close-on-exec memfd, its pages reserved with fallocate (so running out
// of memory is an error now, never a SIGBUS later), sealed against
// shrinking and growing, mapped read-write, advised to use huge pages and
// pre-faulted. name shows in /proc/<pid>/maps.
func Create(name string, size int64) (*Region, error) {
	if size <= 0 {
		return nil, fmt.Errorf("shm: region size %d: want > 0", size)
	}
	size = (size + Align - 1) / Align * Align
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("%w: memfd_create: %w", ErrUnsupported, err)
	}
	f := os.NewFile(uintptr(fd), "memfd:"+name)
	r := &Region{f: f, writable: true}
	t := time.Now()
	if err := unix.Fallocate(fd, 0, 0, size); err != nil {
		f.Close()
		return nil, fmt.Errorf("shm: reserve %d bytes: %w", size, err)
	}
	r.Prepared.Reserve = time.Since(t)
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW); err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: seal: %w", ErrUnsupported, err)
	}
	if r.mem, err = unix.Mmap(fd, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); err != nil {
		f.Close()
		return nil, fmt.Errorf("shm: map %d bytes: %w", size, err)
	}
	r.prepare()
	return r, nil
}

// prepare asks for huge pages and faults every page in once.
func (r *Region) prepare() {
	unix.Madvise(r.mem, unix.MADV_HUGEPAGE) // best effort: the host may not allow it
	t := time.Now()
	if err := unix.Madvise(r.mem, unix.MADV_POPULATE_WRITE); err != nil {
		// Kernels before 5.14: touch a byte per page.
		for i := 0; i < len(r.mem); i += os.Getpagesize() {
			r.mem[i] = 0
		}
	}
	r.Prepared.Populate = time.Since(t)
	r.Prepared.HugeKiB = hugeKiB(r.mem)
	r.Prepared.Huge = r.Prepared.HugeKiB > 0
}

// Open maps a region received from another process. writable needs a
// descriptor opened read-write and no F_SEAL_FUTURE_WRITE; a read-only
// mapping is pre-faulted for reading.
func Open(f *os.File, writable bool) (*Region, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, fmt.Errorf("shm: stat: %w", err)
	}
	seals, err := unix.FcntlInt(f.Fd(), unix.F_GET_SEALS, 0)
	if err != nil {
		return nil, fmt.Errorf("shm: not a sealable memfd: %w", err)
	}
	if seals&(unix.F_SEAL_SHRINK|unix.F_SEAL_GROW) != unix.F_SEAL_SHRINK|unix.F_SEAL_GROW {
		return nil, errors.New("shm: region is not sealed against resizing: refusing to map it (a peer could truncate it under us)")
	}
	prot := unix.PROT_READ
	if writable {
		prot |= unix.PROT_WRITE
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, int(st.Size), prot, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("shm: map: %w", err)
	}
	r := &Region{f: f, mem: mem, writable: writable}
	unix.Madvise(mem, unix.MADV_HUGEPAGE)
	adv := unix.MADV_POPULATE_READ
	if writable {
		adv = unix.MADV_POPULATE_WRITE
	}
	t := time.Now()
	unix.Madvise(mem, adv)
	r.Prepared.Populate = time.Since(t)
	if writable {
		t = time.Now()
		warm(mem)
		r.Prepared.Warm = time.Since(t)
	}
	r.Prepared.HugeKiB = hugeKiB(mem)
	r.Prepared.Huge = r.Prepared.HugeKiB > 0
	return r, nil
}

// warm writes every page of a writable mapping once, changing nothing (an
// atomic add of 0). MADV_POPULATE_WRITE makes the page tables, but on
// some hosts (virtual machines: measured on this project's, see
// docs/HEAVY.md) the first write to each page of each mapping still costs
// about 1.5 µs: 0.4 s per GiB, paid here at start-up instead of by the
// first tensor written there.
func warm(mem []byte) {
	step := os.Getpagesize()
	for i := 0; i+4 <= len(mem); i += step {
		atomic.AddUint32((*uint32)(unsafe.Pointer(&mem[i])), 0)
	}
}

// Size is the region's length in bytes.
func (r *Region) Size() int64 { return int64(len(r.mem)) }

// Writable reports whether this mapping may be written.
func (r *Region) Writable() bool { return r.writable }

// File returns the memfd, to send to a peer that may write the region.
func (r *Region) File() *os.File { return r.f }

// ReadOnlyFile opens the region again read-only, to send to a peer that
// must only read it: a mapping of it cannot be made writable (mmap and
// mprotect fail with EACCES). The caller closes it.
func (r *Region) ReadOnlyFile() (*os.File, error) {
	f, err := os.OpenFile("/proc/self/fd/"+strconv.Itoa(int(r.f.Fd())), os.O_RDONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("shm: reopen read-only: %w", err)
	}
	return f, nil
}

// SealFutureWrite forbids every new writable mapping and every write(2)
// to the region, by anyone, from now on; mappings that are writable now
// stay writable. Without it a peer holding a read-only descriptor could
// reopen the memfd read-write through /proc.
func (r *Region) SealFutureWrite() error {
	if _, err := unix.FcntlInt(r.f.Fd(), unix.F_ADD_SEALS, unix.F_SEAL_FUTURE_WRITE); err != nil {
		return fmt.Errorf("%w: F_SEAL_FUTURE_WRITE: %w", ErrUnsupported, err)
	}
	return nil
}

// Bytes returns the mapping's bytes [off, off+n). It panics outside the
// region: callers pass offsets from a validated Descriptor.
func (r *Region) Bytes(off, n int64) []byte {
	return r.mem[off : off+n : off+n]
}

// Close unmaps the region and closes its memfd; its memory is freed when
// no other process maps or holds it.
func (r *Region) Close() error {
	err := unix.Munmap(r.mem)
	r.mem = nil
	return errors.Join(err, r.f.Close())
}
