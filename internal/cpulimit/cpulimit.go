// Package cpulimit reads the CPU bandwidth limit of the cgroup the
// process runs in (a container's CPU quota: quota / period CPUs), with
// cgroup v1 or v2: the smallest limit of its cgroup and the cgroup's
// ancestors up to the mount. It owns no state and only reads /proc and
// the cgroup files: it never sets a limit, and it knows nothing of the
// affinity mask (runtime.NumCPU) or GOMAXPROCS. The Go runtime reads the
// same limit to set GOMAXPROCS, but rounds it up to at least 2 and does
// not export it.
package cpulimit

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path"
	"strconv"
	"strings"
)

// ErrMalformed is what a file that does not parse wraps.
var ErrMalformed = errors.New("cpulimit: malformed")

// Read returns the process's CPU limit in CPUs (1.5 for a quota of 150ms
// per 100ms period), and false when there is none: no cgroup, no CPU
// controller, or no quota at any level.
func Read() (float64, bool, error) { return read(os.DirFS("/")) }

// read is Read on the file system root (paths without their leading /).
func read(root fs.FS) (float64, bool, error) {
	cg, err := fs.ReadFile(root, "proc/self/cgroup")
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil // not Linux, or no /proc
	}
	if err != nil {
		return 0, false, fmt.Errorf("cpulimit: %w", err)
	}
	v1, v2, err := parseCgroups(cg)
	if err != nil {
		return 0, false, err
	}
	mi, err := fs.ReadFile(root, "proc/self/mountinfo")
	if err != nil {
		return 0, false, fmt.Errorf("cpulimit: %w", err)
	}
	mounts, err := parseMountinfo(mi)
	if err != nil {
		return 0, false, err
	}
	// A v1 cpu controller, where there is one, is the one in force: the
	// controller is then not in the v2 hierarchy (a hybrid host).
	if mounts.hasV1cpu && v1 != "" {
		return walk(root, mounts.v1cpu, v1, readV1)
	}
	if mounts.hasV2 && v2 != "" {
		return walk(root, mounts.v2, v2, readV2)
	}
	return 0, false, nil
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

// mounts are the hierarchies that matter here.
type mounts struct {
	v1cpu, v2       mount
	hasV1cpu, hasV2 bool
}

// parseMountinfo finds the v1 hierarchy with the cpu controller and the
// v2 hierarchy in /proc/self/mountinfo: lines of "ID PARENT MAJ:MIN ROOT
// MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS".
func parseMountinfo(b []byte) (mounts, error) {
	var ms mounts
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			continue
		}
		left, right, ok := strings.Cut(line, " - ")
		f, g := strings.Fields(left), strings.Fields(right)
		if !ok || len(f) < 5 || len(g) < 1 {
			return mounts{}, fmt.Errorf("%w /proc/self/mountinfo line %q", ErrMalformed, line)
		}
		m := mount{root: unescape(f[3]), dir: unescape(f[4])}
		switch {
		case g[0] == "cgroup2" && !ms.hasV2:
			ms.v2, ms.hasV2 = m, true
		case g[0] == "cgroup" && len(g) >= 3 && hasElem(g[2], "cpu") && !ms.hasV1cpu:
			ms.v1cpu, ms.hasV1cpu = m, true
		}
	}
	return ms, nil
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

// walk reads the limit of the cgroup at p in the hierarchy mounted as m,
// and of each ancestor up to the mount, and returns the smallest.
func walk(root fs.FS, m mount, p string, limitAt func(fs.FS, string) (float64, bool, error)) (float64, bool, error) {
	dir := strings.TrimPrefix(path.Clean(path.Join(m.dir, under(p, m.root))), "/")
	top := strings.TrimPrefix(path.Clean(m.dir), "/")
	best, found := math.Inf(1), false
	for {
		l, ok, err := limitAt(root, dir)
		if err != nil {
			return 0, false, err
		}
		if ok && l < best {
			best, found = l, true
		}
		if dir == top || dir == "." || dir == "" {
			break
		}
		dir = path.Dir(dir)
	}
	if !found {
		return 0, false, nil
	}
	return best, true, nil
}

// under returns cgroup path p relative to root, a path in the same
// hierarchy, or "" (root itself) when p is not under root: a cgroup
// outside the mount's root, seen from another cgroup namespace.
func under(p, root string) string {
	if root == "/" {
		return p
	}
	rel, ok := strings.CutPrefix(p, root)
	if !ok || (rel != "" && rel[0] != '/') {
		return ""
	}
	return rel
}

// readV1 reads a v1 cgroup's cpu.cfs_quota_us (-1: none) and
// cpu.cfs_period_us.
func readV1(root fs.FS, dir string) (float64, bool, error) {
	q, ok, err := readInt(root, path.Join(dir, "cpu.cfs_quota_us"))
	if err != nil || !ok || q < 0 {
		return 0, false, err
	}
	p, ok, err := readInt(root, path.Join(dir, "cpu.cfs_period_us"))
	if err != nil || !ok {
		return 0, false, err
	}
	return limit(q, p, dir)
}

// readV2 reads a v2 cgroup's cpu.max: "QUOTA PERIOD", or "max PERIOD"
// for none.
func readV2(root fs.FS, dir string) (float64, bool, error) {
	name := path.Join(dir, "cpu.max")
	b, err := fs.ReadFile(root, name)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil // the root cgroup has none
	}
	if err != nil {
		return 0, false, fmt.Errorf("cpulimit: %w", err)
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

// readInt reads a file holding one integer; false when there is none.
func readInt(root fs.FS, name string) (int64, bool, error) {
	b, err := fs.ReadFile(root, name)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("cpulimit: %w", err)
	}
	n, err := strconv.ParseInt(string(bytes.TrimSpace(b)), 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("%w /%s: %w", ErrMalformed, name, err)
	}
	return n, true, nil
}
