package worker

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/theus-run/theus/protocol"
	"github.com/theus-run/theus/ring"
)

// ringRoundTrip sends dispatch id through out and reads its Result from
// r.
func ringRoundTrip(t *testing.T, out *ring.Shared, r *ring.Reader, id uint64) {
	t.Helper()
	ringCall(t, out, r, id, "noop")
}

// ringCall is ringRoundTrip for process name.
func ringCall(t *testing.T, out *ring.Shared, r *ring.Reader, id uint64, name string) {
	t.Helper()
	dp := &protocol.Dispatch{ID: id, Attempt: 1, Process: name, Version: 1, Deadline: time.Now().Add(time.Minute).UnixNano()}
	rec, err := encodeRecord(nil, dp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := out.Append(rec, false); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var b ring.Batch
	for {
		n, err := r.ReadBatch(&b, 0)
		if err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			if rec := b.Record(0); len(rec) == 0 || protocol.Kind(rec[0]) != protocol.KindResult {
				t.Fatalf("reply record %v", rec)
			}
			return
		}
		if n > 1 {
			t.Fatalf("%d replies to one dispatch", n)
		}
		if err := r.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// pollTestProcesses: noop, and nap, which sleeps 30ms.
func pollTestProcesses() []Def {
	return []Def{
		Process("noop", Contract{}, func(*Ctx, None) (None, error) { return None{}, nil }),
		Process("nap", Contract{}, func(*Ctx, None) (None, error) { time.Sleep(30 * time.Millisecond); return None{}, nil }),
	}
}

// The worker follows the supervisor's advice to poll its request ring:
// while advised, a dispatch that comes later finds it awake (no wake of
// the supervisor's); advised 0, it parks at once again. Serve returns at
// once at the end, though advised to poll for a minute. At GOMAXPROCS 1,
// as the supervisor runs its workers: the next reader of the ring then
// runs once the dispatch before is done (with more processors it may look
// while that one still runs, find the worker busy and park).
func TestRingWorkerFollowsPollAdvice(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	defer func(d time.Duration) { maxRingPoll = d }(maxRingPoll)
	maxRingPoll = time.Minute // mapRings reads it: before ringWorker
	pair := ringWorker(t, pollTestProcesses()...)
	out := ring.NewShared(pair.Writer())
	r := pair.Reader()

	out.SetPoll(time.Minute)
	ringRoundTrip(t, out, r, 1)
	before := pair.Writer().Wakes()
	time.Sleep(20 * time.Millisecond) // long past a parking worker's wait
	ringRoundTrip(t, out, r, 2)
	if got := pair.Writer().Wakes(); got != before {
		t.Fatalf("advised to poll for a minute, the worker needed %d wakes for a dispatch 20ms later", got-before)
	}

	out.SetPoll(0)
	ringRoundTrip(t, out, r, 3) // carries the advice: the worker parks after it
	for id := uint64(4); ; id++ {
		before = pair.Writer().Wakes()
		time.Sleep(10 * time.Millisecond)
		ringRoundTrip(t, out, r, id)
		if pair.Writer().Wakes() > before {
			break // parked, and woken
		}
		if id == 100 {
			t.Fatal("advised 0, the worker never parked: still polling")
		}
	}
}

// The worker polls only when no process runs: while one does, its next
// reader parks (it would take the process's CPU), so a dispatch sent
// as the process ends needs a wake, though a minute's poll is advised.
func TestRingWorkerPollsOnlyWhenIdle(t *testing.T) {
	defer func(d time.Duration) { maxRingPoll = d }(maxRingPoll)
	maxRingPoll = time.Minute
	pair := ringWorker(t, pollTestProcesses()...)
	out := ring.NewShared(pair.Writer())
	r := pair.Reader()
	out.SetPoll(time.Minute)
	ringCall(t, out, r, 1, "nap")
	before := pair.Writer().Wakes()
	ringRoundTrip(t, out, r, 2)
	if got := pair.Writer().Wakes(); got != before+1 {
		t.Fatalf("a dispatch right after a 30ms process took %d wakes, want 1: the worker polled while the process ran", got-before)
	}
}
