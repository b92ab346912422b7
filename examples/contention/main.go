// Command contention runs the CAS engine in this process on a demo
// workload: counter increments on one hot key, bank transfers with the
// total checked in every snapshot, and enough contention to fire VIP
// tickets. It prints a summary and exits non-zero if an invariant breaks.
package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/vip"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "contention:", err)
		os.Exit(1)
	}
}

type stats struct{ commits, attempts, conflicts, vip atomic.Int64 }

func (s *stats) add(r cas.Report) {
	s.commits.Add(1)
	s.attempts.Add(int64(r.Attempts))
	s.conflicts.Add(int64(r.Conflicts))
	if r.VIP {
		s.vip.Add(1)
	}
}

func run() error {
	clients := flag.Int("clients", 16, "concurrent clients")
	ops := flag.Int("ops", 2000, "operations per client and workload")
	flag.Parse()

	arb := vip.New(vip.Config{})
	defer arb.Close()
	store := cas.New(cas.Config{Arbiter: arb})
	runner := &cas.Runner{Store: store, Arbiter: arb}
	ctx := context.Background()

	counter := contract.MustParse("domain.counter")
	add, err := contract.New("counter.add", []contract.Path{counter}, []contract.Path{counter}, contract.Pure)
	if err != nil {
		return err
	}
	accounts := contract.MustParse("domain.accounts")
	transfer, err := contract.New("bank.transfer", []contract.Path{accounts}, []contract.Path{accounts}, contract.Pure)
	if err != nil {
		return err
	}
	names := []string{"alice", "bob", "carol", "dave"}
	var open cas.Delta
	for _, n := range names {
		open.Set(accounts+"."+contract.Path(n), binary.AppendVarint(nil, 1000))
	}
	if _, err := store.Commit(ctx, 0, nil, open, cas.Options{}); err != nil {
		return err
	}

	var st stats
	var failed atomic.Value
	start := time.Now()
	var wg sync.WaitGroup
	for c := range *clients {
		wg.Go(func() {
			for i := range *ops {
				rep, err := runner.Call(ctx, add, "", func(_ context.Context, in cas.View) (cas.Outcome, error) {
					return incr(in, counter)
				})
				if err == nil {
					st.add(rep)
					from, to := names[(c+i)%4], names[(c+2*i+1)%4]
					rep, err = runner.Call(ctx, transfer, "", func(_ context.Context, in cas.View) (cas.Outcome, error) {
						return move(in, accounts, from, to, int64(i%50))
					})
				}
				if err != nil {
					failed.Store(err)
					return
				}
				st.add(rep)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err, _ := failed.Load().(error); err != nil {
		return err
	}

	snap := store.Snapshot()
	defer snap.Release()
	got, _ := snap.Get(counter)
	n, _ := binary.Varint(got.Value)
	total := int64(0)
	for _, e := range snap.Subtree(accounts) {
		b, _ := binary.Varint(e.Value)
		total += b
	}
	fmt.Printf("clients %d, commits %d in %v (%.0f commits/s)\n", *clients, st.commits.Load(), elapsed.Round(time.Millisecond), float64(st.commits.Load())/elapsed.Seconds())
	fmt.Printf("attempts %d, conflicts %d (%.2f retries per commit), VIP commits %d\n",
		st.attempts.Load(), st.conflicts.Load(), float64(st.conflicts.Load())/float64(st.commits.Load()), st.vip.Load())
	fmt.Printf("invariant counter == %d: %v; invariant total balance == 4000: %v\n", *clients**ops, n == int64(*clients**ops), total == 4000)
	if n != int64(*clients**ops) || total != 4000 {
		return fmt.Errorf("invariant broken: counter %d, total %d", n, total)
	}
	return nil
}

func incr(in cas.View, p contract.Path) (cas.Outcome, error) {
	b, _, err := in.Get(p)
	if err != nil {
		return cas.Outcome{}, err
	}
	n, _ := binary.Varint(b)
	var d cas.Delta
	d.Set(p, binary.AppendVarint(nil, n+1))
	return cas.Outcome{Delta: d}, nil
}

func move(in cas.View, accounts contract.Path, from, to string, amount int64) (cas.Outcome, error) {
	fp, tp := accounts+"."+contract.Path(from), accounts+"."+contract.Path(to)
	fb, _, err := in.Get(fp)
	if err != nil {
		return cas.Outcome{}, err
	}
	tb, _, err := in.Get(tp)
	if err != nil {
		return cas.Outcome{}, err
	}
	f, _ := binary.Varint(fb)
	t, _ := binary.Varint(tb)
	if from == to || f < amount {
		return cas.Outcome{}, nil // refused: nothing to commit
	}
	var d cas.Delta
	d.Set(fp, binary.AppendVarint(nil, f-amount))
	d.Set(tp, binary.AppendVarint(nil, t+amount))
	return cas.Outcome{Delta: d}, nil
}
