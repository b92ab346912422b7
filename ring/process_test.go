package ring

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"time"
)

// A worker process echoes records through the memfd it was handed as fd
// 3, up to 32 in flight, of random sizes, some larger than half a ring
// so that both rings wrap and fill.
func TestPairEchoAcrossProcesses(t *testing.T) {
	sup, err := New(MinCapacity)
	if err != nil {
		t.Fatal(err)
	}
	defer sup.Close()
	peer := startPeer(t, helperRingEcho, sup.File())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	w, r := sup.Writer(), sup.Reader()
	rng := rand.New(rand.NewPCG(3, 4))
	var sent [][]byte
	var buf []byte
	received := 0
	const total = 5000
	for received < total {
		for len(sent) < total && len(sent)-received < 32 {
			rec := randomRecord(rng, w.MaxRecord())
			if err := w.Write(rec); errors.Is(err, ErrFull) {
				break
			} else if err != nil {
				t.Fatal(err)
			}
			sent = append(sent, rec)
		}
		if err := r.Wait(ctx); err != nil {
			t.Fatalf("after %d of %d echoes: %v", received, len(sent), err)
		}
		for {
			got, err := r.Read(buf)
			if errors.Is(err, ErrEmpty) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, sent[received]) {
				t.Fatalf("echo %d: %d bytes, want %d", received, len(got), len(sent[received]))
			}
			received++
			buf = got
		}
	}
	if err := peer.stop(); err != nil {
		t.Fatalf("worker: %v", err)
	}
	t.Logf("%d records echoed; the supervisor woke the worker %d times and parked %d times", total, w.Wakes(), r.Parks())
}

// A worker that dies in the middle of a record leaves what it had
// published, and nothing of the record it was writing.
func TestCrashedProducerHalfRecordNeverSeen(t *testing.T) {
	sup, err := New(MinCapacity)
	if err != nil {
		t.Fatal(err)
	}
	defer sup.Close()
	peer := startPeer(t, helperRingCrash, sup.File())
	if err := peer.stop(); err == nil {
		t.Fatal("the worker exited cleanly; want it killed")
	}
	r := sup.Reader()
	for _, want := range []string{"one", "two"} {
		got, err := r.Read(nil)
		if err != nil || string(got) != want {
			t.Fatalf("Read = %q, %v; want %q", got, err, want)
		}
	}
	if got, err := r.Read(nil); !errors.Is(err, ErrEmpty) {
		t.Fatalf("after the published records: %q, %v; want ErrEmpty", got, err)
	}
}
