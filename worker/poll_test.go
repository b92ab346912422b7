package worker

import (
	"context"
	"errors"
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
	ringSend(t, out, id, name)
	if got := ringReply(t, r); got != id {
		t.Fatalf("the reply to dispatch %d came first, want %d's", got, id)
	}
}

// ringSend sends dispatch id of process name through out.
func ringSend(t *testing.T, out *ring.Shared, id uint64, name string) {
	t.Helper()
	dp := &protocol.Dispatch{ID: id, Attempt: 1, Process: name, Version: 1, Deadline: time.Now().Add(time.Minute).UnixNano()}
	rec, err := encodeRecord(nil, dp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := out.Append(rec, false); err != nil {
		t.Fatal(err)
	}
}

// ringReply reads the next Result from r and returns its dispatch's id.
func ringReply(t *testing.T, r *ring.Reader) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rec, err := r.Read(nil)
	for errors.Is(err, ring.ErrEmpty) {
		if err := r.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		rec, err = r.Read(nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(rec) == 0 || protocol.Kind(rec[0]) != protocol.KindResult {
		t.Fatalf("reply record %v", rec)
	}
	var res protocol.Result
	if _, err := res.UnmarshalMsg(rec[1:]); err != nil {
		t.Fatal(err)
	}
	return res.ID
}

// pollTestProcesses: noop, and nap, which sleeps 300ms.
func pollTestProcesses() []Def {
	return []Def{
		Process("noop", Contract{}, func(*Ctx, None) (None, error) { return None{}, nil }),
		Process("nap", Contract{}, func(*Ctx, None) (None, error) { time.Sleep(300 * time.Millisecond); return None{}, nil }),
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
// ring reader parks (a poll would take the process's CPU), so a dispatch
// sent meanwhile needs a wake, though a minute's poll is advised. Once
// the last process ends, the worker polls again: at GOMAXPROCS 1 the
// reader that parked while a 1ms process slept is nudged, and a dispatch
// 5ms later finds it polling.
func TestRingWorkerPollsOnlyWhenIdle(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	defer func(d time.Duration) { maxRingPoll = d }(maxRingPoll)
	maxRingPoll = time.Minute
	defs := append(pollTestProcesses(),
		Process("blip", Contract{}, func(*Ctx, None) (None, error) { time.Sleep(time.Millisecond); return None{}, nil }))
	pair := ringWorker(t, defs...)
	out := ring.NewShared(pair.Writer())
	r := pair.Reader()
	out.SetPoll(time.Minute)

	// nap sleeps 300ms (a margin for a loaded machine): a dispatch sent 10ms in must wake the worker.
	ringSend(t, out, 1, "nap")
	time.Sleep(10 * time.Millisecond)
	before := pair.Writer().Wakes()
	ringCall(t, out, r, 2, "noop") // its reply comes before nap's
	if got := pair.Writer().Wakes(); got != before+1 {
		t.Fatalf("a dispatch sent while a process ran took %d wakes, want 1: the worker polled beside the process", got-before)
	}
	if got := ringReply(t, r); got != 1 {
		t.Fatalf("reply to %d, want nap's (1)", got)
	}

	ringCall(t, out, r, 4, "blip")
	before = pair.Writer().Wakes()
	time.Sleep(5 * time.Millisecond) // the worker is idle by now
	ringRoundTrip(t, out, r, 5)
	if got := pair.Writer().Wakes(); got != before {
		t.Fatalf("idle and advised to poll for a minute, the worker needed %d wake(s) for a dispatch 5ms after a 1ms process", got-before)
	}
}

// The end of a Dispatch that came over the socket (too large for the
// ring, or the ring full) does not make a reader that parked after its
// poll ran out poll again: at GOMAXPROCS 1 the next socket Dispatch would
// wait out that poll (50ms here).
func TestSocketDispatchDoesNotRestartThePoll(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	defer func(d time.Duration) { maxRingPoll = d }(maxRingPoll)
	maxRingPoll = time.Minute
	pair, conn := ringWorkerConn(t, pollTestProcesses()...)
	out := ring.NewShared(pair.Writer())
	r := pair.Reader()
	out.SetPoll(50 * time.Millisecond)
	ringRoundTrip(t, out, r, 1)
	time.Sleep(200 * time.Millisecond) // the poll ran out: the reader parks
	call := func(id uint64) time.Duration {
		start := time.Now()
		if err := conn.Send(&protocol.Dispatch{ID: id, Attempt: 1, Process: "noop", Version: 1, Deadline: time.Now().Add(time.Minute).UnixNano()}); err != nil {
			t.Fatal(err)
		}
		if got := ringReply(t, r); got != id { // results take the ring when there is one
			t.Fatalf("the reply to %d, want %d", got, id)
		}
		return time.Since(start)
	}
	polls := ringPolls.Load()
	call(2)
	call(3)
	time.Sleep(10 * time.Millisecond) // a nudged reader would have polled by now
	if n := ringPolls.Load() - polls; n != 0 {
		t.Fatalf("two socket dispatches made the parked ring reader poll %d times", n)
	}
}
