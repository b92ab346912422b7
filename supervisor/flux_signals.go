package supervisor

import (
	"sync"

	"github.com/theus-run/theus/flux"
	"github.com/theus-run/theus/signal"
)

// Signals subscribes a run or machine to every committed signal, once
// durable, in version order. The goroutine that converts the hub's items
// is the subscription's: stop ends both.
func (h fluxHost) Signals() (<-chan flux.Signal, func()) {
	sub := h.s.signals.Subscribe("", signal.DefaultBuffer)
	out := make(chan flux.Signal)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
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
				case out <- flux.Signal{Version: it.Version, Path: it.Path, Value: it.Value, Lagged: it.Lagged}:
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
