package worker

import (
	"context"
	"testing"
	"time"

	"github.com/theus-run/theus/protocol"
	"github.com/theus-run/theus/ring"
)

// ringRoundTrip sends dispatch id through out and reads its Result from
// r.
func ringRoundTrip(t *testing.T, out *ring.Shared, r *ring.Reader, id uint64) {
	t.Helper()
	dp := &protocol.Dispatch{ID: id, Attempt: 1, Process: "noop", Version: 1, Deadline: time.Now().Add(time.Minute).UnixNano()}
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

// The worker follows the supervisor's advice to poll its request ring:
// while advised, a dispatch that comes later finds it awake (no wake of
// the supervisor's); advised 0, it parks at once again. Serve returns at
// once at the end, though advised to poll for a minute.
func TestRingWorkerFollowsPollAdvice(t *testing.T) {
	defer func(d time.Duration) { maxRingPoll = d }(maxRingPoll)
	maxRingPoll = time.Minute // mapRings reads it: before ringWorker
	noop := Process("noop", Contract{}, func(*Ctx, None) (None, error) { return None{}, nil })
	pair := ringWorker(t, noop)
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
