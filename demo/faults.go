package demo

import (
	"math"
	"os"
	"syscall"
	"time"

	"github.com/theus-run/theus/worker"
)

// EnvFaults is the variable through which a supervisor tells a demo
// worker to serve the fault.* processes: "1" serves them, anything else
// (or unset) leaves them unregistered, so a call gets unknown_process.
// theus-supervisor sets it in every worker's environment, to "1" with
// --faults and to "" without, so a value inherited from the shell that
// started it never turns them on.
const EnvFaults = "THEUS_DEMO_FAULTS"

// FaultsEnv returns the environment entry that gives a demo worker the
// fault.* processes (on) or keeps them from it.
func FaultsEnv(on bool) string {
	if on {
		return EnvFaults + "=1"
	}
	return EnvFaults + "="
}

// Served returns what a demo worker serves: Processes, and Faults when
// getenv(EnvFaults) is "1".
func Served(getenv func(string) string) []worker.Def {
	if getenv(EnvFaults) == "1" {
		return append(Processes(), Faults()...)
	}
	return Processes()
}

// Faults returns the processes that break things on purpose, for tests
// and load scripts: fault.crash kills its worker, fault.sleep ties one
// up for as long as the caller asks, ignoring its deadline, and
// fault.undeclared writes a path its contract does not declare. Any
// client could do that to a supervisor that served them, so a demo
// worker serves them only when asked (Served).
func Faults() []worker.Def {
	return []worker.Def{
		worker.Process("fault.crash", worker.Contract{Effect: true}, faultCrash),
		worker.Process("fault.sleep", worker.Contract{Effect: true}, faultSleep),
		worker.Process("fault.undeclared", worker.Contract{Outputs: []string{"domain.allowed"}}, faultUndeclared),
	}
}

func faultCrash(*worker.Ctx, worker.None) (worker.None, error) {
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // not reached
}

// SleepArgs are fault.sleep's args.
type SleepArgs struct {
	MS int64 `json:"ms"`
}

// maxSleepMS is the longest fault.sleep whose time.Duration fits an int64.
const maxSleepMS = math.MaxInt64 / int64(time.Millisecond)

// faultSleep sleeps without looking at its context: it stands for a
// process that hangs, which the supervisor must kill.
func faultSleep(_ *worker.Ctx, in SleepArgs) (worker.None, error) {
	if in.MS < 0 || in.MS > maxSleepMS {
		return worker.None{}, worker.Fail("bad_args", "fault.sleep: ms = %d: want 0 to %d", in.MS, maxSleepMS)
	}
	time.Sleep(time.Duration(in.MS) * time.Millisecond)
	return worker.None{}, nil
}

func faultUndeclared(ctx *worker.Ctx, _ worker.None) (worker.None, error) {
	if err := ctx.Set("domain.allowed", true); err != nil {
		return worker.None{}, err
	}
	//theus-lint:ignore POP-C01 fault.undeclared breaks its contract on purpose
	return worker.None{}, ctx.Set("domain.forbidden", true)
}
