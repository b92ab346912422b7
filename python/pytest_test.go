package python

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/theus-run/theus/internal/race"
	"github.com/theus-run/theus/internal/testcache"
)

// python3 is the interpreter the SDK is tested under: Debian's, with
// python3-msgpack, python3-numpy and python3-pytest (docs/PYTHON.md).
const python3 = "/usr/bin/python3"

// TestPytest runs the Python SDK's tests (python/tests: the harness, the
// worker loop, and clients and workers against real supervisors that
// the tests build). It skips, saying why, only where the interpreter or
// its modules are missing; .ci/run installs them with apt-get.
func TestPytest(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the Python SDK's tests build and start supervisors (about 40 s)")
	}
	if _, err := os.Stat(python3); err != nil {
		t.Skipf("SKIPPED the Python SDK's tests: no %s (apt-get install python3 python3-msgpack python3-numpy python3-pytest)", python3)
	}
	if out, err := exec.Command(python3, "-c", "import msgpack, numpy, pytest").CombinedOutput(); err != nil {
		t.Skipf("SKIPPED the Python SDK's tests: %s lacks msgpack, numpy or pytest (apt-get install python3-msgpack python3-numpy python3-pytest): %s", python3, out)
	}
	testcache.Touch(t) // pytest reads the SDK and builds supervisors from the module
	cmd := exec.Command(python3, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests")
	// The tests build the supervisor as this binary was built (with -race,
	// the build reuses the packages the test run compiled), and the
	// programs they start exit without the race runtime's sleep.
	cmd.Env = append(os.Environ(), "THEUS_GO_BUILD_FLAGS="+strings.Join(race.BuildFlags(), " "), race.QuickExit())
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("pytest python/tests: %v (its output is above)", err)
	}
}
