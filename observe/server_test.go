package observe

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/theus-run/theus/protocol"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeSource is a supervisor whose counters grow at each Stats call.
type fakeSource struct {
	mu sync.Mutex
	n  uint64
}

func (f *fakeSource) Stats() protocol.Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	lat := NewDurationHistogram(25*time.Microsecond, 20)
	for i := range f.n {
		lat.Observe(int64(50*time.Microsecond) * int64(i+1))
	}
	attempts := NewHistogram([]int64{1, 2, 4}, 1)
	attempts.Observe(1)
	return protocol.Stats{
		Time: time.Now(), Started: time.Now().Add(-time.Minute), Version: f.n * 10, Mode: "smart",
		Commits: f.n * 10, Conflicts: f.n, Retries: f.n, VIP: 1, Failures: 2,
		Processes: []protocol.ProcessStats{
			{Name: "counter.add", Outcomes: map[string]uint64{"ok": f.n * 10, "timeout": 1}, Latency: lat.State()},
			{Name: "noop", Outcomes: map[string]uint64{}, Latency: NewDurationHistogram(25*time.Microsecond, 20).State()},
		},
		AttemptsPerCommit: attempts.State(), ConflictsPerCommit: attempts.State(),
		Tickets: protocol.TicketStats{Granted: 3, Released: 2, Held: 1, GateWaits: 4},
		Store:   protocol.StoreStats{Paths: 5, Snapshots: 2, Epochs: 1, History: 3},
		Workers: []protocol.WorkerStats{
			{Plugin: "theus-worker", Slot: 0, PID: 100, State: "ready", InFlight: 2, Processed: f.n, RSS: 8 << 20},
			{Plugin: "theus-worker", Slot: 1, PID: 101, State: "backoff", Restarts: 1},
		},
		DispatchQueue:   3,
		Heavy:           protocol.HeavyStats{Size: 8 << 20, SlabSize: 4 << 20, Slabs: 2, Held: 8 << 20, InUse: 1 << 20, PerSlab: []protocol.SlabStats{{ID: 1, InUse: 1 << 20}, {ID: 2}}},
		Journal:         protocol.JournalStats{Mode: "sync", Durable: f.n * 10, Batches: f.n, Commits: f.n * 10, Bytes: 1000, LastFlush: time.Now(), BatchSize: attempts.State(), Fsync: lat.State()},
		Clients:         1,
		FluxRuns:        map[string]int{"running": 1, "complete": 4},
		Signals:         protocol.SignalStats{Published: 7, Missed: 1, Subscribers: 2, Lagging: 1},
		AuditViolations: map[string]uint64{"B": 2, "I": 0},
		CommitLog:       f.n * 10, CommitLogSize: 1024,
	}
}

func (f *fakeSource) Log(req protocol.LogRequest) (protocol.LogReply, error) {
	if req.N < 0 {
		return protocol.LogReply{}, protocol.Errorf(protocol.CodeBadRequest, "n %d", req.N)
	}
	return protocol.LogReply{Entries: []protocol.LogEntry{{Version: 9, Process: "counter.add", Paths: []string{"domain.counter"}, Attempts: 2, Conflicts: 1}}, Total: 9, Size: 1024}, nil
}

func startServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	cfg.Log = zerolog.New(zerolog.NewTestWriter(t))
	s, err := Start(cfg, &fakeSource{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func get(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// /metrics passes the client library's linter and, where Debian's
// prometheus package is installed, promtool check metrics; every family
// is there with the labels it promises.
func TestMetricsFollowPrometheusConventions(t *testing.T) {
	s := startServer(t, Config{})
	code, body := get(t, s.URL()+"metrics", "")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", code, body)
	}
	problems, err := promlint.New(strings.NewReader(body)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	for _, want := range []string{
		`theus_executes_total{outcome="ok",process="counter.add"} `,
		`theus_executes_total{outcome="timeout",process="counter.add"} 1`,
		`theus_execute_duration_seconds_bucket{process="counter.add",le="+Inf"} `,
		`theus_commit_attempts_count 1`,
		`theus_workers{state="backoff"} 1`,
		`theus_worker_in_flight{plugin="theus-worker",slot="0"} 2`,
		`theus_dispatch_queue 3`,
		`theus_vip_tickets_granted_total 3`,
		`theus_heavy_free_bytes 7.340032e+06`,
		`theus_journal_fsync_duration_seconds_count `,
		`theus_flux_runs{status="complete"} 4`,
		`theus_signal_subscribers_lagging 1`,
		`theus_audit_violations_total{level="B"} 2`,
		`theus_info{durability="sync",mode="smart"} 1`,
		`go_goroutines `,
		`process_resident_memory_bytes `,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics has no %q", want)
		}
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Log("promtool not installed (Debian package prometheus): checked with promlint only")
		return
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// Times travel as seconds since the epoch; a flush that never happened
// is 0.
func TestMetricTimes(t *testing.T) {
	started, flushed := time.Unix(1700000000, 500000000), time.Unix(1700000100, 250000000)
	st := protocol.Stats{Started: started, Journal: protocol.JournalStats{LastFlush: flushed}}
	value := func(st protocol.Stats, name string) float64 {
		t.Helper()
		for _, m := range slices.Concat(engineMetrics(), poolMetrics()) {
			if strings.Contains(m.desc.String(), `"theus_`+name+`"`) {
				var got float64
				m.collect(&st, func(pm prometheus.Metric) {
					var d dto.Metric
					pm.Write(&d)
					got = d.GetGauge().GetValue()
				})
				return got
			}
		}
		t.Fatalf("no metric %s", name)
		return 0
	}
	if got := value(st, "start_time_seconds"); math.Abs(got-1700000000.5) > 1e-6 {
		t.Errorf("start time %v", got)
	}
	if got := value(st, "journal_last_flush_timestamp_seconds"); math.Abs(got-1700000100.25) > 1e-6 {
		t.Errorf("last flush %v", got)
	}
	if got := value(protocol.Stats{}, "journal_last_flush_timestamp_seconds"); got != 0 {
		t.Errorf("last flush before any: %v, want 0", got)
	}
}

// An address that cannot be listened on is an error.
func TestStartBadAddress(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:99999", "no-such-host.invalid:0"} {
		if s, err := Start(Config{Addr: addr}, &fakeSource{}); err == nil {
			s.Close()
			t.Errorf("Start(%q): no error", addr)
		}
	}
}

// Everything served is read only: another method is refused before any
// route runs.
func TestReadOnly(t *testing.T) {
	s := startServer(t, Config{})
	for _, path := range []string{"metrics", "", "api/log", "events"} {
		resp, err := http.Post(s.URL()+path, "text/plain", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
			t.Errorf("POST /%s: %d, Allow %q; want 405", path, resp.StatusCode, resp.Header.Get("Allow"))
		}
	}
}

// A non-loopback address needs AllowRemote and a token; with a token
// every request carries it (the page and its events may pass it as
// ?token=).
func TestRemoteNeedsToken(t *testing.T) {
	if _, err := Start(Config{Addr: "0.0.0.0:0"}, &fakeSource{}); !errors.Is(err, ErrRemote) {
		t.Errorf("0.0.0.0 without AllowRemote: %v, want ErrRemote", err)
	}
	if _, err := Start(Config{Addr: "127.0.0.1:0", AllowRemote: true}, &fakeSource{}); !errors.Is(err, ErrRemote) {
		t.Errorf("AllowRemote without a token: %v, want ErrRemote", err)
	}
	const token = "0123456789abcdef-token"
	s := startServer(t, Config{Addr: "0.0.0.0:0", AllowRemote: true, Token: token})
	url := strings.Replace(s.URL(), "0.0.0.0", "127.0.0.1", 1)
	url = strings.Replace(url, "[::]", "127.0.0.1", 1)
	for _, tt := range []struct {
		name, path, token string
		want              int
	}{
		{"no token", "metrics", "", http.StatusUnauthorized},
		{"wrong token", "metrics", "0123456789abcdef-tokem", http.StatusUnauthorized},
		{"token", "metrics", token, http.StatusOK},
		{"token in the query of /metrics", "metrics?token=" + token, "", http.StatusUnauthorized},
		{"token in the query of the page", "?token=" + token, "", http.StatusOK},
		{"api without", "api/log", "", http.StatusUnauthorized},
		{"api", "api/log", token, http.StatusOK},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if code, body := get(t, url+tt.path, tt.token); code != tt.want {
				t.Errorf("GET /%s: %d %s, want %d", tt.path, code, body, tt.want)
			}
		})
	}
}

// pprof is served only when asked for.
func TestPProfOnlyWhenAsked(t *testing.T) {
	off := startServer(t, Config{})
	if code, _ := get(t, off.URL()+"debug/pprof/", ""); code != http.StatusNotFound {
		t.Errorf("pprof without PProf: %d, want 404", code)
	}
	on := startServer(t, Config{PProf: true})
	if code, body := get(t, on.URL()+"debug/pprof/", ""); code != http.StatusOK || !strings.Contains(body, "goroutine") {
		t.Errorf("pprof with PProf: %d", code)
	}
}

// /api/log and /api/stats answer JSON; a bad n is a 400.
func TestAPI(t *testing.T) {
	s := startServer(t, Config{})
	code, body := get(t, s.URL()+"api/log?n=5&process=counter.add", "")
	var rep protocol.LogReply
	if code != http.StatusOK || json.Unmarshal([]byte(body), &rep) != nil || len(rep.Entries) != 1 || rep.Entries[0].Version != 9 {
		t.Errorf("/api/log: %d %s", code, body)
	}
	for _, bad := range []string{"x", "-1"} {
		if code, _ := get(t, s.URL()+"api/log?n="+bad, ""); code != http.StatusBadRequest {
			t.Errorf("/api/log?n=%s: %d, want 400", bad, code)
		}
	}
	code, body = get(t, s.URL()+"api/stats", "")
	var st protocol.Stats
	if code != http.StatusOK || json.Unmarshal([]byte(body), &st) != nil || st.Mode != "smart" || len(st.Workers) != 2 {
		t.Errorf("/api/stats: %d %s", code, body)
	}
	if code, _ := get(t, s.URL()+"nothing", ""); code != http.StatusNotFound {
		t.Errorf("an unknown path: %d", code)
	}
}

// The page is one self-contained document: its only script carries the
// nonce the Content-Security-Policy allows, and it loads nothing from
// elsewhere.
func TestPageIsSelfContained(t *testing.T) {
	s := startServer(t, Config{})
	resp, err := http.Get(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	csp := resp.Header.Get("Content-Security-Policy")
	_, nonce, ok := strings.Cut(csp, "'nonce-")
	nonce, _, _ = strings.Cut(nonce, "'")
	if !ok || !bytes.Contains(body, []byte(`<script nonce="`+nonce+`">`)) || bytes.Count(body, []byte("<script")) != 1 {
		t.Errorf("CSP %q: the page's script does not carry its nonce", csp)
	}
	for _, bad := range []string{"http://", "https://", "src=", "href="} {
		if bytes.Contains(bytes.ReplaceAll(body, []byte("http://www.w3.org/2000/svg"), nil), []byte(bad)) {
			t.Errorf("the page refers to something outside it: %q", bad)
		}
	}
}

// The event stream sends the whole history first, then one sample per
// interval, with the counters growing; Close ends the stream.
func TestEvents(t *testing.T) {
	s := startServer(t, Config{Every: 20 * time.Millisecond})
	resp, err := http.Get(s.URL() + "events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	r := bufio.NewReader(resp.Body)
	var evs []event
	for len(evs) < 3 {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			continue
		}
		var ev event
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			t.Fatalf("%v: %s", err, data)
		}
		evs = append(evs, ev)
	}
	if len(evs[1].Samples) != 1 || evs[1].Full || evs[2].Stats.Commits <= evs[1].Stats.Commits {
		t.Errorf("later events: %+v, %+v", evs[1].Samples, evs[2].Stats.Commits)
	}
	if evs[1].Health.State == "" || len(evs[1].Log) != 1 || len(evs[1].Rates) != 2 || evs[1].Rates[0].Executes <= 0 {
		t.Errorf("event: health %+v, log %+v, rates %+v", evs[1].Health, evs[1].Log, evs[1].Rates)
	}
	s.Close()
	if _, err := io.ReadAll(r); err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Logf("after Close: %v", err)
	}
	s.Close() // twice is fine
}
