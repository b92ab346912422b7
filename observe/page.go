package observe

import (
	"bytes"
	"crypto/rand"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"html/template"
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/theus-run/theus/protocol"
)

// pageSource is the status page: one HTML file with its CSS and script
// inline; the script reads the event stream.
//
//go:embed page.html
var pageSource string

func parsePage() (*template.Template, error) { return template.New("page").Parse(pageSource) }

// History is how far back the page's charts go.
const History = 5 * time.Minute

// sample is one point of the page's charts: rates over the interval
// that ended at T (Unix ms).
type sample struct {
	T         int64   `json:"t"`
	Executes  float64 `json:"executes"` // per second
	Commits   float64 `json:"commits"`
	Conflicts float64 `json:"conflicts"`
	Failures  float64 `json:"failures"`
	P99       float64 `json:"p99"` // seconds, every process together; -1 when nothing ran
	Queue     int64   `json:"queue"`
	Restarts  uint64  `json:"restarts"` // restarts of every worker since the start
}

// rate is one process's figures over the last interval.
type rate struct {
	Name     string  `json:"name"`
	Executes float64 `json:"executes"` // per second
	Errors   float64 `json:"errors"`   // per second
	P50      float64 `json:"p50"`      // seconds; -1 when nothing ran
	P99      float64 `json:"p99"`
}

// event is what the page receives each interval: the counters, the
// verdict, per-process rates, the newest commits, and the charts'
// samples (all of them in the first event, the newest after).
type event struct {
	Stats   protocol.Stats      `json:"stats"`
	Health  Health              `json:"health"`
	Rates   []rate              `json:"rates"`
	Log     []protocol.LogEntry `json:"log"`
	Samples []sample            `json:"samples"`
	Full    bool                `json:"full"` // Samples is the whole history
}

// pageHub samples the Source every interval, keeps the last History of
// samples and hands each event to the page's streams.
type pageHub struct {
	src   Source
	every time.Duration

	mu      sync.Mutex
	samples []sample // oldest first, at most History/every
	last    *event   // the newest, without the history
	subs    map[chan []byte]struct{}
}

func newPageHub(src Source, every time.Duration) *pageHub {
	return &pageHub{src: src, every: every, subs: map[chan []byte]struct{}{}}
}

// run samples until stop is closed.
func (h *pageHub) run(stop <-chan struct{}) {
	t := time.NewTicker(h.every)
	defer t.Stop()
	prev := h.src.Stats()
	for {
		select {
		case <-t.C:
		case <-stop:
			return
		}
		cur := h.src.Stats()
		h.tick(prev, cur)
		prev = cur
	}
}

// tick makes the event of the interval from prev to cur and sends it.
func (h *pageHub) tick(prev, cur protocol.Stats) {
	secs := cur.Time.Sub(prev.Time).Seconds()
	if secs <= 0 {
		return
	}
	ev := &event{Stats: cur, Rates: []rate{}}
	s := sample{T: cur.Time.UnixMilli(), Commits: float64(cur.Commits-prev.Commits) / secs, Conflicts: float64(cur.Conflicts-prev.Conflicts) / secs,
		Failures: float64(cur.Failures-prev.Failures) / secs, Queue: cur.DispatchQueue, P99: math.NaN()}
	var all protocol.Histogram
	for i, p := range cur.Processes {
		var before protocol.ProcessStats
		if i < len(prev.Processes) && prev.Processes[i].Name == p.Name {
			before = prev.Processes[i]
		}
		lat := p.Latency.Sub(before.Latency)
		ok := p.Outcomes["ok"] + p.Outcomes["duplicate"] - before.Outcomes["ok"] - before.Outcomes["duplicate"]
		n := p.Total() - before.Total()
		r := rate{Name: p.Name, Executes: float64(n) / secs, Errors: float64(n-ok) / secs, P50: lat.Quantile(0.5), P99: lat.Quantile(0.99)}
		ev.Rates = append(ev.Rates, r)
		s.Executes += r.Executes
		all = addHistogram(all, lat)
	}
	s.P99 = all.Quantile(0.99)
	for _, w := range cur.Workers {
		s.Restarts += w.Restarts
	}
	if rep, err := h.src.Log(protocol.LogRequest{N: 12}); err == nil {
		ev.Log = rep.Entries
	}
	h.mu.Lock()
	h.samples = append(h.samples, s)
	if max := int(History / h.every); len(h.samples) > max {
		h.samples = append(h.samples[:0], h.samples[len(h.samples)-max:]...)
	}
	ev.Health = judge(cur, h.samples, ev.Log)
	ev.Samples = []sample{s}
	h.last = ev
	b := marshalEvent(ev)
	for ch := range h.subs {
		offer(ch, b)
	}
	h.mu.Unlock()
}

