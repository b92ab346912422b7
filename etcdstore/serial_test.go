package etcdstore_test

import (
	"context"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/etcdstore"
	"github.com/theus-run/theus/internal/regmodel"
)

// runner drives s the way a supervisor does: the cas Runner, through the
// Engine seam, with room for the retries a hot key costs without tickets.
func runner(s *etcdstore.Store) *cas.Runner {
	return &cas.Runner{Engine: s, MaxAttempts: 1000}
}

// TestLinearizableAcrossStores records histories of reads and
// read-modify-writes spread over two stores (two clients on two members,
// as two supervisors would be) and has porcupine check each against the
// register model cas is checked against. THEUS_ETCD_SEEDS runs more.
func TestLinearizableAcrossStores(t *testing.T) {
	const goroutines, opsEach = 6, 20
	seeds := 3
	if n, err := strconv.Atoi(os.Getenv("THEUS_ETCD_SEEDS")); err == nil && n > 0 {
		seeds = n
	}
	stores := []*etcdstore.Store{store(t, 0), store(t, 1)}
	runners := []*cas.Runner{runner(stores[0]), runner(stores[1])}
	for seed := range uint64(seeds) {
		paths := []string{}
		for _, k := range []string{"a", "b", "c"} {
			paths = append(paths, "domain.s"+strconv.FormatUint(seed, 10)+"."+k)
		}
		var clock atomic.Int64
		var mu sync.Mutex
		var history []porcupine.Operation
		var wg sync.WaitGroup
		for g := range goroutines {
			rng := rand.New(rand.NewPCG(seed, uint64(g)))
			wg.Go(func() {
				for i := range opsEach {
					in := regmodel.Input{Path: paths[rng.IntN(len(paths))], Write: rng.IntN(2) == 0, Val: int64(g*1_000_000 + i + 1)}
					call := clock.Add(1)
					out, ok := runOp(t, stores[g%2], runners[g%2], in)
					ret := clock.Add(1)
					if !ok {
						return
					}
					mu.Lock()
					history = append(history, porcupine.Operation{ClientId: g, Input: in, Call: call, Output: out, Return: ret})
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		if res := porcupine.CheckOperationsTimeout(regmodel.Model, history, 30*time.Second); res != porcupine.Ok {
			t.Fatalf("seed %d: porcupine says %s over %d operations", seed, res, len(history))
		}
	}
}

func runOp(t *testing.T, s *etcdstore.Store, r *cas.Runner, in regmodel.Input) (regmodel.Output, bool) {
	p := contract.MustParse(in.Path)
	if !in.Write {
		sn, err := s.View(bg, []contract.Path{p})
		if err != nil {
			t.Error(err)
			return regmodel.Output{}, false
		}
		e, ok := sn.Get(p)
		if !ok {
			return regmodel.Output{}, true
		}
		return regmodel.Output{Val: dec(t, e.Value), Present: true, Ver: uint64(e.Version)}, true
	}
	c := mustContract(t, "rmw", []string{in.Path}, []string{in.Path})
	var seen regmodel.Output
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
		return regmodel.Output{}, false
	}
	seen.Ver = uint64(rep.Version)
	return seen, true
}

// TestBankAcrossStores: transfers through two stores (each reads the whole
// accounts subtree and writes two accounts) keep the total in every view,
// and no balance goes negative, which write skew would allow.
func TestBankAcrossStores(t *testing.T) {
	stores := []*etcdstore.Store{store(t, 0), store(t, 2)}
	accounts := []string{"a", "b", "c", "d"}
	var open cas.Delta
	for _, a := range accounts {
		open.Set(P("domain.accounts."+a), enc(100))
	}
	commit(t, stores[0], open, cas.Options{})
	c := mustContract(t, "bank.transfer", []string{"domain.accounts"}, []string{"domain.accounts"})
	stop := make(chan struct{})
	var audits atomic.Int64
	var auditor sync.WaitGroup
	auditor.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			sn, err := stores[1].View(bg, []contract.Path{P("domain.accounts")})
			if err != nil {
				t.Error(err)
				return
			}
			total := int64(0)
			for _, e := range sn.Subtree(P("domain.accounts")) {
				n := dec(t, e.Value)
				if n < 0 {
					t.Errorf("negative balance at %s: %d", e.Path, n)
				}
				total += n
			}
			if total != 400 {
				t.Errorf("total = %d at revision %d", total, sn.Version())
				return
			}
			audits.Add(1)
		}
	})
	var workers sync.WaitGroup
	var commits atomic.Int64
	for g := range 6 {
		r := runner(stores[g%2])
		rng := rand.New(rand.NewPCG(uint64(g), 7))
		workers.Go(func() {
			for range 15 {
				from, to := accounts[rng.IntN(4)], accounts[rng.IntN(4)]
				amount := int64(rng.IntN(150))
				rep, err := r.Call(bg, c, "", func(_ context.Context, v cas.View) (cas.Outcome, error) {
					fb, _, _ := v.Get(P("domain.accounts." + from))
					tb, _, _ := v.Get(P("domain.accounts." + to))
					f, tt := dec(t, fb), dec(t, tb)
					if from == to || f < amount {
						return cas.Outcome{}, nil
					}
					var d cas.Delta
					d.Set(P("domain.accounts."+from), enc(f-amount))
					d.Set(P("domain.accounts."+to), enc(tt+amount))
					return cas.Outcome{Delta: d}, nil
				})
				if err != nil {
					t.Error(err)
					return
				}
				if !rep.ReadOnly {
					commits.Add(1)
				}
			}
		})
	}
	workers.Wait()
	close(stop)
	auditor.Wait()
	if audits.Load() == 0 || commits.Load() == 0 {
		t.Fatalf("%d audits, %d transfers committed", audits.Load(), commits.Load())
	}
}
