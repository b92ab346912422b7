// Package cpulimit reads the CPU bandwidth limit of the cgroup the
// process runs in (a container's CPU quota: quota / period CPUs), with
// cgroup v1 or v2: the smallest limit of its cgroup and the cgroup's
// ancestors up to the mount, which is what the kernel enforces. It owns
// no state and only reads /proc/self and the cgroup files under the
// mount that holds the process's cgroup: it never sets a limit, and it
// knows nothing of the affinity mask (runtime.NumCPU) or GOMAXPROCS.
// (The Go runtime reads the leaf cgroup's limit to set GOMAXPROCS, no
// lower than 2, and does not export it.)
package cpulimit

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path"
	"strconv"
	"strings"
)

// ErrMalformed is what a file that does not parse wraps.
var ErrMalformed = errors.New("cpulimit: malformed")

// Bounds on what a read takes from a file: /proc/self/mountinfo lists
// every mount (thousands on a busy host), a cgroup file one line.
const (
	maxProcFile   = 4 << 20
	maxCgroupFile = 64
)

// Read returns the process's CPU limit in CPUs (1.5 for a quota of 150ms
// per 100ms period), and false when there is none: no cgroup, no CPU
// controller, no quota at any level, or a cgroup outside every mount
// (another cgroup namespace's).
func Read() (float64, bool, error) { return read(os.DirFS("/")) }

// read is Read on the file system root (paths without their leading /).
func read(root fs.FS) (float64, bool, error) {
	cg, err := readFile(root, "proc/self/cgroup", maxProcFile)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil // not Linux, or no /proc
	}
	if err != nil {
		return 0, false, err
	}
	v1, v2, err := parseCgroups(cg)
	if err != nil || (v1 == "" && v2 == "") {
		return 0, false, err
	}
	mi, err := readFile(root, "proc/self/mountinfo", maxProcFile)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil // no mounts to read the cgroup's files in
	}
	if err != nil {
		return 0, false, err
	}
	v1mounts, v2mounts, err := parseMountinfo(mi)
	if err != nil {
		return 0, false, err
	}
	// A v1 cpu controller, where there is one, is the one in force: the
	// controller is then not in the v2 hierarchy (a hybrid host).
	if m, rel, ok := holding(v1mounts, v1); ok {
		return walk(root, m, rel, readV1)
	}
	if m, rel, ok := holding(v2mounts, v2); ok {
		return walk(root, m, rel, readV2)
	}
	return 0, false, nil
}

// readFile reads name whole, up to max bytes.
func readFile(root fs.FS, name string, max int64) ([]byte, error) {
	f, err := root.Open(name)
	if err != nil {
		return nil, fmt.Errorf("cpulimit: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("cpulimit: /%s: %w", name, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%w /%s: over %d bytes", ErrMalformed, name, max)
	}
	return b, nil
}

// parseCgroups returns the process's cgroup path in the v1 hierarchy
// with the cpu controller, and in the v2 hierarchy ("" for none), from
// /proc/self/cgroup: lines of "ID:controllers:path".
func parseCgroups(b []byte) (v1, v2 string, err error) {
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			continue
		}
		id, rest, ok1 := strings.Cut(line, ":")
		ctrls, p, ok2 := strings.Cut(rest, ":")
		if !ok1 || !ok2 || !strings.HasPrefix(p, "/") {
			return "", "", fmt.Errorf("%w /proc/self/cgroup line %q", ErrMalformed, line)
		}
		switch {
		case id == "0" && ctrls == "":
			v2 = p
		case hasElem(ctrls, "cpu"):
			v1 = p
		}
	}
	return v1, v2, nil
}

// mount is where a cgroup hierarchy is mounted: the cgroup at root (a
// path in the hierarchy) is the directory dir.
type mount struct{ root, dir string }

// parseMountinfo lists the mounts of v1 hierarchies with the cpu
// controller and of the v2 hierarchy, in /proc/self/mountinfo: lines of
// "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE
// SOURCE SUPEROPTIONS" (SOURCE may be empty).
func parseMountinfo(b []byte) (v1cpu, v2 []mount, err error) {
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			continue
		}
		left, right, ok := strings.Cut(line, " - ")
		f, g := strings.Fields(left), strings.SplitN(right, " ", 3)
		if !ok || len(f) < 5 || g[0] == "" {
			return nil, nil, fmt.Errorf("%w /proc/self/mountinfo line %q", ErrMalformed, line)
		}
		m := mount{root: unescape(f[3]), dir: unescape(f[4])}
		switch {
		case g[0] == "cgroup2":
			v2 = append(v2, m)
		case g[0] == "cgroup" && len(g) == 3 && hasElem(g[2], "cpu"):
			v1cpu = append(v1cpu, m)
		}
	}
	return v1cpu, v2, nil
}

