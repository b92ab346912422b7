package cpulimit

import (
	"errors"
	"flag"
	"io/fs"
	"math"
	"os"
	"runtime"
	"strings"
	"testing"
	"testing/fstest"
)

const (
	v1Mounts = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n" +
		"32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n" +
		"34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset\n"
	v2Mounts = "25 30 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"
)

// files builds a root file system from name/content pairs.
func files(kv ...string) fstest.MapFS {
	m := fstest.MapFS{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = &fstest.MapFile{Data: []byte(kv[i+1])}
	}
	return m
}

func TestRead(t *testing.T) {
	const v1dir = "sys/fs/cgroup/cpu,cpuacct/kubepods/pod1/c1"
	const v2dir = "sys/fs/cgroup/user.slice/x.scope"
	for _, c := range []struct {
		name string
		fs   fstest.MapFS
		want float64 // 0: none
	}{
		{"v1 at the process's cgroup", files(
			"proc/self/cgroup", "3:cpuset:/\n2:cpu,cpuacct:/kubepods/pod1/c1\n0::/\n",
			"proc/self/mountinfo", v1Mounts,
			v1dir+"/cpu.cfs_quota_us", "150000\n", v1dir+"/cpu.cfs_period_us", "100000\n",
		), 1.5},
		{"v1 on an ancestor only", files(
			"proc/self/cgroup", "2:cpu,cpuacct:/kubepods/pod1/c1\n",
			"proc/self/mountinfo", v1Mounts,
			v1dir+"/cpu.cfs_quota_us", "-1\n", v1dir+"/cpu.cfs_period_us", "100000\n",
			"sys/fs/cgroup/cpu,cpuacct/kubepods/pod1/cpu.cfs_quota_us", "200000\n",
			"sys/fs/cgroup/cpu,cpuacct/kubepods/pod1/cpu.cfs_period_us", "100000\n",
		), 2},
		{"v1, the smallest of the levels", files(
			"proc/self/cgroup", "2:cpu,cpuacct:/kubepods/pod1/c1\n",
			"proc/self/mountinfo", v1Mounts,
			v1dir+"/cpu.cfs_quota_us", "300000\n", v1dir+"/cpu.cfs_period_us", "100000\n",
			"sys/fs/cgroup/cpu,cpuacct/kubepods/cpu.cfs_quota_us", "50000\n",
			"sys/fs/cgroup/cpu,cpuacct/kubepods/cpu.cfs_period_us", "100000\n",
			"sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "-1\n",
			"sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n",
		), 0.5},
		{"v1 without a quota", files(
			"proc/self/cgroup", "2:cpu,cpuacct:/kubepods/pod1/c1\n",
			"proc/self/mountinfo", v1Mounts,
			v1dir+"/cpu.cfs_quota_us", "-1\n", v1dir+"/cpu.cfs_period_us", "100000\n",
		), 0},
		{"v2 on an ancestor", files(
			"proc/self/cgroup", "0::/user.slice/x.scope\n",
			"proc/self/mountinfo", v2Mounts,
			v2dir+"/cpu.max", "max 100000\n",
			"sys/fs/cgroup/user.slice/cpu.max", "250000 100000\n",
		), 2.5},
		{"v2 without a limit", files(
			"proc/self/cgroup", "0::/user.slice/x.scope\n",
			"proc/self/mountinfo", v2Mounts,
			v2dir+"/cpu.max", "max 100000\n",
		), 0},
		{"v2 in a cgroup namespace: the mount's root is the process's", files(
			"proc/self/cgroup", "0::/\n",
			"proc/self/mountinfo", "25 30 0:23 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
			"sys/fs/cgroup/cpu.max", "150000 100000\n",
		), 1.5},
		{"a cgroup above the mount's root: none of its files", files(
			"proc/self/cgroup", "0::/\n",
			"proc/self/mountinfo", "25 30 0:23 /kubepods/pod1/c1 /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
			"sys/fs/cgroup/cpu.max", "100000 100000\n",
		), 0},
		{"a cgroup named like the mount's root, longer: not under it", files(
			"proc/self/cgroup", "0::/pod1x\n",
			"proc/self/mountinfo", "25 30 0:23 /pod1 /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
			"sys/fs/cgroup/cpu.max", "100000 100000\n",
			"sys/fs/cgroup/pod1x/cpu.max", "50000 100000\n",
		), 0},
		{"the first mount that holds the cgroup", files(
			"proc/self/cgroup", "0::/a/b\n",
			"proc/self/mountinfo", "25 30 0:23 /other /mnt/other rw - cgroup2 cgroup2 rw\n"+
				"26 30 0:23 /a /mnt/a rw - cgroup2 cgroup2 rw\n",
			"mnt/other/cpu.max", "400000 100000\n",
			"mnt/a/b/cpu.max", "50000 100000\n",
		), 0.5},
		{"a cgroup outside the namespace (..): none", files(
			"proc/self/cgroup", "0::/../../sib\n",
			"proc/self/mountinfo", v2Mounts,
			"sys/fs/cgroup/cpu.max", "100000 100000\n",
			"sys/sib/cpu.max", "10000 100000\n",
			"sys/cpu.max", "10000 100000\n",
			"cpu.max", "10000 100000\n",
		), 0},
		{"v1, a mount with an empty source", files(
			"proc/self/cgroup", "2:cpu:/a\n",
			"proc/self/mountinfo", "32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup  rw,cpu\n",
			"sys/fs/cgroup/cpu/a/cpu.cfs_quota_us", "100000\n",
			"sys/fs/cgroup/cpu/a/cpu.cfs_period_us", "100000\n",
		), 1},
		{"v1 mounted at a root that is not /, as in a container", files(
			"proc/self/cgroup", "2:cpu,cpuacct:/docker/abc\n",
			"proc/self/mountinfo", "32 31 0:29 /docker/abc /sys/fs/cgroup/cpu,cpuacct ro - cgroup cgroup rw,cpu,cpuacct\n",
			"sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "200000\n",
			"sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n",
		), 2},
		{"hybrid: the v1 cpu controller is the one in force", files(
			"proc/self/cgroup", "2:cpu,cpuacct:/a\n0::/b\n",
			"proc/self/mountinfo", v1Mounts+"40 31 0:40 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n",
			"sys/fs/cgroup/cpu,cpuacct/a/cpu.cfs_quota_us", "400000\n",
			"sys/fs/cgroup/cpu,cpuacct/a/cpu.cfs_period_us", "100000\n",
			"sys/fs/cgroup/unified/b/cpu.max", "100000 100000\n",
		), 4},
		{"an escaped mount point", files(
			"proc/self/cgroup", "0::/a\n",
			"proc/self/mountinfo", `25 30 0:23 / /sys/fs/my\040cgroup rw - cgroup2 cgroup2 rw`+"\n",
			"sys/fs/my cgroup/a/cpu.max", "75000 100000\n",
		), 0.75},
		{"no cpu controller mounted", files(
			"proc/self/cgroup", "2:cpu,cpuacct:/a\n",
			"proc/self/mountinfo", "34 31 0:31 / /sys/fs/cgroup/cpuset rw - cgroup cgroup rw,cpuset\n",
		), 0},
		{"a mountinfo line with no options", files(
			"proc/self/cgroup", "0::/a\n",
			"proc/self/mountinfo", "25 30 0:23 / /sys/fs/cgroup - cgroup2 cgroup2 rw\n",
			"sys/fs/cgroup/a/cpu.max", "100000 100000\n",
		), 1},
		{"a cgroup file of the largest size read", files(
			"proc/self/cgroup", "0::/a\n",
			"proc/self/mountinfo", v2Mounts,
			"sys/fs/cgroup/a/cpu.max", "100000 100000"+strings.Repeat(" ", maxCgroupFile-len("100000 100000")),
		), 1},
		{"no /proc", files(), 0},
		{"no mountinfo", files("proc/self/cgroup", "0::/a\n"), 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, ok, err := read(c.fs)
			if err != nil {
				t.Fatal(err)
			}
			if ok != (c.want != 0) || got != c.want {
				t.Fatalf("read = %v, %v; want %v", got, ok, c.want)
			}
		})
	}
}

