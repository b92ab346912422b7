package pool

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/theus-run/theus/protocol"
	"github.com/theus-run/theus/worker"
)

// spawned is what the spawn process reports: a child in the worker's
// process group, one that left it with setsid, and an orphan still in
// the group (its parent, a shell, exited: the subreaper adopted it).
type spawned struct {
	Group   int `json:"group"`
	Session int `json:"session"`
	Orphan  int `json:"orphan"`
	Worker  int `json:"worker"`
}

// spawnProcess starts two children and a grandchild that would sleep
// for an hour and returns their pids without waiting for them.
func spawnProcess() worker.Def {
	return worker.Process("spawn", worker.Contract{Effect: true}, func(ctx *worker.Ctx, _ worker.None) (spawned, error) {
		grp := exec.Command("sleep", "3600")
		ses := exec.Command("sleep", "3600")
		ses.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		for _, c := range []*exec.Cmd{grp, ses} {
			if err := c.Start(); err != nil {
				return spawned{}, err
			}
		}
		out, err := exec.Command("sh", "-c", "sleep 3600 > /dev/null 2>&1 & echo $!").Output()
		if err != nil {
			return spawned{}, err
		}
		orphan, err := strconv.Atoi(strings.TrimSpace(string(out)))
		if err != nil {
			return spawned{}, err
		}
		return spawned{Group: grp.Process.Pid, Session: ses.Process.Pid, Orphan: orphan, Worker: os.Getpid()}, nil
	})
}

// orphanSupervisor is the test binary as a supervisor with a subreaper:
// it starts a pool of one worker, has it spawn, prints what was spawned,
// then obeys stdin: "kill" kills the worker and spawns again on its
// replacement, "exit" closes the pool and the subreaper.
func orphanSupervisor() int {
	o, err := AdoptOrphans(zerolog.Nop())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	exe, _ := os.Executable()
	p, err := Start(Config{Command: []string{exe}, Workers: 1, Orphans: o, Env: quickExit(), RestartBackoff: 10 * time.Millisecond})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	spawn := func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		res, blocks, err := p.Dispatch(ctx, &protocol.Dispatch{Process: "spawn"})
		blocks.Close()
		if err != nil || res.Err != nil {
			fmt.Fprintln(os.Stderr, "spawn:", err, res)
			return false
		}
		fmt.Println(string(res.Result))
		return true
	}
	if !spawn() {
		return 1
	}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch in.Text() {
		case "kill":
			pid := p.PIDs()[0]
			unix.Kill(pid, unix.SIGKILL)
			for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				if now := p.PIDs(); len(now) == 1 && now[0] != pid {
					break
				}
				if time.Now().After(deadline) {
					return 1
				}
			}
			if !spawn() {
				return 1
			}
		case "exit":
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			p.Close(ctx)
			if err := o.Close(10 * time.Second); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			return 0
		}
	}
	return 1
}

// watch opens a pidfd on pid (not a child of the test) so that its exit
// can be told apart from a reused pid.
func watch(t *testing.T, pid int) int {
	t.Helper()
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatalf("pidfd_open %d: %v", pid, err)
	}
	t.Cleanup(func() {
		unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0) // never leave a sleeper behind
		unix.Close(fd)
	})
	return fd
}

// exited waits up to 10 s for the process behind pidfd fd to exit.
func exited(fd int) bool { return exitedWithin(fd, 10*time.Second) }

// exitedWithin waits up to d for the process behind pidfd fd to exit.
func exitedWithin(fd int, d time.Duration) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for deadline := time.Now().Add(d); ; {
		n, err := unix.Poll(fds, int(time.Until(deadline).Milliseconds()))
		if err == unix.EINTR && time.Now().Before(deadline) {
			continue
		}
		return err == nil && n == 1
	}
}