// holding returns the first of mounts whose root holds cgroup p, and p
// relative to that root. A path that climbs out of its root (".."), as
// a cgroup outside the process's cgroup namespace shows, is held by
// none.
func holding(mounts []mount, p string) (mount, string, bool) {
	if p == "" || strings.Contains(p+"/", "/../") {
		return mount{}, "", false
	}
	for _, m := range mounts {
		if m.root == "/" {
			return m, p, true
		}
		if rel, ok := strings.CutPrefix(p, m.root); ok && (rel == "" || rel[0] == '/') {
			return m, rel, true
		}
	}
	return mount{}, "", false
}

// hasElem reports whether the comma-separated list has e.
func hasElem(list, e string) bool {
	for x := range strings.SplitSeq(list, ",") {
		if x == e {
			return true
		}
	}
	return false
}

// unescape undoes mountinfo's octal escapes (\040 for a space).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// walk reads the limit of the cgroup at rel under mount m, and of each
// ancestor up to the mount, and returns the smallest. It reads nothing
// outside the mount, whatever rel holds.
func walk(root fs.FS, m mount, rel string, limitAt func(fs.FS, string) (float64, bool, error)) (float64, bool, error) {
	top := relDir(m.dir)
	best, found := math.Inf(1), false
	for dir := relDir(path.Join(m.dir, rel)); within(dir, top); dir = relDir(path.Dir(dir)) {
		l, ok, err := limitAt(root, dir)
		if err != nil {
			return 0, false, err
		}
		if ok && l < best {
			best, found = l, true
		}
		if dir == top {
			break
		}
	}
	if !found {
		return 0, false, nil
	}
	return best, true, nil
}

// within reports whether directory dir is top or below it (both paths
// of the root file system, as relDir makes them).
func within(dir, top string) bool {
	return top == "" || dir == top || strings.HasPrefix(dir, top+"/")
}

// relDir is directory d (absolute, or relative to the root) as a path
// of the root file system: no leading slash, "" for the root itself.
func relDir(d string) string { return strings.TrimPrefix(path.Clean("/"+d), "/") }

// readV1 reads a v1 cgroup's cpu.cfs_quota_us (-1: none) and
// cpu.cfs_period_us.
func readV1(root fs.FS, dir string) (float64, bool, error) {
	q, ok, err := readInt(root, path.Join(dir, "cpu.cfs_quota_us"))
	if err != nil || !ok || q < 0 {
		return 0, false, err
	}
	name := path.Join(dir, "cpu.cfs_period_us")
	p, ok, err := readInt(root, name)
	if err != nil {
		return 0, false, err
	}
	if !ok {
		return 0, false, fmt.Errorf("%w /%s: a quota without a period", ErrMalformed, name)
	}
	return limit(q, p, dir)
}

// readV2 reads a v2 cgroup's cpu.max: "QUOTA PERIOD", or "max PERIOD"
// for none.
func readV2(root fs.FS, dir string) (float64, bool, error) {
	name := path.Join(dir, "cpu.max")
	b, err := readFile(root, name, maxCgroupFile)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil // the root cgroup has none
	}
	if err != nil {
		return 0, false, err
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, false, fmt.Errorf("%w /%s: %q", ErrMalformed, name, b)
	}
	if f[0] == "max" {
		return 0, false, nil
	}
	q, err1 := strconv.ParseInt(f[0], 10, 64)
	p, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false, fmt.Errorf("%w /%s: %q", ErrMalformed, name, b)
	}
	return limit(q, p, dir)
}

// limit is quota/period CPUs, for a cgroup's files in dir.
func limit(quota, period int64, dir string) (float64, bool, error) {
	if quota <= 0 || period <= 0 {
		return 0, false, fmt.Errorf("%w /%s: quota %d per period %d", ErrMalformed, dir, quota, period)
	}
	return float64(quota) / float64(period), true, nil
}

// readInt reads a cgroup file holding one integer; false when there is
// none.
func readInt(root fs.FS, name string) (int64, bool, error) {
	b, err := readFile(root, name, maxCgroupFile)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("%w /%s: %w", ErrMalformed, name, err)
	}
	return n, true, nil
}
