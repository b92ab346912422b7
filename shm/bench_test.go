package shm

import (
	"testing"

	"golang.org/x/sys/unix"
)

// rawPopulate is the baseline of the start-up target: a memfd of n bytes,
// mapped and faulted in with one MADV_POPULATE_WRITE.
func rawPopulate(b *testing.B, n int) {
	fd, err := unix.MemfdCreate("raw", unix.MFD_CLOEXEC)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Close(fd)
	unix.Ftruncate(fd, int64(n))
	mem, err := unix.Mmap(fd, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		b.Fatal(err)
	}
	if err := unix.Madvise(mem, unix.MADV_POPULATE_WRITE); err != nil {
		b.Fatal(err)
	}
	unix.Munmap(mem)
}

// BenchmarkPrepare: a region ready for use (reserved, sealed, mapped,
// huge pages asked, pre-faulted) against the raw populate of the same
// size, and a peer's read-only mapping of it (what each worker pays).
func BenchmarkPrepare(b *testing.B) {
	for _, size := range []int{64 << 20, 1 << 30} {
		name := "size=" + map[int]string{64 << 20: "64MiB", 1 << 30: "1GiB"}[size]
		b.Run(name+"/impl=raw-populate", func(b *testing.B) {
			for b.Loop() {
				rawPopulate(b, size)
			}
		})
		b.Run(name+"/impl=region", func(b *testing.B) {
			for b.Loop() {
				r, err := Create("bench", int64(size))
				if err != nil {
					b.Fatal(err)
				}
				r.Close()
			}
		})
		b.Run(name+"/impl=peer-readonly", func(b *testing.B) {
			r, err := Create("bench", int64(size))
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			for b.Loop() {
				ro, err := r.ReadOnlyFile()
				if err != nil {
					b.Fatal(err)
				}
				p, err := Open(ro, false)
				if err != nil {
					b.Fatal(err)
				}
				unix.Munmap(p.mem)
				ro.Close()
			}
		})
	}
}
