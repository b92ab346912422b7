package main

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
)

// Workloads, in the order the scripts run them.
var workloads = []string{"noop", "counter", "counter-spread", "bank", "tensor", "mix", "spin"}

// workload says what each request of a run is and what the end-of-run
// check expects.
type workload struct {
	name       string
	prefix     string // makes this run's keys, accounts and tensors its own
	keys       int    // counter-spread: counters
	accounts   int    // bank, mix
	balance    int64  // each account's opening balance
	tensorSize int64  // tensor: bytes per tensor (F32, so a multiple of 4)
	mixTensor  int64  // mix: bytes of its small tensors
	spinUS     int    // spin: CPU time per request
	callers    int
}

// uses reports which parts of the state a workload touches.
func (w *workload) usesAccounts() bool { return w.name == "bank" || w.name == "mix" }
func (w *workload) usesTensors() bool  { return w.name == "tensor" || w.name == "mix" }

func (w *workload) counterKey(i int) string { return w.prefix + "k" + strconv.Itoa(i) }
func (w *workload) account(i int) string    { return w.prefix + "a" + strconv.Itoa(i) }
func (w *workload) tensor(caller int) string {
	return w.prefix + "t" + strconv.Itoa(caller)
}

// mine reports whether a counter key or account belongs to this run.
func (w *workload) mine(name string) bool { return strings.HasPrefix(name, w.prefix) }

// next returns caller's i-th request.
func (w *workload) next(caller int, i int64, rng *rand.Rand) request {
	switch w.name {
	case "noop":
		return request{op: "noop"}
	case "counter":
		return request{op: "add"}
	case "counter-spread":
		return request{op: "add", key: w.counterKey(rng.IntN(w.keys))}
	case "bank":
		return w.transfer(rng)
	case "tensor":
		t := w.tensor(caller)
		switch i % 4 {
		case 0:
			return request{op: "tensor.peek", key: t}
		case 1:
			return request{op: "tensor.sum", key: t}
		case 2:
			return request{op: "tensor.scale", key: t, dst: t + "s"}
		}
		return request{op: "tensor.fill", key: t, n: w.tensorSize / 4}
	case "mix":
		switch p := rng.IntN(10); {
		case p < 4:
			return request{op: "add", key: w.counterKey(rng.IntN(w.keys))}
		case p < 7:
			return w.transfer(rng)
		case p < 9:
			return request{op: "noop"}
		}
		return request{op: "tensor.peek", key: w.tensor(caller)}
	case "spin":
		return request{op: "spin"}
	}
	panic("theus-bench: unknown workload " + w.name)
}

func (w *workload) transfer(rng *rand.Rand) request {
	from := rng.IntN(w.accounts)
	to := (from + 1 + rng.IntN(w.accounts-1)) % w.accounts
	return request{op: "transfer", from: w.account(from), to: w.account(to), amount: 1 + rng.Int64N(10)}
}

// check compares the state before and after a run with what its
// successful requests must have done; it returns what it checked.
func (w *workload) check(before, after state, adds int64) (string, error) {
	var notes []string
	if w.name == "counter" || w.name == "counter-spread" || w.name == "mix" {
		var moved int64
		for k, v := range after.counters {
			if k == "" && w.name != "counter" || k != "" && !w.mine(k) {
				continue
			}
			moved += v - before.counters[k]
		}
		if moved != adds {
			return "", fmt.Errorf("counters moved by %d after %d successful adds: lost or doubled updates", moved, adds)
		}
		notes = append(notes, fmt.Sprintf("counters moved by exactly the %d successful adds", adds))
	}
	if w.usesAccounts() {
		var total int64
		n := 0
		for a, b := range after.balances {
			if !w.mine(a) {
				continue
			}
			if b < 0 {
				return "", fmt.Errorf("account %s holds %d", a, b)
			}
			total += b
			n++
		}
		if want := int64(w.accounts) * w.balance; n != w.accounts || total != want {
			return "", fmt.Errorf("%d accounts hold %d, want %d holding %d", n, total, w.accounts, want)
		}
		notes = append(notes, fmt.Sprintf("%d accounts still hold %d in total, none negative", n, total))
	}
	return strings.Join(notes, "; "), nil
}
