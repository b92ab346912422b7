package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/theus-run/theus/client"
	"github.com/theus-run/theus/protocol"
)

// Options size the demo workload; zero fields take the defaults.
type Options struct {
	Clients    int // concurrent callers in each phase; default 8
	Increments int // counter.add calls per caller; default 250
	Transfers  int // bank.transfer calls per caller; default 150
	Accounts   int // default 10
}

// ErrInvariant is returned by Run when a checked invariant does not hold.
var ErrInvariant = errors.New("demo: invariant violated")

// phase is what one part of the workload measured.
type phase struct {
	name     string
	calls    int64
	failed   int64 // expected failures (insufficient_funds)
	elapsed  time.Duration
	maxTries int64
	vip      int64
	attempts int64
}

// Run drives the demo workload through c and writes a summary to w:
// concurrent counter increments (the counter must equal the successful
// calls), bank transfers among accounts (the total must not change and no
// balance may go negative), and a hot key hammered hard enough for VIP
// tickets. It returns ErrInvariant if an invariant fails.
func Run(ctx context.Context, c *client.Client, w io.Writer, o Options) error {
	if o.Clients <= 0 {
		o.Clients = 8
	}
	if o.Increments <= 0 {
		o.Increments = 250
	}
	if o.Transfers <= 0 {
		o.Transfers = 150
	}
	if o.Accounts <= 0 {
		o.Accounts = 10
	}
	st0, err := c.Status(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "theus demo: %d workers, mode %s, %d concurrent callers\n\n", len(st0.Workers), st0.Mode, o.Clients)
	var checks []string
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvariant}, args...)...)
	}

	// 1. Counter increments.
	start, err := readInt(ctx, c, CounterPath)
	if err != nil {
		return err
	}
	inc, err := hammer(ctx, "counter.add", o.Clients, o.Increments, func(*rand.Rand) (string, any) { return "counter.add", nil }, c)
	if err != nil {
		return err
	}
	end, err := readInt(ctx, c, CounterPath)
	if err != nil {
		return err
	}
	if end-start != inc.calls {
		return fail("counter moved by %d after %d successful increments", end-start, inc.calls)
	}
	checks = append(checks, fmt.Sprintf("counter = %d after %d increments: no lost update", end, inc.calls))

	// 2. Bank transfers, among accounts of this run's own: a state kept
	// from an earlier run (--state-dir) holds its accounts, which
	// bank.open does not open again.
	const opening = 1000
	names := make([]string, o.Accounts)
	ours := make(map[string]bool, len(names))
	for i := range names {
		names[i] = fmt.Sprintf("run%d_acct%02d", st0.Version, i)
		ours[AccountsPath+"."+names[i]] = true
		if _, err := c.Exec(ctx, "bank.open", OpenArgs{Account: names[i], Balance: opening}); err != nil {
			return err
		}
	}
	bank, err := hammer(ctx, "bank.transfer", o.Clients, o.Transfers, func(r *rand.Rand) (string, any) {
		i, j := r.IntN(len(names)), r.IntN(len(names)-1)
		if j >= i {
			j++
		}
		return "bank.transfer", TransferArgs{From: names[i], To: names[j], Amount: 1 + r.Int64N(400)}
	}, c)
	if err != nil {
		return err
	}
	v, err := c.Get(ctx, AccountsPath)
	if err != nil {
		return err
	}
	total := int64(0)
	for _, e := range v.Entries {
		if !ours[e.Path] {
			continue
		}
		var b int64
		if err := json.Unmarshal(e.Value, &b); err != nil {
			return err
		}
		if b < 0 {
			return fail("%s has a negative balance %d", e.Path, b)
		}
		total += b
	}
	if want := int64(opening * len(names)); total != want {
		return fail("total balance %d, want %d", total, want)
	}
	checks = append(checks, fmt.Sprintf("total balance = %d across %d accounts, none negative", total, len(names)))

	// 3. A hot key under 4x the callers: conflicts turn into VIP tickets.
	hot, err := hammer(ctx, "counter.add (hot)", 4*o.Clients, o.Increments/2, func(*rand.Rand) (string, any) { return "counter.add", nil }, c)
	if err != nil {
		return err
	}
	st1, err := c.Status(ctx)
	if err != nil {
		return err
	}
	checks = append(checks, fmt.Sprintf("every invocation committed within %d attempts", max(inc.maxTries, bank.maxTries, hot.maxTries)))

	// 4. Tensors in the HEAVY zone: a large one handed over by descriptor.
	tensorLine, err := tensors(ctx, c, st1.Heavy)
	if err != nil {
		return err
	}
	if tensorLine != "" {
		checks = append(checks, tensorLine)
	}

	// 5. A workflow and a state machine (when the supervisor loaded the
	// demo's files: theus-supervisor --demo does).
	var flows []string
	flowChecks, err := runFlux(ctx, c, fmt.Sprint(st0.Version), func(format string, args ...any) {
		flows = append(flows, fmt.Sprintf(format, args...))
	})
	if err != nil {
		return err
	}
	checks = append(checks, flowChecks...)

	fmt.Fprintf(w, "%-20s %8s %10s %10s %12s %6s\n", "phase", "commits", "commits/s", "attempts", "max attempts", "VIP")
	for _, p := range []phase{inc, bank, hot} {
		fmt.Fprintf(w, "%-20s %8d %10.0f %10.2f %12d %6d\n", p.name, p.calls, float64(p.calls)/p.elapsed.Seconds(), float64(p.attempts)/float64(max(p.calls+p.failed, 1)), p.maxTries, p.vip)
		if p.failed > 0 {
			fmt.Fprintf(w, "%-20s %8d refused with insufficient_funds, nothing committed\n", "", p.failed)
		}
	}
	if len(flows) > 0 {
		fmt.Fprintln(w)
		for _, l := range flows {
			fmt.Fprint(w, l)
		}
	}
	fmt.Fprintf(w, "\nsupervisor: version %d, %d commits, %d conflicts, %d retries, %d VIP tickets\n",
		st1.Version, st1.Commits-st0.Commits, st1.Conflicts-st0.Conflicts, st1.Retries-st0.Retries, st1.VIP-st0.VIP)
	if st2, err := c.Status(ctx); err == nil && st2.Heavy.Size > 0 {
		fmt.Fprintf(w, "heavy zone: %d MiB in %d slabs, %d MiB in use in %d blocks\n", st2.Heavy.Size>>20, st2.Heavy.Slabs, st2.Heavy.InUse>>20, st2.Heavy.Blocks)
	}
	fmt.Fprintf(w, "\ninvariants checked:\n")
	for _, c := range checks {
		fmt.Fprintf(w, "  ok  %s\n", c)
	}
	return nil
}

