package testprocs

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/theus-run/theus/shm"
	"github.com/theus-run/theus/worker"
)

// evilProcesses are processes that attack the HEAVY zone from inside a
// worker. The test worker serves them next to the demo processes.
func evilProcesses() []worker.Def {
	in := worker.Contract{Inputs: []string{"heavy"}}
	out := worker.Contract{Outputs: []string{"heavy"}}
	return []worker.Def{
		worker.Process("evil.write", in, evilWrite),
		worker.Process("evil.mprotect", in, evilMprotect),
		worker.Process("evil.fds", worker.Contract{Effect: true}, evilFDs),
		worker.Process("evil.forge", worker.Contract{Inputs: []string{"heavy"}, Outputs: []string{"heavy"}}, evilForge),
		worker.Process("evil.allocfail", out, evilAllocFail),
		worker.Process("evil.diewriting", out, evilDieWriting),
		worker.Process("evil.ring", worker.Contract{}, evilRing),
	}
}

type keyArgs struct {
	Key string `json:"key"`
}

// foreign returns the input tensor at heavy.<key>, or an own_slab error
// when this worker wrote it (its own slab is writable to it: documented).
func foreign(ctx *worker.Ctx, key string) ([]byte, error) {
	t, ok, err := ctx.Tensor("heavy." + key)
	if err != nil || !ok {
		return nil, fmt.Errorf("no tensor %s: %v", key, err)
	}
	b := t.Bytes()
	w, err := mappedWritable(uintptr(unsafe.Pointer(&b[0])))
	if err != nil {
		return nil, err
	}
	if w {
		return nil, worker.Fail("own_slab", "heavy.%s is in this worker's own slab", key)
	}
	return b, nil
}

// mappedWritable reads /proc/self/maps for the mapping holding addr.
func mappedWritable(addr uintptr) (bool, error) {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		lo, hi, _ := strings.Cut(fields[0], "-")
		l, _ := strconv.ParseUint(lo, 16, 64)
		h, _ := strconv.ParseUint(hi, 16, 64)
		if uint64(addr) >= l && uint64(addr) < h {
			return fields[1][1] == 'w', nil
		}
	}
	return false, fmt.Errorf("address %#x is not mapped", addr)
}

// evilWrite writes into another worker's committed tensor: SIGSEGV.
func evilWrite(ctx *worker.Ctx, in keyArgs) (string, error) {
	b, err := foreign(ctx, in.Key)
	if err != nil {
		return "", err
	}
	b[0] ^= 0xff
	return "wrote another worker's tensor", nil
}

// evilMprotect tries to make another worker's tensor writable.
func evilMprotect(ctx *worker.Ctx, in keyArgs) (string, error) {
	b, err := foreign(ctx, in.Key)
	if err != nil {
		return "", err
	}
	off := int(uintptr(unsafe.Pointer(&b[0])) % uintptr(os.Getpagesize()))
	mem := unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(&b[0]), -off)), os.Getpagesize())
	if err := unix.Mprotect(mem, unix.PROT_READ|unix.PROT_WRITE); err != nil {
		return err.Error(), nil
	}
	b[0] ^= 0xff
	return "mprotect made it writable", nil
}

// evilFDs attacks every slab descriptor the worker holds: truncate, grow,
// write(2), and reopen read-write through /proc to map it writable. It
// returns, per slab descriptor and attack, what happened ("ok" is a hole).
func evilFDs(*worker.Ctx, worker.None) (map[string]string, error) {
	out := map[string]string{}
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return nil, err
	}
	res := func(err error) string {
		if err == nil {
			return "ok"
		}
		return err.Error()
	}
	for _, e := range es {
		fd, _ := strconv.Atoi(e.Name())
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil || !strings.Contains(target, "memfd:theus-heavy") {
			continue
		}
		var st unix.Stat_t
		unix.Fstat(fd, &st)
		name := fmt.Sprintf("fd%d(%s)", fd, strings.TrimSuffix(strings.TrimPrefix(target, "/memfd:"), " (deleted)"))
		out[name+" ftruncate 0"] = res(unix.Ftruncate(fd, 0))
		out[name+" ftruncate grow"] = res(unix.Ftruncate(fd, st.Size*2))
		_, err = unix.Pwrite(fd, []byte{1}, 64)
		out[name+" pwrite"] = res(err)
		out[name+" punch hole"] = res(unix.Fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 0, st.Size))
		rw, err := unix.Open("/proc/self/fd/"+e.Name(), unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			out[name+" reopen rw + mmap rw"] = res(err)
			continue
		}
		m, err := unix.Mmap(rw, 0, int(st.Size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
		if err == nil {
			unix.Munmap(m)
		}
		out[name+" reopen rw + mmap rw"] = res(err)
		unix.Close(rw)
	}
	return out, nil
}

type forgeArgs struct {
	Mode string `json:"mode"`
	Key  string `json:"key"` // another tensor, for "other"
}

// evilForge commits a forged descriptor at heavy.forged. Every mode
// must be refused with bad_tensor.
func evilForge(ctx *worker.Ctx, in forgeArgs) (worker.None, error) {
	var v any
	if in.Mode == "other" {
		raw, ok, err := ctx.Raw("heavy." + in.Key)
		if err != nil || !ok {
			return worker.None{}, fmt.Errorf("no tensor %s: %v", in.Key, err)
		}
		return worker.None{}, ctx.Set("heavy.forged", json.RawMessage(raw))
	}
	switch in.Mode {
	case "number":
		v = 42
	case "inline-short":
		v = map[string]any{"dtype": "F32", "shape": []int{10}, "len": 40, "data": []byte{1, 2, 3, 4}}
	case "unknown-field":
		v = map[string]any{"dtype": "F32", "shape": []int{1}, "len": 4, "data": []byte{1, 2, 3, 4}, "owner": "me"}
	default:
		// A real block of our own slab, then the descriptor is bent.
		t, err := ctx.NewTensor("heavy.tmp", shm.F32, 64<<10)
		if err != nil {
			return worker.None{}, err
		}
		d := t.Descriptor()
		switch in.Mode {
		case "twice": // the same block at heavy.tmp and heavy.forged
		case "stale":
			d.Gen++
		case "offset":
			d.Off += shm.BlockAlign
		case "range":
			d.Off = 1 << 40
		case "long":
			d.Len += 1 << 20
			d.Shape = []int64{d.Len / 4}
		case "strides":
			d.Strides = []int64{1 << 20}
		case "slab":
			d.Slab += 1000
		default:
			return worker.None{}, fmt.Errorf("mode %q", in.Mode)
		}
		v = d
	}
	return worker.None{}, ctx.Set("heavy.forged", v)
}

// evilAllocFail allocates a tensor, then fails: its block must be freed.
func evilAllocFail(ctx *worker.Ctx, _ worker.None) (worker.None, error) {
	if _, err := ctx.NewTensor("heavy.leak", shm.F32, 1<<20); err != nil {
		return worker.None{}, err
	}
	return worker.None{}, worker.Fail("boom", "failing after an allocation")
}

// evilDieWriting allocates a tensor, writes half of it and dies.
func evilDieWriting(ctx *worker.Ctx, _ worker.None) (worker.None, error) {
	t, err := ctx.NewTensor("heavy.dying", shm.F32, 1<<20)
	if err != nil {
		return worker.None{}, err
	}
	b := t.Bytes()
	for i := range len(b) / 2 {
		b[i] = 0xab
	}
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {}
}
