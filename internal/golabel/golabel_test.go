package golabel

import (
	"bytes"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"

	"github.com/google/pprof/profile"
)

// parkedChild waits for stop in a goroutine started by a labeled one.
func parkedChild(stop chan struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	<-stop
}

// parkedLabeled labels itself, starts a child, and waits for stop.
func parkedLabeled(role string, n int, stop, started chan struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	Set(role, n)
	wg.Add(1)
	go parkedChild(stop, wg)
	close(started)
	<-stop
}

// startParked runs parkedLabeled until the test ends, and returns once
// it and its child run.
func startParked(t *testing.T, role string, n int) {
	stop, started := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	t.Cleanup(func() {
		close(stop)
		wg.Wait()
	})
	wg.Add(1)
	go parkedLabeled(role, n, stop, started, &wg)
	<-started
}

// labelsIn returns the role and loop labels of the goroutines of a
// goroutine profile whose stack holds a function named fn.
func labelsIn(t *testing.T, fn string) [][2]string {
	t.Helper()
	var buf bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&buf, 0); err != nil {
		t.Fatal(err)
	}
	p, err := profile.Parse(&buf)
	if err != nil {
		t.Fatal(err)
	}
	var out [][2]string
	for _, s := range p.Sample {
		for _, l := range s.Location {
			if len(l.Line) > 0 && strings.HasSuffix(l.Line[0].Function.Name, "."+fn) {
				for range s.Value[0] { // one per goroutine of this stack
					out = append(out, [2]string{strings.Join(s.Label[Role], ","), strings.Join(s.Label[Loop], ",")})
				}
				break
			}
		}
	}
	return out
}

func TestSet(t *testing.T) {
	for _, tc := range []struct {
		role string
		n    int
		loop string
	}{
		{Conn, 12, "conn 12"},
		{WorkerRing, 0, "worker-ring 0"},
		{Journal, -1, "journal"},
	} {
		t.Run(tc.loop, func(t *testing.T) {
			startParked(t, tc.role, tc.n)
			want := [2]string{tc.role, tc.loop}
			for _, fn := range []string{"parkedLabeled", "parkedChild"} {
				got := labelsIn(t, fn)
				if len(got) != 1 || got[0] != want {
					t.Errorf("%s: labels %q, want one goroutine with %q", fn, got, want)
				}
			}
		})
	}
}

// The labels are the goroutine's own: its caller's stay as they were.
func TestSetLeavesOtherGoroutines(t *testing.T) {
	startParked(t, Conn, 1)
	own := labelsIn(t, "TestSetLeavesOtherGoroutines")
	if len(own) != 1 {
		t.Fatalf("%d goroutines run the test, want 1", len(own))
	}
	for _, l := range own {
		if l != [2]string{} {
			t.Errorf("the test's goroutine has labels %q", l)
		}
	}
}

// A kept goroutine that runs tasks for several loops carries the labels
// of the task it runs; the zero Labels clear them.
func TestLabelsSetAgain(t *testing.T) {
	conn3, ring1 := Of(Conn, 3), Of(WorkerRing, 1)
	for _, tc := range []struct {
		l    Labels
		want [2]string
	}{
		{conn3, [2]string{Conn, "conn 3"}},
		{Named(FluxRun, "r-17"), [2]string{FluxRun, "flux-run r-17"}},
		{ring1, [2]string{WorkerRing, "worker-ring 1"}},
		{Labels{}, [2]string{}},
	} {
		stop, started := make(chan struct{}), make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			Set(Journal, -1)
			tc.l.Set()
			parkedLabeledAgain(stop, started, &wg)
		}()
		<-started
		got := labelsIn(t, "parkedLabeledAgain")
		close(stop)
		wg.Wait()
		if len(got) != 1 || got[0] != tc.want {
			t.Errorf("labels %q, want one goroutine with %q", got, tc.want)
		}
	}
}

func parkedLabeledAgain(stop, started chan struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	close(started)
	<-stop
}

// Labels are made once per loop so that setting them, once per task a
// kept goroutine runs, allocates nothing.
func TestSetAllocatesNothing(t *testing.T) {
	l := Of(Conn, 7)
	if n := testing.AllocsPerRun(100, l.Set); n != 0 {
		t.Errorf("Labels.Set: %v allocations, want 0", n)
	}
	Labels{}.Set()
}
