package cas_test

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
)

// modelSnap is a snapshot next to the full copy of the state it must see.
type modelSnap struct {
	sn    *cas.Snapshot
	state map[contract.Path]string
}

var modelPaths = Ps("domain.a", "domain.a.x", "domain.a.y", "domain.b", "domain.b.x.deep", "domain.log_l")

// FuzzStoreAgainstModel drives the store with a random mix of snapshots,
// releases, renewals, commits from old snapshots, deletes and appends, and
// checks after every step that each live snapshot reads exactly the state
// of its version, and that commits conflict exactly when the model says so.
// This is what catches history trimmed too early.
func FuzzStoreAgainstModel(f *testing.F) {
	for seed := range uint64(32) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, seed uint64) {
		rng := rand.New(rand.NewPCG(seed, 99))
		s := cas.New(cas.Config{})
		cur := map[contract.Path]string{}
		// lastWrite[p] is the version that last set, deleted or appended under p.
		lastWrite := map[contract.Path]cas.Version{}
		var snaps []modelSnap
		for step := range 300 {
			switch op := rng.IntN(10); {
			case op < 2:
				snaps = append(snaps, modelSnap{sn: s.Snapshot(), state: maps.Clone(cur)})
			case op < 3 && len(snaps) > 0:
				i := rng.IntN(len(snaps))
				snaps[i].sn.Release()
				snaps = append(snaps[:i], snaps[i+1:]...)
			case op < 4 && len(snaps) > 0:
				i := rng.IntN(len(snaps))
				snaps[i].sn.Renew()
				snaps[i].state = maps.Clone(cur)
			default:
				// Commit from a live snapshot (possibly stale) or the newest.
				base := s.Version()
				if len(snaps) > 0 && rng.IntN(2) == 0 {
					base = snaps[rng.IntN(len(snaps))].sn.Version()
				}
				read := modelPaths[rng.IntN(len(modelPaths))] // the log too: appends conflict with its readers
				var d cas.Delta
				target := modelPaths[rng.IntN(len(modelPaths)-1)]
				switch rng.IntN(3) {
				case 0:
					d.Delete(target)
				default:
					d.Set(target, fmt.Appendf(nil, "v%d", step))
				}
				if rng.IntN(3) == 0 {
					d.Append("domain.log_l", fmt.Appendf(nil, "e%d", step))
				}
				wantConflict := false
				for p, v := range lastWrite {
					if v > base && (read.Covers(p) || p == target) {
						wantConflict = true
					}
				}
				res, err := s.Commit(bg, base, []contract.Path{read}, d, cas.Options{})
				if wantConflict != errors.Is(err, cas.ErrConflict) || !wantConflict && err != nil {
					t.Fatalf("step %d: commit from %d reading %s writing %s: err %v, model conflict %v", step, base, read, target, err, wantConflict)
				}
				if err == nil {
					for _, w := range d {
						p := w.Path
						switch w.Op {
						case contract.OpSet:
							cur[p] = string(w.Value)
						case contract.OpDelete:
							delete(cur, p)
						case contract.OpAppend:
							p = contract.Path(fmt.Sprintf("%s.%020d", w.Path, countPrefix(cur, w.Path)))
							cur[p] = string(w.Value)
						}
						lastWrite[p] = res.Version
					}
					cur = maps.Clone(cur)
				}
			}
			for _, m := range snaps {
				checkSnapshot(t, step, m)
			}
		}
		for _, m := range snaps {
			m.sn.Release()
		}
	})
}

func countPrefix(state map[contract.Path]string, root contract.Path) int {
	n := 0
	for p := range state {
		if root.Covers(p) && p != root {
			n++
		}
	}
	return n
}

func checkSnapshot(t *testing.T, step int, m modelSnap) {
	t.Helper()
	got := map[contract.Path]string{}
	for _, e := range m.sn.Subtree("domain") {
		got[e.Path] = string(e.Value)
		if e2, ok := m.sn.Get(e.Path); !ok || !bytes.Equal(e2.Value, e.Value) {
			t.Fatalf("step %d: Get and Subtree disagree at %s", step, e.Path)
		}
	}
	if !maps.Equal(got, m.state) {
		t.Fatalf("step %d: snapshot %d reads\n%v\nwant\n%v", step, m.sn.Version(), got, m.state)
	}
}
