package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/theus-run/theus/internal/race"
	"github.com/theus-run/theus/internal/testcache"
)

var binDir string

// TestMain builds the real theus-supervisor and theus-worker binaries for
// the scripts, as a user would; theusctl runs from this test binary.
func TestMain(m *testing.M) {
	if os.Getenv("THEUSCTL_TEST_MAIN") == "1" { // a test runs theusctl itself (top, in a pseudo-terminal)
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	testscript.Main(mainWithBinaries{m}, map[string]func(){
		"theusctl": func() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) },
	})
}

type mainWithBinaries struct{ m *testing.M }

func (w mainWithBinaries) Run() int {
	dir, err := os.MkdirTemp("", "theus-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	// The commands are built as this binary was (race.BuildFlags), and
	// every program the tests start (this binary as theusctl, too) exits
	// without the race runtime's sleep.
	race.SkipExitSleep()
	for cmd, pkg := range map[string]string{"theus-supervisor": "../theus-supervisor", "theus-worker": "../theus-worker", "greeter": "../../examples/greeter"} {
		args := append(append([]string{"build"}, race.BuildFlags()...), "-o", filepath.Join(dir, cmd), pkg)
		out, err := exec.Command("go", args...).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", cmd, err, out)
			return 1
		}
	}
	binDir = dir
	return w.m.Run()
}

func TestScripts(t *testing.T) {
	testcache.Touch(t) // TestMain built the commands the scripts run from the module
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			env.Setenv("PATH", binDir+string(os.PathListSeparator)+env.Getenv("PATH"))
			env.Setenv("THEUS_SOCKET", filepath.Join(env.WorkDir, "run", "theus.sock"))
			env.Setenv("BIN", binDir)
			env.Setenv("THEUS_HEAVY_SIZE", "64MiB") // scripts run in parallel: not 1 GiB each
			env.Setenv("THEUS_STATE_DIR", filepath.Join(env.WorkDir, "state"))
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			// waitsock PATH: wait up to 20s for a socket to appear.
			"waitsock": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 1 {
					ts.Fatalf("usage: waitsock PATH")
				}
				deadline := time.Now().Add(20 * time.Second)
				for {
					if fi, err := os.Stat(args[0]); err == nil && fi.Mode()&os.ModeSocket != 0 {
						return
					}
					if time.Now().After(deadline) {
						ts.Fatalf("socket %s did not appear", args[0])
					}
					time.Sleep(20 * time.Millisecond)
				}
			},
			// waitfile PATH: wait up to 20s for a file to appear.
			"waitfile": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 1 {
					ts.Fatalf("usage: waitfile PATH")
				}
				for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
					if _, err := os.Stat(ts.MkAbs(args[0])); err == nil {
						return
					}
					if time.Now().After(deadline) {
						ts.Fatalf("file %s did not appear", args[0])
					}
				}
			},
			// mode PATH PERM: the file's permission bits are PERM (octal).
			"mode": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 2 {
					ts.Fatalf("usage: mode PATH PERM")
				}
				fi, err := os.Stat(ts.MkAbs(args[0]))
				ts.Check(err)
				if got := fmt.Sprintf("%04o", fi.Mode().Perm()); got != args[1] {
					ts.Fatalf("%s has mode %s, want %s", args[0], got, args[1])
				}
			},
		},
	})
}
