// Package race says whether this binary runs under the race detector, so
// that a test which builds the programs it starts builds them the same
// way: with -race they share the packages the test run compiled already
// (a second, plain build of theus-supervisor compiles etcd, gRPC and the
// rest again: over two minutes of CPU on a cold cache), and the race
// detector watches them too.
//
// It only answers; it never builds or starts anything.
package race

import (
	"os"
	"strings"
)

// BuildFlags are the go build flags of a program started by this binary's
// tests: -race when this binary has it.
func BuildFlags() []string {
	if Enabled {
		return []string{"-race"}
	}
	return nil
}

// QuickExit is the environment entry that keeps a race-enabled program
// from sleeping 1 s as it exits (the race runtime's atexit_sleep_ms),
// which every graceful stop of a program a test starts would pay.
func QuickExit() string {
	return "GORACE=" + strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0")
}

// QuickExitEnv is QuickExit as a key and a value, for testing.T.Setenv.
func QuickExitEnv() (key, value string) {
	key, value, _ = strings.Cut(QuickExit(), "=")
	return key, value
}

// SkipExitSleep puts QuickExit in this process's environment, so that
// every program it starts from then on inherits it: a TestMain calls it
// when its tests start race-enabled programs (this binary again, or
// commands built with BuildFlags).
func SkipExitSleep() {
	os.Setenv(QuickExitEnv())
}
