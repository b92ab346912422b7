package pool

import (
	"os/exec"
	"runtime"
)

// spawner starts processes from one goroutine locked to its OS thread for
// the pool's whole life: Pdeathsig fires when the thread that forked the
// child exits, and a locked thread exits only when the spawner does, after
// the pool has stopped its workers.
type spawner struct {
	orphans *Orphans // nil: the process is not a subreaper
	reqs    chan spawnReq
	done    chan struct{}
}

type spawnReq struct {
	cmd   *exec.Cmd
	reply chan error
}

func newSpawner(o *Orphans) *spawner {
	s := &spawner{orphans: o, reqs: make(chan spawnReq), done: make(chan struct{})}
	go s.run()
	return s
}

func (s *spawner) run() {
	defer close(s.done)
	runtime.LockOSThread() // never unlocked: the thread dies with this goroutine
	for r := range s.reqs {
		r.reply <- s.orphans.fork(func() (int, error) {
			if err := r.cmd.Start(); err != nil {
				return 0, err
			}
			return r.cmd.Process.Pid, nil
		})
	}
}

// start starts cmd on the spawner's thread.
func (s *spawner) start(cmd *exec.Cmd) error {
	reply := make(chan error, 1)
	s.reqs <- spawnReq{cmd: cmd, reply: reply}
	return <-reply
}

// stop ends the spawner; no start may follow.
func (s *spawner) stop() {
	close(s.reqs)
	<-s.done
}
