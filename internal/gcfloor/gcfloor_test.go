package gcfloor

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

func readMetric(name string) uint64 {
	s := []metrics.Sample{{Name: name}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

var sink []byte

// churn makes n MiB of garbage in 1 KiB pieces and returns how many
// collections ran meanwhile.
func churn(n int) uint64 {
	before := readMetric("/gc/cycles/total:gc-cycles")
	for range n << 10 {
		sink = make([]byte, 1024)
	}
	return readMetric("/gc/cycles/total:gc-cycles") - before
}

// waitPercent waits until the floor has set a GOGC for which ok holds
// (it adjusts after a collection, on the runtime's cleanup goroutine).
func waitPercent(t *testing.T, f *Floor, ok func(int) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok(f.Percent()) {
		if time.Now().After(deadline) {
			t.Fatalf("GOGC still %d after 10s of collections", f.Percent())
		}
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
}

func skipIfGOGC(t *testing.T) {
	if os.Getenv("GOGC") != "" {
		t.Skip("GOGC is set: a Floor leaves it alone")
	}
}

// TestFloorCutsCollections: 256 MiB of garbage over a small live heap
// costs many collections at Go's default and a few with a 128 MiB floor;
// Stop puts GOGC back.
func TestFloorCutsCollections(t *testing.T) {
	skipIfGOGC(t)
	runtime.GC()
	without := churn(256)
	f := Start(128 << 20)
	defer f.Stop()
	waitPercent(t, f, func(p int) bool { return p > 100 })
	if goal := readMetric("/gc/heap/goal:bytes"); goal < 128<<20 || goal > 160<<20 {
		t.Fatalf("goal %d MiB with a 128 MiB floor", goal>>20)
	}
	with := churn(256)
	t.Logf("collections for 256 MiB of garbage: %d at GOGC=100, %d with the floor (GOGC=%d)", without, with, f.Percent())
	if with*4 > without {
		t.Fatalf("%d collections with the floor, %d without: want at most a quarter", with, without)
	}
	f.Stop()
	if got := readMetric("/gc/gogc:percent"); got != 100 {
		t.Fatalf("GOGC %d after Stop, want 100", got)
	}
	f.Stop()
	f.adjust() // a collection's adjust that ran late changes nothing now
	if got := readMetric("/gc/gogc:percent"); got != 100 {
		t.Fatalf("GOGC %d after Stop and a late adjust, want 100", got)
	}
	runtime.GC() // a goal computed at GOGC 100 again
	if goal := readMetric("/gc/heap/goal:bytes"); goal >= 64<<20 {
		t.Fatalf("goal %d MiB after Stop: the 128 MiB floor is still on", goal>>20)
	}
}

// TestFloorPastHalf: with the live heap over half the floor, GOGC stays
// Go's default.
func TestFloorPastHalf(t *testing.T) {
	skipIfGOGC(t)
	live := make([]byte, 16<<20)
	for i := range live {
		live[i] = 1 // the pages are the heap's, counted live
	}
	f := Start(8 << 20)
	defer f.Stop()
	for range 5 {
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
	if p := f.Percent(); p != 100 {
		t.Fatalf("GOGC %d with 16 MiB live and an 8 MiB floor, want 100", p)
	}
	runtime.KeepAlive(live)
}

// TestFloorLeavesUsersGOGC: GOGC set in the environment, or a floor of
// 0, changes nothing.
func TestFloorLeavesUsersGOGC(t *testing.T) {
	t.Setenv("GOGC", "150")
	old := debug.SetGCPercent(150)
	defer debug.SetGCPercent(old)
	f := Start(128 << 20)
	runtime.GC()
	time.Sleep(10 * time.Millisecond)
	runtime.GC()
	if got := readMetric("/gc/gogc:percent"); got != 150 {
		t.Fatalf("GOGC %d, want the user's 150", got)
	}
	f.Stop()
	if got := readMetric("/gc/gogc:percent"); got != 150 {
		t.Fatalf("GOGC %d after Stop, want the user's 150", got)
	}
	os.Unsetenv("GOGC")
	Start(0).Stop()
	if got := readMetric("/gc/gogc:percent"); got != 150 {
		t.Fatalf("GOGC %d after a floor of 0, want 150", got)
	}
}

// TestFloorWithLiveHeap: with 24 MiB live, the goal is the floor through
// the live heap's share (GOGC about 400), not the runtime's minimum.
func TestFloorWithLiveHeap(t *testing.T) {
	skipIfGOGC(t)
	live := make([][]byte, 24)
	for i := range live {
		live[i] = make([]byte, 1<<20)
		for j := range live[i] {
			live[i][j] = 1
		}
	}
	f := Start(128 << 20)
	defer f.Stop()
	waitPercent(t, f, func(p int) bool { return p > 100 })
	runtime.GC()
	time.Sleep(10 * time.Millisecond)
	if goal := readMetric("/gc/heap/goal:bytes"); goal < 120<<20 || goal > 150<<20 {
		t.Fatalf("goal %d MiB with 24 MiB live and a 128 MiB floor (GOGC %d)", goal>>20, f.Percent())
	}
	runtime.KeepAlive(live)
}