// hammer runs n callers, each making calls requests built by next, all
// pipelined through c.
func hammer(ctx context.Context, name string, n, calls int, next func(*rand.Rand) (string, any), c *client.Client) (phase, error) {
	p := phase{name: name}
	var ok, refused, attempts, vip, maxTries atomic.Int64
	var first error
	var once sync.Once
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := range n {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(i), 7))
			for range calls {
				proc, args := next(r)
				res, err := c.Exec(ctx, proc, args)
				if errors.Is(err, &protocol.Error{Code: CodeInsufficientFunds}) {
					refused.Add(1)
					continue
				}
				if err != nil {
					once.Do(func() { first = fmt.Errorf("demo: %s: %w", proc, err) })
					return
				}
				ok.Add(1)
				attempts.Add(int64(res.Attempts))
				if res.VIP {
					vip.Add(1)
				}
				for m := maxTries.Load(); int64(res.Attempts) > m && !maxTries.CompareAndSwap(m, int64(res.Attempts)); m = maxTries.Load() {
				}
			}
		})
	}
	wg.Wait()
	p.elapsed = time.Since(t0)
	p.calls, p.failed, p.attempts, p.vip, p.maxTries = ok.Load(), refused.Load(), attempts.Load(), vip.Load(), maxTries.Load()
	return p, first
}

func readInt(ctx context.Context, c *client.Client, path string) (int64, error) {
	v, err := c.Get(ctx, path)
	if errors.Is(err, protocol.ErrNotFound) {
		return 0, nil // never written: the counter starts at 0
	}
	if err != nil {
		return 0, err
	}
	var n int64
	err = json.Unmarshal(v.Entries[0].Value, &n)
	return n, err
}

// tensors fills a tensor as large as a quarter of a worker's slab (at
// most 256 MiB), sums and scales it in other invocations, and times a
// peek at it against a peek at a 4 KiB tensor. It returns the checked
// invariant, or "" when the zone is off.
func tensors(ctx context.Context, c *client.Client, h client.Heavy) (string, error) {
	n := min(h.SlabSize/4, 256<<20) / 4
	if n < 1<<10 {
		return "", nil
	}
	if _, err := c.Exec(ctx, "tensor.fill", FillArgs{Key: "demo", N: n, Value: 0.5}); err != nil {
		return "", err
	}
	if _, err := c.Exec(ctx, "tensor.fill", FillArgs{Key: "small", N: 1024, Value: 0.5}); err != nil {
		return "", err
	}
	peek := func(key string, index int64) (time.Duration, error) {
		best := time.Hour
		for range 20 {
			t := time.Now()
			if _, err := c.Exec(ctx, "tensor.peek", PeekArgs{Key: key, Index: index}); err != nil {
				return 0, err
			}
			best = min(best, time.Since(t))
		}
		return best, nil
	}
	big, err := peek("demo", n-1)
	if err != nil {
		return "", err
	}
	small, err := peek("small", 1023)
	if err != nil {
		return "", err
	}
	t := time.Now()
	res, err := c.Exec(ctx, "tensor.sum", KeyArgs{Key: "demo"})
	if err != nil {
		return "", err
	}
	sumTime := time.Since(t)
	var sum float64
	if err := json.Unmarshal(res.Result, &sum); err != nil {
		return "", err
	}
	if _, err := c.Exec(ctx, "tensor.scale", ScaleArgs{Src: "demo", Dst: "demo2", Factor: 2}); err != nil {
		return "", err
	}
	res, err = c.Exec(ctx, "tensor.sum", KeyArgs{Key: "demo2"})
	if err != nil {
		return "", err
	}
	var sum2 float64
	if err := json.Unmarshal(res.Result, &sum2); err != nil {
		return "", err
	}
	if want := float64(n) / 2; sum != want || sum2 != 2*want {
		return "", fmt.Errorf("%w: tensor sums %g and %g, want %g and %g", ErrInvariant, sum, sum2, want, 2*want)
	}
	mib := n * 4 >> 20
	return fmt.Sprintf("tensors: %d MiB filled, summed (%.1f GB/s) and scaled by other invocations, sums exact; peek at %d MiB %s vs at 4 KiB %s",
		mib, float64(n*4)/sumTime.Seconds()/1e9, mib, big.Round(time.Microsecond), small.Round(time.Microsecond)), nil
}
