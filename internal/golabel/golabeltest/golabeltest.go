// Package golabeltest reads back, for tests, the labels that golabel sets:
// the loop each goroutine running a given function carries, from a
// goroutine profile of the test's own process. It never sets labels.
package golabeltest

import (
	"bytes"
	"runtime/pprof"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"

	"github.com/theus-run/theus/internal/golabel"
)

// Loops returns, for each function in fns (the end of its full name, as
// "pool.(*proc).readRing"), the loop labels (golabel.Loop) of the
// goroutines whose stack holds it now, sorted; "" for a goroutine
// without one.
func Loops(t testing.TB, fns ...string) map[string][]string {
	t.Helper()
	var buf bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&buf, 0); err != nil {
		t.Fatal(err)
	}
	p, err := profile.Parse(&buf)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, s := range p.Sample {
		loop := strings.Join(s.Label[golabel.Loop], ",")
		for _, fn := range fns {
			if onStack(s, fn) {
				for range s.Value[0] { // one per goroutine with this stack
					out[fn] = append(out[fn], loop)
				}
			}
		}
	}
	for _, l := range out {
		slices.Sort(l)
	}
	return out
}

func onStack(s *profile.Sample, fn string) bool {
	for _, l := range s.Location {
		for _, ln := range l.Line {
			if ln.Function != nil && strings.HasSuffix(ln.Function.Name, fn) {
				return true
			}
		}
	}
	return false
}

// Await polls Loops until the goroutines of each function in want carry
// exactly its loops (sorted), and fails t with what it saw if they do not
// within d: goroutines start, hand work on and park a moment after what
// the test waited for.
func Await(t testing.TB, d time.Duration, want map[string][]string) {
	t.Helper()
	fns := make([]string, 0, len(want))
	for fn := range want {
		fns = append(fns, fn)
	}
	for deadline := time.Now().Add(d); ; time.Sleep(2 * time.Millisecond) {
		got := Loops(t, fns...)
		ok := true
		for fn, w := range want {
			ok = ok && slices.Equal(got[fn], w)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			for fn, w := range want {
				if !slices.Equal(got[fn], w) {
					t.Errorf("goroutines in %s: loops %q, want %q", fn, got[fn], w)
				}
			}
			t.FailNow()
		}
	}
}
