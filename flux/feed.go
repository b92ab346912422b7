package flux

import "sync"

// feed broadcasts a run's events to its watchers. A watcher that does not
// keep up misses events (counted, and told in the next one it gets); the
// run never waits for a watcher.
type feed struct {
	mu     sync.Mutex
	subs   map[*watcher]struct{}
	closed bool
}

type watcher struct {
	c      chan map[string]any
	missed int
}

// feedBuffer is how many events a watcher holds.
const feedBuffer = 256

func newFeed() *feed { return &feed{subs: map[*watcher]struct{}{}} }

// subscribe adds a watcher; ok is false once the feed is closed (the run
// ended).
func (f *feed) subscribe() (w *watcher, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, false
	}
	w = &watcher{c: make(chan map[string]any, feedBuffer)}
	f.subs[w] = struct{}{}
	return w, true
}

func (f *feed) unsubscribe(w *watcher) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.subs[w]; ok {
		delete(f.subs, w)
		close(w.c)
	}
}

func (f *feed) publish(ev map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for w := range f.subs {
		if w.missed > 0 {
			if len(w.c) == cap(w.c) {
				w.missed++
				continue
			}
			w.c <- map[string]any{"event": "lagged", "missed": w.missed}
			w.missed = 0
		}
		select {
		case w.c <- ev:
		default:
			w.missed++
		}
	}
}

// close ends every watcher's channel.
func (f *feed) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	for w := range f.subs {
		delete(f.subs, w)
		close(w.c)
	}
}
