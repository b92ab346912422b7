package gopool

import (
	"bytes"
	"context"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/pprof/profile"
	"go.uber.org/goleak"

	"github.com/theus-run/theus/internal/golabel"
	"github.com/theus-run/theus/internal/golabel/golabeltest"
)

// TestReuse: a task handed to a pool with an idle goroutine runs on that
// goroutine (few goroutines are started for many tasks), every task runs
// once, and Close leaves no goroutine behind.
//
// A goroutine counts itself idle before it parks, and a task handed to
// it in between waits in its channel: a pool that never reuses starts
// one goroutine per task.
func TestReuse(t *testing.T) {
	defer goleak.VerifyNone(t)
	p := New(4)
	defer p.Wait()
	defer p.Close()
	var ran atomic.Int64
	done := make(chan struct{}, 1)
	const tasks = 200
	for range tasks {
		p.Go(func() { ran.Add(1); done <- struct{}{} })
		<-done
		waitIdle(t, p, 1, 4)
		time.Sleep(50 * time.Microsecond) // let the idle goroutine park
	}
	if ran.Load() != tasks {
		t.Fatalf("%d tasks ran, want %d", ran.Load(), tasks)
	}
	if n := p.Started(); n > tasks/4 {
		t.Fatalf("%d goroutines started for %d sequential tasks: not reused", n, tasks)
	}
	p.Close()
	p.Wait()
	if p.Idle() != 0 {
		t.Fatalf("%d idle after Close", p.Idle())
	}
}

// TestMaxIdle: past MaxIdle, goroutines that finish a task exit instead
// of waiting; Go never blocks, even with every goroutine busy.
func TestMaxIdle(t *testing.T) {
	defer goleak.VerifyNone(t)
	p := New(3)
	defer p.Wait()
	defer p.Close()
	release := make(chan struct{})
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		p.Go(func() { defer wg.Done(); <-release }) // all busy: 10 goroutines
	}
	close(release)
	wg.Wait()
	waitIdle(t, p, 3, 3)
	time.Sleep(10 * time.Millisecond)
	if n := p.Idle(); n != 3 {
		t.Fatalf("%d idle, want 3 (MaxIdle)", n)
	}
	p.Close()
	p.Wait()
}

// TestGoAfterClose: a task handed over after Close still runs (its
// caller waits for it), and a task running at Close ends its goroutine
// when it returns, so Wait returns.
func TestGoAfterClose(t *testing.T) {
	defer goleak.VerifyNone(t)
	p := New(2)
	release := make(chan struct{})
	done := make(chan struct{}, 2)
	p.Go(func() { <-release; done <- struct{}{} })
	p.Close()
	p.Go(func() { done <- struct{}{} })
	<-done
	close(release)
	<-done
	p.Wait()
	if n := p.Idle(); n != 0 {
		t.Fatalf("%d idle after Close and Wait", n)
	}
}

// waitIdle waits until between lo and hi goroutines are idle.
func waitIdle(t *testing.T, p *Pool, lo, hi int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for n := p.Idle(); n < lo || n > hi; n = p.Idle() {
		if time.Now().After(deadline) {
			t.Fatalf("%d idle, want %d to %d", p.Idle(), lo, hi)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// BenchmarkGo: a task with a deep stack, on a new goroutine each time
// (go) and through a Pool.
func BenchmarkGo(b *testing.B) {
	done := make(chan struct{})
	task := func() { deep(64); done <- struct{}{} }
	b.Run("impl=go", func(b *testing.B) {
		for range b.N {
			go task()
			<-done
		}
	})
	b.Run("impl=pool", func(b *testing.B) {
		p := New(8)
		defer p.Wait()
		defer p.Close()
		for range b.N {
			p.Go(task)
			<-done
		}
	})
}

//go:noinline
func deep(n int) int {
	var pad [256]byte
	pad[n%256] = byte(n)
	if n == 0 {
		return int(pad[0])
	}
	return deep(n-1) + int(pad[n%256])
}

// A task's profile labels do not outlive it: an idle goroutine has none.
func TestIdleHasNoLabels(t *testing.T) {
	defer goleak.VerifyNone(t)
	p := New(2)
	defer p.Wait()
	defer p.Close()
	done := make(chan struct{})
	p.Go(func() {
		pprof.SetGoroutineLabels(pprof.WithLabels(context.Background(), pprof.Labels("who", "a task")))
		close(done)
	})
	<-done
	waitIdle(t, p, 1, 1)
	for deadline := time.Now().Add(5 * time.Second); ; {
		labeled, idle := idleLabels(t)
		if idle > 0 && labeled == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d goroutines idle in the pool carry labels", labeled, idle)
		}
		time.Sleep(time.Millisecond) // the goroutine is listed idle just before it parks
	}
}

// idleLabels counts the goroutines in Pool.run, and those with labels.
func idleLabels(t *testing.T) (labeled, idle int64) {
	var buf bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&buf, 0); err != nil {
		t.Fatal(err)
	}
	prof, err := profile.Parse(&buf)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range prof.Sample {
		for _, l := range s.Location {
			if len(l.Line) > 0 && strings.HasSuffix(l.Line[0].Function.Name, "gopool.(*Pool).run") {
				idle += s.Value[0]
				if len(s.Label) > 0 {
					labeled += s.Value[0]
				}
				break
			}
		}
	}
	return labeled, idle
}

// GoAs runs a task under the labels given, on a new goroutine and on a
// kept one, and a kept goroutine's next task under its own labels only.
func TestGoAsLabelsTheTask(t *testing.T) {
	defer goleak.VerifyNone(t)
	p := New(1)
	defer p.Wait()
	defer p.Close()
	for i, want := range []string{"conn 1", "conn 2", ""} {
		var l golabel.Labels
		if want != "" {
			l = golabel.Of(golabel.Conn, i+1)
		}
		stop, started := make(chan struct{}), make(chan struct{})
		p.GoAs(l, func() { parkedTask(stop, started) })
		<-started
		got := golabeltest.Loops(t, "gopool.parkedTask")["gopool.parkedTask"]
		close(stop)
		waitIdle(t, p, 1, 1)
		if !slices.Equal(got, []string{want}) {
			t.Errorf("task %d: loops %q, want [%q]", i, got, want)
		}
	}
	if n := p.Started(); n != 1 {
		t.Errorf("three tasks one after another started %d goroutines, want 1 kept", n)
	}
}

func parkedTask(stop, started chan struct{}) {
	close(started)
	<-stop
}
