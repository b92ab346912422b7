package cas_test

import (
	"context"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/internal/regmodel"
	"github.com/theus-run/theus/vip"
)

// TestLinearizable records histories from 8 goroutines doing random reads
// and read-modify-write commits through the Runner, over many seeds, and
// has porcupine check each one. Illegal or Unknown fails.
func TestLinearizable(t *testing.T) {
	const (
		goroutines = 8
		opsEach    = 40
	)
	seeds := 24
	if n, err := strconv.Atoi(os.Getenv("THEUS_LINEARIZABILITY_SEEDS")); err == nil && n > 0 {
		seeds = n
	}
	paths := []string{"domain.r.a", "domain.r.b", "domain.r.c"}
	for seed := range uint64(seeds) {
		arb := vip.New(vip.Config{})
		s := cas.New(cas.Config{Arbiter: arb})
		r := &cas.Runner{Store: s, Arbiter: arb}
		var clock atomic.Int64
		var mu sync.Mutex
		var history []porcupine.Operation
		var wg sync.WaitGroup
		for g := range goroutines {
			rng := rand.New(rand.NewPCG(seed, uint64(g)))
			wg.Go(func() {
				for i := range opsEach {
					p := paths[rng.IntN(len(paths))]
					in := regmodel.Input{Path: p, Write: rng.IntN(2) == 0, Val: int64(g*1_000_000 + i + 1)}
					call := clock.Add(1)
					out := runOp(t, s, r, in)
					ret := clock.Add(1)
					mu.Lock()
					history = append(history, porcupine.Operation{ClientId: g, Input: in, Call: call, Output: out, Return: ret})
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		res := porcupine.CheckOperationsTimeout(regmodel.Model, history, 10*time.Second)
		if res != porcupine.Ok {
			t.Fatalf("seed %d: porcupine says %s over %d operations", seed, res, len(history))
		}
	}
}

func runOp(t *testing.T, s *cas.Store, r *cas.Runner, in regmodel.Input) regmodel.Output {
	p := contract.MustParse(in.Path)
	if !in.Write {
		sn := s.Snapshot()
		defer sn.Release()
		e, ok := sn.Get(p)
		if !ok {
			return regmodel.Output{}
		}
		return regmodel.Output{Val: dec(t, e.Value), Present: true, Ver: uint64(e.Version)}
	}
	c := mustContract(t, "rmw", []string{in.Path}, []string{in.Path}, contract.Pure)
	var seen regmodel.Output // what the attempt that committed read
	rep, err := r.Call(bg, c, "", func(_ context.Context, v cas.View) (cas.Outcome, error) {
		seen = regmodel.Output{}
		if b, ok, err := v.Get(p); err != nil {
			return cas.Outcome{}, err
		} else if ok {
			seen = regmodel.Output{Val: dec(t, b), Present: true}
		}
		var d cas.Delta
		d.Set(p, enc(in.Val))
		return cas.Outcome{Delta: d}, nil
	})
	if err != nil {
		t.Error(err)
	}
	seen.Ver = uint64(rep.Version)
	return seen
}

// TestSerializableTransfers: concurrent transfers between accounts keep the
// total constant in every snapshot, and no balance goes negative (which
// write skew would allow).
func TestSerializableTransfers(t *testing.T) {
	arb := vip.New(vip.Config{})
	s := cas.New(cas.Config{Arbiter: arb})
	r := &cas.Runner{Store: s, Arbiter: arb}
	accounts := []string{"a", "b", "c", "d"}
	var open cas.Delta
	for _, a := range accounts {
		open.Set(P("domain.accounts."+a), enc(100))
	}
	if _, err := s.Commit(bg, 0, nil, open, cas.Options{}); err != nil {
		t.Fatal(err)
	}
	c := mustContract(t, "bank.transfer", []string{"domain.accounts"}, []string{"domain.accounts"}, contract.Pure)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var audits atomic.Int64
	wg.Go(func() { // the auditor
		for {
			select {
			case <-stop:
				return
			default:
			}
			sn := s.Snapshot()
			total := int64(0)
			for _, e := range sn.Subtree(P("domain.accounts")) {
				n := dec(t, e.Value)
				if n < 0 {
					t.Errorf("negative balance at %s: %d", e.Path, n)
				}
				total += n
			}
			sn.Release()
			if total != 400 {
				t.Errorf("total = %d at some snapshot", total)
				return
			}
			audits.Add(1)
			runtime.Gosched() // WebAssembly has one thread and no preemption: a loop that never yields starves the workers
		}
	})
	var workers sync.WaitGroup
	for g := range 8 {
		rng := rand.New(rand.NewPCG(uint64(g), 7))
		workers.Go(func() {
			for range 100 {
				from, to := accounts[rng.IntN(4)], accounts[rng.IntN(4)]
				amount := int64(rng.IntN(150))
				_, err := r.Call(bg, c, "", func(_ context.Context, v cas.View) (cas.Outcome, error) {
					fb, _, _ := v.Get(P("domain.accounts." + from))
					tb, _, _ := v.Get(P("domain.accounts." + to))
					f, tt := dec(t, fb), dec(t, tb)
					if from == to || f < amount {
						return cas.Outcome{}, nil // refused: nothing to commit
					}
					var d cas.Delta
					d.Set(P("domain.accounts."+from), enc(f-amount))
					d.Set(P("domain.accounts."+to), enc(tt+amount))
					return cas.Outcome{Delta: d}, nil
				})
				if err != nil {
					t.Error(err)
				}
			}
		})
	}
	workers.Wait()
	close(stop)
	wg.Wait()
	if audits.Load() == 0 {
		t.Fatal("the auditor never ran")
	}
}
