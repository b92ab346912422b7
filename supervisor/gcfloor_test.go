package supervisor

import (
	"fmt"
	"os"

	"github.com/dustin/go-humanize"

	"github.com/theus-run/theus/internal/gcfloor"
)

// benchGCFloorEnv sets a GC floor (internal/gcfloor) on the whole test
// process, as theus-supervisor's --gc-floor does on its own ("64MiB", the
// binary's default). Unset, the process has Go's default (GOGC=100),
// which a program that embeds the supervisor package has unless its main
// sets a floor. The workers it launches have none either way, as
// theus-worker has none.
const benchGCFloorEnv = "THEUS_BENCH_GC_FLOOR"

// startGCFloor starts the floor $THEUS_BENCH_GC_FLOOR names, if any. The
// floor owns no goroutine: it is left to the process's exit.
func startGCFloor() error {
	v := os.Getenv(benchGCFloorEnv)
	if v == "" {
		return nil
	}
	n, err := humanize.ParseBytes(v)
	if err != nil {
		return fmt.Errorf("%s=%q: %w", benchGCFloorEnv, v, err)
	}
	gcfloor.Start(n)
	return nil
}
