package flux

import (
	"sync"

	"github.com/theus-run/theus/internal/golabel"
	"github.com/theus-run/theus/signal"
)

// HubSignals is Host.Signals for a host whose signals go through a
// signal.Hub (the supervisor's, the WebAssembly runtime's): it subscribes
// to every signal the hub publishes from now on, in version order, and
// converts them. The goroutine that converts is the subscription's: stop
// ends both.
func HubSignals(hub *signal.Hub) (items <-chan Signal, stop func()) {
	sub := hub.Subscribe("", signal.DefaultBuffer)
	out := make(chan Signal)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		golabel.Set(golabel.Flux, -1) // not the labels of the caller, a run's or a client's
		defer close(out)
		var items []signal.Item
		for {
			select {
			case <-sub.Ready():
			case <-done:
				return
			}
			var ok bool
			items, ok = sub.Take(items)
			for _, it := range items {
				select {
				case out <- Signal{Version: it.Version, Path: it.Path, Value: it.Value, Lagged: it.Lagged}:
				case <-done:
					return
				}
			}
			if !ok {
				return
			}
		}
	})
	var once sync.Once
	return out, func() {
		once.Do(func() {
			close(done)
			sub.Close()
			wg.Wait()
		})
	}
}