// Files that do not parse are ErrMalformed, never a panic or a limit.
func TestReadMalformed(t *testing.T) {
	good := "0::/a\n"
	mounts := "25 30 0:23 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"
	for _, c := range []struct {
		name string
		fs   fstest.MapFS
	}{
		{"cgroup line", files("proc/self/cgroup", "no colons\n", "proc/self/mountinfo", mounts)},
		{"cgroup line with one colon", files("proc/self/cgroup", "0:/a\n", "proc/self/mountinfo", mounts)},
		{"cgroup path", files("proc/self/cgroup", "0::relative\n", "proc/self/mountinfo", mounts)},
		{"mountinfo line", files("proc/self/cgroup", good, "proc/self/mountinfo", "25 30 0:23 / /sys\n")},
		{"cpu.max fields", files("proc/self/cgroup", good, "proc/self/mountinfo", mounts, "sys/fs/cgroup/a/cpu.max", "100000\n")},
		{"cpu.max number", files("proc/self/cgroup", good, "proc/self/mountinfo", mounts, "sys/fs/cgroup/a/cpu.max", "x 100000\n")},
		{"cpu.max zero quota", files("proc/self/cgroup", good, "proc/self/mountinfo", mounts, "sys/fs/cgroup/a/cpu.max", "0 100000\n")},
		{"cpu.max zero period", files("proc/self/cgroup", good, "proc/self/mountinfo", mounts, "sys/fs/cgroup/a/cpu.max", "100000 0\n")},
		{"v1 quota", files("proc/self/cgroup", "2:cpu:/a\n", "proc/self/mountinfo", v1Mounts, "sys/fs/cgroup/cpu,cpuacct/a/cpu.cfs_quota_us", "lots\n", "sys/fs/cgroup/cpu,cpuacct/a/cpu.cfs_period_us", "100000\n")},
		{"v1 quota without a period", files("proc/self/cgroup", "2:cpu:/a\n", "proc/self/mountinfo", v1Mounts, "sys/fs/cgroup/cpu,cpuacct/a/cpu.cfs_quota_us", "100000\n")},
		{"a cgroup file too long", files("proc/self/cgroup", good, "proc/self/mountinfo", mounts, "sys/fs/cgroup/a/cpu.max", "100000 100000"+strings.Repeat(" ", 64)+"\n")},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, ok, err := read(c.fs)
			if !errors.Is(err, ErrMalformed) || ok {
				t.Fatalf("read = %v, %v, %v; want ErrMalformed", got, ok, err)
			}
		})
	}
}

