package shm

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"unsafe"
)

// hugeKiB returns how many KiB of the mapping at mem are backed by huge
// pages, read from /proc/self/smaps (0 if it cannot tell).
func hugeKiB(mem []byte) int64 {
	if len(mem) == 0 {
		return 0
	}
	start := uintptr(unsafe.Pointer(&mem[0]))
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return 0
	}
	defer f.Close()
	want := fmt.Sprintf("%x-", start)
	in := false
	sc := bufio.NewScanner(f)
	var total int64
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, "-") && !strings.Contains(line, ":") || (len(line) > 0 && isHex(line[0]) && strings.Contains(line, "-")) {
			in = strings.HasPrefix(line, want)
			continue
		}
		if !in {
			continue
		}
		for _, key := range []string{"ShmemPmdMapped:", "FilePmdMapped:"} {
			if rest, ok := strings.CutPrefix(line, key); ok {
				n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
				total += n
			}
		}
	}
	return total
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' }