// TestNoDescendantOutlivesItsWorker: with a subreaper, a worker's child
// that called setsid dies with the worker (it used to be reparented to
// init and live on), and whatever is left dies with the pool.
func TestNoDescendantOutlivesItsWorker(t *testing.T) {
	exe, _ := os.Executable()
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), "THEUS_TEST_ORPHANS=supervisor")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	out := bufio.NewScanner(stdout)
	next := func() spawned {
		t.Helper()
		var s spawned
		if !out.Scan() {
			t.Fatalf("the supervisor stopped: %v", out.Err())
		}
		if err := json.Unmarshal(out.Bytes(), &s); err != nil {
			t.Fatalf("%q: %v", out.Text(), err)
		}
		return s
	}
	first := next()
	grp, ses, orphan := watch(t, first.Group), watch(t, first.Session), watch(t, first.Orphan)
	// The adopted orphan is in a live worker's group: sweeps leave it to
	// die with the group.
	if exitedWithin(orphan, 3*SweepEvery) {
		t.Error("an orphan in a live worker's process group was killed")
	}
	fmt.Fprintln(stdin, "kill")
	second := next()
	if !exited(grp) {
		t.Error("the worker's child in its process group outlived the worker")
	}
	if !exited(ses) {
		t.Error("the worker's child that called setsid outlived the worker")
	}
	if !exited(orphan) {
		t.Error("the orphan in the worker's process group outlived the worker")
	}
	grp, ses = watch(t, second.Group), watch(t, second.Session)
	fmt.Fprintln(stdin, "exit")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("the supervisor: %v", err)
	}
	if !exited(grp) || !exited(ses) {
		t.Error("a worker's descendant outlived the pool and the subreaper")
	}
}

// The threads' lists of children name the same children as a scan of
// every process, zombies included, so a sweep reads them instead.
func TestThreadChildrenMatchesTheScan(t *testing.T) {
	if _, err := os.Stat(fmt.Sprintf("/proc/%d/task/%d/children", os.Getpid(), os.Getpid())); err != nil {
		t.Skipf("this kernel keeps no lists of children (CONFIG_PROC_CHILDREN): %v", err)
	}
	if _, ok := threadChildren(os.Getpid()); !ok {
		t.Fatal("the kernel keeps lists of children, and threadChildren did not read them")
	}
	want := map[int]bool{} // pid: exited (a zombie until waited for)
	for i := range 4 {
		name := "sleep"
		if i == 3 {
			name = "true"
		}
		cmd := exec.Command(name, "30")
		if err := cmd.Start(); err != nil {
			t.Skip(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		want[cmd.Process.Pid] = i == 3
	}
	deadline := time.Now().Add(time.Minute)
	for {
		listed, scanned := map[int]bool{}, map[int]bool{}
		cs, _ := threadChildren(os.Getpid())
		for _, c := range cs {
			listed[c.pid] = c.zombie
		}
		for _, c := range scanChildren(os.Getpid()) {
			scanned[c.pid] = c.zombie
		}
		same := len(listed) == len(scanned)
		for pid, z := range scanned {
			if lz, ok := listed[pid]; !ok || lz != z {
				same = false
			}
		}
		found := true
		for pid, z := range want {
			if sz, ok := scanned[pid]; !ok || sz != z {
				found = false // "true" may not have exited yet
			}
		}
		if same && found {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the threads' lists name %v, the scan %v; started %v", listed, scanned, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// BenchmarkChildren: a sweep's listing of its children, by the threads'
// lists and by a scan of every process (the cost grows with the host's
// processes).
func BenchmarkChildren(b *testing.B) {
	pid := os.Getpid()
	b.Run("how=threads", func(b *testing.B) {
		if _, ok := threadChildren(pid); !ok {
			b.Skip("no lists of children")
		}
		for b.Loop() {
			threadChildren(pid)
		}
	})
	b.Run("how=scan", func(b *testing.B) {
		for b.Loop() {
			scanChildren(pid)
		}
	})
}

// parseStat reads state, parent and group after the last ')' (a
// command's name may hold spaces and parentheses), and refuses a line
// without them.
func TestParseStat(t *testing.T) {
	for _, c := range []struct {
		line       string
		ppid, pgid int
		zombie     bool
		bad        bool
	}{
		{line: "42 (sleep) S 7 42 42 0 -1 4194560 90 0 0 0", ppid: 7, pgid: 42},
		{line: "42 (a) b) (c) Z 7 9", ppid: 7, pgid: 9, zombie: true}, // exactly the three fields
		{line: "42 (x y) R 1 1\n", ppid: 1, pgid: 1},
		{line: "42 (sleep S 7 42", bad: true},
		{line: "42 (sleep) S 7", bad: true},
		{line: "42 (sleep) S x 42", bad: true},
		{line: "42 (sleep) S 7 y", bad: true},
		{line: "", bad: true},
	} {
		got, ppid, err := parseStat(42, []byte(c.line))
		if c.bad {
			if err == nil {
				t.Errorf("parseStat(%q) = %+v, %d: want an error", c.line, got, ppid)
			}
			continue
		}
		if err != nil || ppid != c.ppid || got != (child{pid: 42, pgid: c.pgid, zombie: c.zombie}) {
			t.Errorf("parseStat(%q) = %+v, %d, %v: want pgid %d, ppid %d, zombie %v", c.line, got, ppid, err, c.pgid, c.ppid, c.zombie)
		}
	}
}
