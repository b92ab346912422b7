package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/internal/golabel"
)

// cpuSample is one sample of a made-up CPU profile: ms of CPU, the
// goroutine's labels (none when role is ""), and whether the commit is
// on its stack.
type cpuSample struct {
	ms         int64
	role, loop string
	commit     bool
}

// fakeCPU writes a CPU profile in pprof's format holding samples.
func fakeCPU(t *testing.T, samples []cpuSample) []byte {
	t.Helper()
	commit := &profile.Function{ID: 1, Name: commitFunc}
	other := &profile.Function{ID: 2, Name: "main.work"}
	inCommit := &profile.Location{ID: 1, Line: []profile.Line{{Function: commit}}}
	outside := &profile.Location{ID: 2, Line: []profile.Line{{Function: other}}}
	p := &profile.Profile{
		SampleType: []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}},
		PeriodType: &profile.ValueType{Type: "cpu", Unit: "nanoseconds"},
		Period:     10_000_000,
		Function:   []*profile.Function{commit, other},
		Location:   []*profile.Location{inCommit, outside},
	}
	for _, s := range samples {
		smp := &profile.Sample{Value: []int64{s.ms / 10, s.ms * 1e6}, Location: []*profile.Location{outside}}
		if s.commit {
			smp.Location = []*profile.Location{inCommit, outside}
		}
		if s.role != "" {
			smp.Label = map[string][]string{golabel.Role: {s.role}, golabel.Loop: {s.loop}}
		}
		p.Sample = append(p.Sample, smp)
	}
	var b bytes.Buffer
	if err := p.Write(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestSummarizeCPU(t *testing.T) {
	b := fakeCPU(t, []cpuSample{
		{ms: 300, role: golabel.Conn, loop: "conn 1", commit: true},
		{ms: 500, role: golabel.WorkerRing, loop: "worker-ring 0"},
		{ms: 200},
		{ms: 100, role: golabel.Conn, loop: "conn 2"},
		{ms: 100, role: golabel.Conn, loop: "conn 1"},
		{ms: 40, commit: true},
	})
	s, err := summarizeCPU(bytes.NewReader(b), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	want := &cpuSummary{
		Seconds: 2,
		Cores:   0.62,
		Roles:   map[string]float64{golabel.Conn: 0.25, golabel.WorkerRing: 0.25, roleOther: 0.12},
		Loops:   []loopCores{{"worker-ring 0", 0.25}, {"conn 1", 0.2}, {"conn 2", 0.05}},
		Commit:  0.17,
	}
	got, _ := json.Marshal(s)
	exp, _ := json.Marshal(want)
	if !bytes.Equal(got, exp) {
		t.Errorf("summary\n %s\nwant\n %s", got, exp)
	}
	if l := s.line(); !strings.Contains(l, "cpu 0.62 cores: conn 0.25 worker-ring 0.25 other 0.12; busiest loop worker-ring 0 0.25; commit 0.17") {
		t.Errorf("line %q", l)
	}
}

// Only the busiest loops are listed, ties by name.
func TestSummarizeCPUListsTheBusiestLoops(t *testing.T) {
	var samples []cpuSample
	for _, l := range []string{"conn 7", "conn 3", "conn 5", "conn 1", "conn 2", "conn 4", "conn 6"} {
		ms := int64(10)
		if l == "conn 6" {
			ms = 50
		}
		samples = append(samples, cpuSample{ms: ms, role: golabel.Conn, loop: l})
	}
	s, err := summarizeCPU(bytes.NewReader(fakeCPU(t, samples)), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range s.Loops {
		names = append(names, l.Loop)
	}
	if got := strings.Join(names, ","); got != "conn 6,conn 1,conn 2,conn 3,conn 4" {
		t.Errorf("loops %s, want the five busiest, conn 6 first, then ties by name", got)
	}
}

func TestSummarizeCPURefuses(t *testing.T) {
	heap := &profile.Profile{SampleType: []*profile.ValueType{{Type: "alloc_space", Unit: "bytes"}}}
	var hb bytes.Buffer
	if err := heap.Write(&hb); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		in   []byte
		wall time.Duration
	}{
		{"not a profile", []byte("not a profile at all"), time.Second},
		{"a heap profile", hb.Bytes(), time.Second},
		{"no time", fakeCPU(t, []cpuSample{{ms: 10}}), 0},
	} {
		if s, err := summarizeCPU(bytes.NewReader(tc.in), tc.wall); err == nil {
			t.Errorf("%s: summary %+v, want an error", tc.name, s)
		}
	}
}

// A run with --cpu-profile writes the profile and says where the CPU went:
// the supervisor's loops, which the labels name, and the bench's own.
func TestCPUProfile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "new", "cpu.pprof") // its directory is made
	var out, errs bytes.Buffer
	args := []string{"--workers", "2", "--clients", "2", "--depth", "8", "--durability", "none", "--out", dir, "--name", "r",
		"--workload", "counter-spread", "--keys", "16", "--duration", "2s", "--cpu-profile", file}
	if code := run(args, &out, &errs); code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out.String(), errs.String())
	}
	b, err := os.ReadFile(filepath.Join(dir, "r.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r result
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	c := r.CPU
	if c == nil || c.File != file || c.Seconds <= 0 || c.Cores <= 0 || len(c.Loops) == 0 {
		t.Fatalf("cpu_profile %+v", c)
	}
	if c.Workers == nil || *c.Workers <= 0 {
		t.Errorf("the workers' cores: %v", c.Workers)
	}
	// The connections' readers take the most of the supervisor's CPU
	// (a third of a core and more): a profile without them lost the
	// labels. The smaller roles may get no sample in a short run.
	if c.Roles[golabel.Conn] <= 0 {
		t.Errorf("no CPU in role %s: %+v", golabel.Conn, c.Roles)
	}
	known := []string{golabel.Conn, golabel.WorkerRing, golabel.WorkerSocket, roleCaller, roleClient, roleOther}
	for role := range c.Roles {
		if !slices.Contains(known, role) {
			t.Errorf("CPU in role %q, which this run has no goroutine of: %+v", role, c.Roles)
		}
	}
	if !strings.Contains(out.String(), "busiest loop") || !strings.Contains(out.String(), "; workers ") {
		t.Errorf("the output does not summarize the profile:\n%s", out.String())
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := profile.Parse(f); err != nil {
		t.Fatalf("the profile written: %v", err)
	}
}

// A profile that cannot be written fails the run.
func TestCPUProfileUnwritable(t *testing.T) {
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errs bytes.Buffer
	args := []string{"--workers", "1", "--clients", "1", "--durability", "none", "--out", t.TempDir(),
		"--duration", "1s", "--cpu-profile", filepath.Join(notDir, "cpu.pprof")}
	if code := run(args, &out, &errs); code == 0 || !strings.Contains(errs.String(), "--cpu-profile") {
		t.Fatalf("exit %d, stderr %q", code, errs.String())
	}
}

// A run that fails before it starts leaves no empty profile behind.
func TestCPUProfileAbandoned(t *testing.T) {
	file := filepath.Join(t.TempDir(), "cpu.pprof")
	var out, errs bytes.Buffer
	args := []string{"--target", "redis", "--redis", "127.0.0.1:1", "--workload", "counter", "--out", t.TempDir(),
		"--duration", "1s", "--cpu-profile", file}
	if code := run(args, &out, &errs); code == 0 {
		t.Fatalf("a run against no Redis: exit 0")
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Errorf("%s after a failed start: %v", file, err)
	}
}

// commitFunc names the store's commit as profiles do.
func TestCommitFuncNamesTheCommit(t *testing.T) {
	if got := runtime.FuncForPC(reflect.ValueOf((*cas.Store).Commit).Pointer()).Name(); got != commitFunc {
		t.Errorf("cas.Store.Commit is %q in profiles, commitFunc says %q", got, commitFunc)
	}
}

func TestStatCPU(t *testing.T) {
	// utime 250 and stime 50 ticks: 3 s.
	tail := " S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0 100 0 0"
	for _, tc := range []struct {
		stat string
		want time.Duration
		ok   bool
	}{
		{"42 (theus-bench)" + tail, 3 * time.Second, true},
		{"42 (a) b (c) d)" + tail, 3 * time.Second, true}, // a command with spaces and parentheses
		{"42 (x) S 1 2 3", 0, false},                      // too short
		{"42 theus-bench" + tail, 0, false},               // no command
		{"42 (x) S 1 2 3 4 5 6 7 8 9 10 -1 50", 0, false}, // not a count
	} {
		got, ok := statCPU(tc.stat)
		if got != tc.want || ok != tc.ok {
			t.Errorf("statCPU(%q) = %v, %v; want %v, %v", tc.stat, got, ok, tc.want, tc.ok)
		}
	}
	if own := procCPU([]int{os.Getpid(), -1}); len(own) != 1 {
		t.Errorf("procCPU of this process and of none: %v", own)
	}
}

func TestWorkersCores(t *testing.T) {
	before := map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: time.Second}
	after := map[int]time.Duration{
		1: 3 * time.Second,        // 2 s more
		2: time.Second,            // less than before: another process with its PID, left out
		4: 500 * time.Millisecond, // started during the run: counts whole
	} // 3 ended: left out
	if got := workersCores(before, after, 5*time.Second); got != 0.5 {
		t.Errorf("workersCores = %v, want 0.5 (2.5 s over 5 s)", got)
	}
}