// A read that fails is an error, not "no limit".
func TestReadError(t *testing.T) {
	fsys := errFS{files("proc/self/cgroup", "0::/a\n", "proc/self/mountinfo", v2Mounts)}
	if l, ok, err := read(fsys); err == nil || ok {
		t.Fatalf("read = %v, %v, %v; want an error", l, ok, err)
	}
}

// errFS is a file system whose files fail to read.
type errFS struct{ fstest.MapFS }

func (e errFS) Open(name string) (fs.File, error) {
	f, err := e.MapFS.Open(name)
	if err != nil {
		return nil, err
	}
	return errFile{f}, nil
}

type errFile struct{ fs.File }

func (errFile) Read([]byte) (int, error) { return 0, errors.New("an I/O error") }

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{
		`/sys/fs/cg`:     `/sys/fs/cg`,
		`/a\040b`:        `/a b`,
		`/a\040`:         `/a `,
		`/a\04`:          `/a\04`,
		`\101\134`:       `A\`,
		`/a\999`:         `/a\999`,
		`/tab\011x\040y`: "/tab\tx y",
	} {
		if got := unescape(in); got != want {
			t.Errorf("unescape(%q) = %q, want %q", in, got, want)
		}
	}
}

// Read agrees with the Go runtime, which reads the leaf cgroup's limit
// to set GOMAXPROCS (rounded up, at least 2, at most the CPUs): the
// smallest limit along the ancestors is never above the leaf's.
func TestReadAgreesWithTheRuntime(t *testing.T) {
	if os.Getenv("GOMAXPROCS") != "" || strings.Contains(os.Getenv("GODEBUG"), "containermaxprocs=0") {
		t.Skip("GOMAXPROCS is not the runtime's default here")
	}
	if f := flag.Lookup("test.cpu"); f != nil && f.Value.String() != "" {
		t.Skip("-test.cpu sets GOMAXPROCS")
	}
	l, ok, err := Read()
	if err != nil {
		t.Fatal(err)
	}
	want := runtime.NumCPU()
	if ok {
		want = min(want, max(2, int(math.Ceil(l))))
	}
	if got := runtime.GOMAXPROCS(0); got < want {
		t.Fatalf("GOMAXPROCS %d, but a limit of %v CPUs (%v) and %d CPUs make it at least %d", got, l, ok, runtime.NumCPU(), want)
	}
	t.Logf("limit %v CPUs (%v), %d CPUs, GOMAXPROCS %d", l, ok, runtime.NumCPU(), runtime.GOMAXPROCS(0))
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("2:cpu,cpuacct:/a\n0::/b\n"), []byte(v1Mounts+v2Mounts), []byte("50000 100000\n"))
	f.Add([]byte("0::/\n"), []byte(`25 30 0:23 /x /sys/fs/my\040cg rw - cgroup2 cgroup2 rw`), []byte("max 100000"))
	f.Add([]byte("2:cpu:/\n"), []byte("32 31 0:29 / /sys/fs/cgroup rw - cgroup  rw,cpu\n"), []byte("-1"))
	f.Fuzz(func(t *testing.T, cg, mi, limit []byte) {
		fsys := files("proc/self/cgroup", string(cg), "proc/self/mountinfo", string(mi),
			"sys/fs/cgroup/cpu.max", string(limit), "sys/fs/cgroup/cpu.cfs_quota_us", string(limit),
			"sys/fs/cgroup/cpu.cfs_period_us", "100000\n")
		l, ok, err := read(fsys)
		if err != nil && ok {
			t.Fatalf("a limit (%v) and an error (%v)", l, err)
		}
		if ok && (l <= 0 || math.IsInf(l, 0) || math.IsNaN(l)) {
			t.Fatalf("limit %v", l)
		}
	})
}
