package pool

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// Orphans makes the calling process the reaper of its workers'
// descendants. It marks the process a child subreaper
// (PR_SET_CHILD_SUBREAPER), so that a descendant whose parent exits is
// reparented to it instead of to init, and sweeps its children: an
// orphan that left its worker's process group (setsid, setpgid) is
// killed with its group, one still in the group of a live worker is left
// to die with that group, and every orphan's exit is reaped. Close kills
// whatever is left. So while the process lives, no descendant of a
// worker outlives its worker's process group, and none outlives Close.
//
// A subreaper is a property of the whole process: use one Orphans per
// process (the supervisor's main does), and share it between pools
// through Config.Orphans. Its sweeps treat every child that no such pool
// started as an orphan, so a process with other children of its own must
// not use it.
type Orphans struct {
	log  zerolog.Logger
	self int
	// mu is held around every fork of a worker and every sweep, so a
	// sweep never sees a worker that is not yet in workers.
	mu      sync.Mutex
	workers map[int]bool // live workers: children that pools started and will reap

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// SweepEvery is how often Orphans looks for adopted children: the kernel
// does not tell a subreaper that it adopted one. A sweep reads its
// threads' lists of children, not every process on the host.
const SweepEvery = 500 * time.Millisecond

// AdoptOrphans makes the process a child subreaper and starts sweeping
// its children every SweepEvery until Close.
func AdoptOrphans(log zerolog.Logger) (*Orphans, error) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return nil, fmt.Errorf("pool: become a child subreaper: %w", os.NewSyscallError("prctl", err))
	}
	o := &Orphans{log: log, self: os.Getpid(), workers: map[int]bool{}, stop: make(chan struct{}), done: make(chan struct{})}
	go o.run()
	return o, nil
}

func (o *Orphans) run() {
	defer close(o.done)
	t := time.NewTicker(SweepEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			o.Sweep()
		case <-o.stop:
			return
		}
	}
}

// fork runs start (which forks one worker and returns its pid) so that no
// sweep runs between the fork and the worker being known.
func (o *Orphans) fork(start func() (int, error)) error {
	if o == nil {
		_, err := start()
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	pid, err := start()
	if err == nil {
		o.workers[pid] = true
	}
	return err
}

// reaped forgets a worker its pool has reaped, and sweeps: its orphans
// are now the process's children.
func (o *Orphans) reaped(pid int) {
	if o == nil {
		return
	}
	o.mu.Lock()
	delete(o.workers, pid)
	o.mu.Unlock()
	o.Sweep()
}

// Sweep kills the orphans that left their worker's process group (and
// their groups), and reaps the orphans that have exited. It returns how
// many children that no pool started remain (alive or not yet reaped).
func (o *Orphans) Sweep() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.sweepLocked(false)
}

func (o *Orphans) sweepLocked(all bool) int {
	left := 0
	list := children
	if all {
		list = scanChildren // Close: a thread's list may miss a child that a racing fork or exit moves
	}
	for _, c := range list(o.self) {
		if o.workers[c.pid] {
			continue
		}
		left++
		if c.zombie {
			var ws unix.WaitStatus
			if _, err := unix.Wait4(c.pid, &ws, unix.WNOHANG, nil); err == nil {
				left--
			}
			continue
		}
		if !all && o.workers[c.pgid] {
			continue // still in a live worker's group: it dies with the group
		}
		o.log.Warn().Int("pid", c.pid).Int("pgid", c.pgid).Msg("killing a worker's orphaned descendant")
		unix.Kill(c.pid, unix.SIGKILL)
		if c.pgid == c.pid {
			unix.Kill(-c.pid, unix.SIGKILL) // a group leader: its group goes too
		}
	}
	return left
}

// Close kills every child that no pool started, waits up to timeout for
// them to be reaped, and stops sweeping. Close the pools first: their
// workers are not its to kill. Close is idempotent.
func (o *Orphans) Close(timeout time.Duration) error {
	var err error
	o.once.Do(func() {
		close(o.stop)
		<-o.done
		deadline := time.Now().Add(timeout)
		for {
			o.mu.Lock()
			left := o.sweepLocked(true)
			o.mu.Unlock()
			if left == 0 {
				return
			}
			if time.Now().After(deadline) {
				err = fmt.Errorf("pool: %d orphaned descendants not reaped after %s", left, timeout)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	return err
}

type child struct {
	pid, pgid int
	zombie    bool
}

// children lists the processes whose parent is ppid: from its threads'
// lists of children when the kernel keeps them (CONFIG_PROC_CHILDREN, as
// Debian's does), which costs a read per thread, else by reading the
// stat of every process on the host (scanChildren), which on a busy host
// costs milliseconds. A thread's list can miss a child forked or reaped
// while it is read: a periodic sweep finds it the next time; Close scans.
func children(ppid int) []child {
	if cs, ok := threadChildren(ppid); ok {
		return cs
	}
	return scanChildren(ppid)
}

// threadChildren reads /proc/PID/task/*/children: a child is on the list
// of the thread that forked it, or that adopted it. It reports false
// when the kernel has no such lists.
func threadChildren(pid int) ([]child, bool) {
	dir := "/proc/" + strconv.Itoa(pid) + "/task/"
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, false
	}
	var out []child
	listed := false
	for _, e := range ents {
		b, err := os.ReadFile(dir + e.Name() + "/children")
		if err != nil {
			continue // no such list, or the thread has exited
		}
		listed = true
		for _, f := range bytes.Fields(b) {
			cpid, err := strconv.Atoi(string(f))
			if err != nil {
				continue
			}
			if c, parent, err := stat(cpid); err == nil && parent == pid {
				out = append(out, c)
			}
		}
	}
	return out, listed
}

// scanChildren lists the processes whose parent is ppid by reading every
// process's stat.
func scanChildren(ppid int) []child {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []child
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		c, parent, err := stat(pid)
		if err == nil && parent == ppid {
			out = append(out, c)
		}
	}
	return out
}

// stat reads a process's state, parent and group from /proc/PID/stat.
func stat(pid int) (child, int, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return child{}, 0, err
	}
	return parseStat(pid, b)
}

// parseStat parses b, the /proc/PID/stat of pid: it returns pid as a
// child (its process group, and whether it is a zombie) and its
// parent's pid.
func parseStat(pid int, b []byte) (child, int, error) {
	// pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return child{}, 0, fmt.Errorf("pool: malformed /proc/%d/stat: no end of the command's name", pid)
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 3 {
		return child{}, 0, fmt.Errorf("pool: malformed /proc/%d/stat: %d fields after the command's name, want 3 or more", pid, len(f))
	}
	ppid, err := strconv.Atoi(string(f[1]))
	if err != nil {
		return child{}, 0, fmt.Errorf("pool: malformed /proc/%d/stat: parent: %w", pid, err)
	}
	pgid, err := strconv.Atoi(string(f[2]))
	if err != nil {
		return child{}, 0, fmt.Errorf("pool: malformed /proc/%d/stat: process group: %w", pid, err)
	}
	return child{pid: pid, pgid: pgid, zombie: f[0][0] == 'Z'}, ppid, nil
}
