package supervisor

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/theus-run/theus/internal/race"
	"github.com/theus-run/theus/pool"
)

// testWorkerEnv names the test worker's path for a supervisor that a test
// starts as a process of its own (runAsSupervisor).
const testWorkerEnv = "THEUS_TEST_WORKER"

// built is the test worker, built once per run of the test binary into
// a directory that TestMain removes.
var built struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// testWorker is the command of the tests' workers: internal/testprocs'
// testworker, built on first use with this binary's -race. The test
// binary could serve as the worker itself (TestMain lets it), but it
// links the whole supervisor (etcd, gRPC, Prometheus, JSON Schema), whose
// start costs a race-enabled binary about 100 ms of CPU more than the
// worker side alone: the kill tests restart workers a thousand times.
func testWorker(tb testing.TB) []string {
	tb.Helper()
	built.once.Do(func() {
		built.dir, built.err = os.MkdirTemp("", "theus-testworker-")
		if built.err != nil {
			return
		}
		path := filepath.Join(built.dir, "testworker")
		args := append(append([]string{"build"}, race.BuildFlags()...), "-o", path, "github.com/theus-run/theus/internal/testprocs/testworker")
		out, err := exec.Command("go", args...).CombinedOutput()
		if err != nil {
			built.err = fmt.Errorf("build the test worker: %w\n%s", err, out)
			return
		}
		built.path = path
	})
	if built.err != nil {
		tb.Fatal(built.err)
	}
	return []string{built.path}
}

// testPlugins is the tests' plugin: testWorker.
func testPlugins(tb testing.TB) []pool.Plugin {
	return []pool.Plugin{{Command: testWorker(tb)}}
}

// removeTestWorker deletes what testWorker built.
func removeTestWorker() {
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
}

// supervisorEnv is the environment of a supervisor that a test starts as
// a process of its own on sock (runAsSupervisor), with extra after it: it
// runs the test worker and exits without the race runtime's sleep.
func supervisorEnv(t *testing.T, sock string, extra ...string) []string {
	env := append(os.Environ(), quickExit()...)
	env = append(env, "THEUS_TEST_SUPERVISOR="+sock, testWorkerEnv+"="+testWorker(t)[0])
	return append(env, extra...)
}