// addHistogram adds b's counts to a (of the same bounds, or empty).
func addHistogram(a, b protocol.Histogram) protocol.Histogram {
	if len(a.Counts) == 0 {
		a = protocol.Histogram{Bounds: b.Bounds, Counts: make([]uint64, len(b.Counts))}
	}
	for i := range b.Counts {
		a.Counts[i] += b.Counts[i]
	}
	a.Count += b.Count
	a.Sum += b.Sum
	return a
}

// marshalEvent encodes an event, NaN (no observation) as -1.
func marshalEvent(ev *event) []byte {
	clean := func(f float64) float64 {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return -1
		}
		return f
	}
	for i := range ev.Rates {
		ev.Rates[i].P50, ev.Rates[i].P99 = clean(ev.Rates[i].P50), clean(ev.Rates[i].P99)
	}
	for i := range ev.Samples {
		ev.Samples[i].P99 = clean(ev.Samples[i].P99)
	}
	b, err := json.Marshal(ev)
	if err != nil { // every field is plain data: cannot happen
		return []byte(`{"error":` + strconvQuote(err.Error()) + `}`)
	}
	return b
}

func strconvQuote(s string) string { b, _ := json.Marshal(s); return string(b) }

// offer puts b in ch, replacing what a slow reader has not taken: a page
// wants the newest numbers, not every one.
func offer(ch chan []byte, b []byte) {
	for {
		select {
		case ch <- b:
			return
		default:
		}
		select {
		case <-ch:
		default:
		}
	}
}

// subscribe returns a stream of events, the first with the whole history
// (when there is one yet), until cancel.
func (h *pageHub) subscribe() (ch chan []byte, cancel func()) {
	ch = make(chan []byte, 1)
	h.mu.Lock()
	if h.last != nil {
		first := *h.last
		first.Samples, first.Full = append([]sample(nil), h.samples...), true
		ch <- marshalEvent(&first)
	}
	h.subs[ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		delete(h.subs, ch)
		h.mu.Unlock()
	}
}

// servePage writes the page; its script gets a nonce (the page's only
// script) and the token the request carried, for its event stream.
func (s *Server) servePage(w http.ResponseWriter, r *http.Request) {
	nonce := make([]byte, 16)
	rand.Read(nonce)
	n := base64.RawURLEncoding.EncodeToString(nonce) // nothing html/template escapes
	w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'nonce-"+n+"'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	var buf bytes.Buffer
	if err := s.tmpl.Execute(&buf, struct {
		Nonce, Token string
		Every        int64
	}{n, r.URL.Query().Get("token"), s.cfg.Every.Milliseconds()}); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Write(buf.Bytes())
}

// serveEvents is the page's server-sent event stream: an event each
// interval until the client goes or the server closes.
func (s *Server) serveEvents(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	ch, cancel := s.page.subscribe()
	defer cancel()
	w.WriteHeader(http.StatusOK)
	fl.Flush()
	for {
		select {
		case b := <-ch:
			if _, err := w.Write(append(append([]byte("data: "), b...), '\n', '\n')); err != nil {
				return
			}
			fl.Flush()
		case <-r.Context().Done():
			return
		case <-s.stop:
			return
		}
	}
}
