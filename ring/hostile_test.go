package ring

import (
	"context"
	"encoding/binary"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// workerBells returns copies of the doorbell descriptors a worker holds
// (the one it sleeps on, the one it rings), as a hostile worker has them:
// sharing whatever a dup shares.
func workerBells(t *testing.T, wrk *Pair) (own, peer int) {
	t.Helper()
	rc, err := wrk.r.w.bell.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var derr error
	if err := rc.Control(func(fd uintptr) { own, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 3) }); err != nil || derr != nil {
		t.Fatal(err, derr)
	}
	if peer, err = unix.FcntlInt(uintptr(wrk.w.m.bell), unix.F_DUPFD_CLOEXEC, 3); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(own); unix.Close(peer) })
	return own, peer
}

// hostileBells does to a worker's doorbell descriptors what a hostile
// worker can: fills or saturates each of them (an eventfd at its largest
// count, a pipe full), then makes them blocking (F_SETFL works on the
// whole open file, whoever else shares it). Errors are ignored: a
// descriptor may not allow an attack.
func hostileBells(fds ...int) {
	for _, fd := range fds {
		unix.SetNonblock(fd, true)
		max := binary.NativeEndian.AppendUint64(nil, 1<<64-2)
		unix.Write(fd, max)
		for i := 0; i < 1<<14; i++ { // a pipe: up to 128 KiB
			if _, err := unix.Write(fd, max); err != nil {
				break
			}
		}
		unix.FcntlInt(uintptr(fd), unix.F_SETFL, 0)
	}
}

// drain undoes hostileBells as far as the test needs: empties fds.
func drain(fds ...int) {
	for _, fd := range fds {
		unix.SetNonblock(fd, true)
		var b [64 << 10]byte
		for {
			if _, err := unix.Read(fd, b[:]); err != nil {
				break
			}
		}
	}
}

// thief reads fd in blocking reads on a thread of its own, taking what
// anyone writes to it, until stop is called (which then writes to fd
// until the thief has left).
func thief(fd int) (stop func()) {
	var quit atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		var b [64]byte
		for !quit.Load() {
			if _, err := unix.Read(fd, b[:]); err != nil && !errors.Is(err, unix.EINTR) && !errors.Is(err, unix.EAGAIN) {
				return // not readable by the worker: nothing to steal
			}
		}
	})
	return func() {
		quit.Store(true)
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		for {
			select {
			case <-done:
				return
			case <-time.After(time.Millisecond):
				unix.Write(fd, binary.NativeEndian.AppendUint64(nil, 1))
			}
		}
	}
}

// A worker can neither make the supervisor's doorbell write block nor
// steal the wake with which the supervisor ends its own reader's wait,
// whatever it does with the doorbell descriptors it was given: fill or
// saturate them, make them blocking, read them. With eventfds (one open
// file shared by both sides), the supervisor's Commit blocked in write(2)
// for ever, holding its writer (and the pool's Shutdown behind it), and a
// canceled Wait slept on, its interrupt read by the worker.
func TestHostileWorkerBells(t *testing.T) {
	t.Run("commit", func(t *testing.T) {
		sup, wrk := newBellPair(t, MinCapacity)
		own, peer := workerBells(t, wrk)
		hostileBells(own, peer)
		wrk.r.m.consPark.Store(parked) // "wake me": the supervisor's Commit rings
		done := make(chan error, 1)
		go func() { done <- sup.Writer().Write([]byte("dispatch")) }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(30 * time.Second):
			drain(own, peer) // free the writer, and the Close of the cleanup
			<-done
			t.Fatal("the supervisor's Commit blocked in its doorbell write")
		}
	})
	t.Run("close", func(t *testing.T) {
		sup, wrk := newBellPair(t, MinCapacity)
		own, peer := workerBells(t, wrk)
		hostileBells(own, peer)
		done := make(chan error, 1)
		go func() { done <- sup.Close() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(30 * time.Second):
			drain(own, peer)
			<-done
			t.Fatal("the supervisor's Close blocked in the write that ends its own reader's wait")
		}
	})
	t.Run("interrupt", func(t *testing.T) {
		sup, wrk := newBellPair(t, MinCapacity)
		own, peer := workerBells(t, wrk)
		word := sup.Reader().m.consPark
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- sup.Reader().Wait(ctx) }()
		for deadline := time.Now().Add(time.Minute); word.Load() != parked; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the reader never parked")
			}
		}
		unix.FcntlInt(uintptr(own), unix.F_SETFL, 0)
		unix.FcntlInt(uintptr(peer), unix.F_SETFL, 0)
		stop := thief(peer)
		time.Sleep(20 * time.Millisecond) // the thief is in its read
		cancel()
		select {
		case err := <-done:
			stop()
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Wait = %v, want context.Canceled", err)
			}
		case <-time.After(30 * time.Second):
			stop()
			for freed := false; !freed; { // free the reader (it may block in read(2)) so that the test ends
				unix.Write(peer, binary.NativeEndian.AppendUint64(nil, 1))
				select {
				case <-done:
					freed = true
				case <-time.After(time.Millisecond):
				}
			}
			t.Fatal("a canceled Wait slept on: the worker took its interrupt")
		}
	})
}
