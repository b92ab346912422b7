package supervisor

import (
	"context"
	"slices"
	"syscall"
	"testing"
	"time"
)

// TestSIGSTOPKeepsWorkers: a supervisor stopped for longer than the
// heartbeat timeout (SIGSTOP) and continued keeps its healthy workers:
// its own stop is not their silence.
func TestSIGSTOPKeepsWorkers(t *testing.T) {
	cmd, _, c := supervisorProcess(t)
	defer c.Close()
	ctx := context.Background()
	pids := func() ([]int64, uint64) {
		st, err := c.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var out []int64
		var restarts uint64
		for _, w := range st.Workers {
			out = append(out, w.PID)
			restarts += w.Restarts
		}
		slices.Sort(out)
		return out, restarts
	}
	before, _ := pids()
	cmd.Process.Signal(syscall.SIGSTOP)
	time.Sleep(7 * time.Second) // the heartbeat timeout is 5 s
	cmd.Process.Signal(syscall.SIGCONT)
	// The verdict comes at the first heartbeat (1 s) after SIGCONT; watch three.
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		after, restarts := pids()
		if !slices.Equal(before, after) || restarts != 0 {
			t.Fatalf("workers %v before a 7 s SIGSTOP, %v after (%d restarts)", before, after, restarts)
		}
	}
}
