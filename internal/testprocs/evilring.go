package testprocs

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/theus-run/theus/worker"
)

type ringArgs struct {
	Mode string `json:"mode"`
}

// evilRing maps this worker's ring pair itself and breaks its rules as
// a plugin's code could: it says running in the supervisor's park word
// (as a worker killed between its compare-and-swap and its wake leaves
// it), moves the request ring's head back to 0, fills its doorbell
// pipes and makes them blocking; then it moves the reply ring's tail to
// an unaligned place and kills its worker (kill), or keeps the park words
// pinned, parked where the supervisor rings and running where it would
// be rung, and ignores its deadline (hang).
func evilRing(ctx *worker.Ctx, in ringArgs) (worker.None, error) {
	parts := strings.Split(os.Getenv(worker.EnvRingFD), ",")
	fd, err := strconv.Atoi(parts[0])
	if err != nil {
		return worker.None{}, worker.Fail("no_ring", "%s=%q", worker.EnvRingFD, os.Getenv(worker.EnvRingFD))
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return worker.None{}, err
	}
	raw, err := unix.Mmap(fd, 0, int(st.Size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return worker.None{}, err
	}
	// docs/PROTOCOL.md#rings: the control blocks at 1024 (request) and
	// 2048 (reply); tail +0, head +128, the consumer's park word +256.
	word := func(off int) *atomic.Uint32 { return (*atomic.Uint32)(unsafe.Pointer(&raw[off])) }
	word64 := func(off int) *atomic.Uint64 { return (*atomic.Uint64)(unsafe.Pointer(&raw[off])) }
	word(2048 + 256).Store(0)
	word64(1024 + 128).Store(0)
	if in.Mode == "kill" {
		word64(2048).Add(4)
	}
	for i := 3; i < 1024; i++ {
		if link, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", i)); err == nil && strings.HasPrefix(link, "pipe:") {
			unix.SetNonblock(i, true)
			for range 1 << 14 {
				if _, err := unix.Write(i, []byte("ding dong")); err != nil {
					break
				}
			}
			unix.FcntlInt(uintptr(i), unix.F_SETFL, 0)
		}
	}
	if in.Mode == "kill" {
		unix.Kill(os.Getpid(), unix.SIGKILL)
	}
	for {
		word(1024 + 256).Store(1)
		word(2048 + 256).Store(0)
		time.Sleep(time.Millisecond)
	}
}
