package main

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/pprof/profile"

	"github.com/theus-run/theus/internal/golabel"
)

// The roles of theus-bench's own goroutines in its CPU profile, beside
// the supervisor's (golabel).
const (
	roleCaller = "bench-caller" // a caller: makes requests and records them
	roleClient = "bench-client" // a client connection's reader (client package)
	roleOther  = "other"        // no label: the runtime (GC), the supervisor's other goroutines
)

// commitFunc is the function whose CPU is the commit's: the store's
// commit, lock held for most of it.
const commitFunc = "github.com/theus-run/theus/cas.(*Store).Commit"

// cpuRun records this process's CPU profile over the measured run
// (--cpu-profile). With the supervisor theus-bench starts, that is the
// supervisor's CPU too; attached to one (--socket), only the bench's.
type cpuRun struct {
	path    string
	f       *os.File
	started bool
	start   time.Time
	// workers lists the own supervisor's worker PIDs (nil: attached or
	// another target); before is their CPU at the start.
	workers func() []int
	before  map[int]time.Duration
}

// createCPU creates the profile's file (and its directory), before the
// run's target starts, so that a path that cannot be written fails first.
func createCPU(path string) (*cpuRun, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("--cpu-profile: %w", err)
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpu-profile: %w", err)
	}
	return &cpuRun{path: path, f: f}, nil
}

// begin starts the profile; workers, when not nil, lists the worker
// processes whose CPU the summary adds.
func (c *cpuRun) begin(workers func() []int) error {
	if workers != nil {
		c.workers, c.before = workers, procCPU(workers())
	}
	if err := pprof.StartCPUProfile(c.f); err != nil {
		return fmt.Errorf("--cpu-profile: %w", err)
	}
	c.started, c.start = true, time.Now()
	return nil
}

// abandon closes and removes the file of a profile that never ran.
func (c *cpuRun) abandon() {
	if !c.started {
		c.f.Close()
		os.Remove(c.path)
	}
}

// stop ends the profile, writes it, and summarizes it.
func (c *cpuRun) stop() (*cpuSummary, error) {
	pprof.StopCPUProfile()
	wall := time.Since(c.start)
	var workers map[int]time.Duration
	if c.workers != nil {
		workers = procCPU(c.workers())
	}
	if err := c.f.Close(); err != nil {
		return nil, fmt.Errorf("--cpu-profile: %w", err)
	}
	f, err := os.Open(c.path)
	if err != nil {
		return nil, fmt.Errorf("--cpu-profile: %w", err)
	}
	defer f.Close()
	s, err := summarizeCPU(f, wall)
	if err != nil {
		return nil, fmt.Errorf("--cpu-profile %s: %w", c.path, err)
	}
	s.File = c.path
	if workers != nil {
		wc := workersCores(c.before, workers, wall)
		s.Workers = &wc
	}
	return s, nil
}

// cpuSummary is where a run's CPU went, in cores (CPU seconds per second
// of the run), by the goroutines' labels (golabel).
type cpuSummary struct {
	File    string  `json:"file"`
	Seconds float64 `json:"seconds"` // the run's wall time, profiled
	Cores   float64 `json:"cores"`   // the whole process
	// Roles: the cores of each role: the supervisor's loops (golabel's
	// roles), the bench's callers and client readers, and "other".
	Roles map[string]float64 `json:"roles_cores"`
	// Loops: the busiest loops, most first (at most maxLoops). A
	// worker-*, journal* or flux-run loop is one goroutine: near one
	// core, it is saturated; so is a bench-caller or bench-client
	// loop. A conn loop (a client connection's work) may be several
	// goroutines at once.
	Loops []loopCores `json:"busiest_loops"`
	// Commit: the cores in the store's commit (cas.Store.Commit), which
	// one goroutine at a time runs with the commit lock held: how close
	// the committer is to a core of its own.
	Commit float64 `json:"commit_cores"`
	// Workers: the cores of the supervisor's worker processes over the
	// run (from /proc), when theus-bench started the supervisor; their
	// CPU is not in the profile, which is this process's.
	Workers *float64 `json:"workers_cores,omitempty"`
}

type loopCores struct {
	Loop  string  `json:"loop"`
	Cores float64 `json:"cores"`
}

// maxLoops is how many loops a summary lists.
const maxLoops = 5

// summarizeCPU reads a CPU profile (pprof's format) of wall time.
func summarizeCPU(r io.Reader, wall time.Duration) (*cpuSummary, error) {
	if wall <= 0 {
		return nil, errors.New("no time profiled")
	}
	p, err := profile.Parse(r)
	if err != nil {
		return nil, err
	}
	cpu := slices.IndexFunc(p.SampleType, func(t *profile.ValueType) bool { return t.Type == "cpu" && t.Unit == "nanoseconds" })
	if cpu < 0 {
		return nil, errors.New("not a CPU profile: no cpu/nanoseconds sample type")
	}
	per := 1 / wall.Seconds() / 1e9 // nanoseconds of CPU to cores
	s := &cpuSummary{Seconds: round3(wall.Seconds()), Roles: map[string]float64{}}
	loops := map[string]float64{}
	for _, smp := range p.Sample {
		if cpu >= len(smp.Value) {
			return nil, errors.New("a sample without its cpu value")
		}
		c := float64(smp.Value[cpu]) * per
		s.Cores += c
		role := roleOther
		if r := smp.Label[golabel.Role]; len(r) > 0 {
			role = r[0]
		}
		s.Roles[role] += c
		if l := smp.Label[golabel.Loop]; len(l) > 0 {
			loops[l[0]] += c
		}
		if inFunc(smp, commitFunc) {
			s.Commit += c
		}
	}
	for l, c := range loops {
		s.Loops = append(s.Loops, loopCores{Loop: l, Cores: c})
	}
	slices.SortFunc(s.Loops, func(a, b loopCores) int {
		return cmp.Or(cmp.Compare(b.Cores, a.Cores), strings.Compare(a.Loop, b.Loop))
	})
	s.Loops = s.Loops[:min(len(s.Loops), maxLoops)]
	for i := range s.Loops {
		s.Loops[i].Cores = round3(s.Loops[i].Cores)
	}
	for r, c := range s.Roles {
		s.Roles[r] = round3(c)
	}
	s.Cores, s.Commit = round3(s.Cores), round3(s.Commit)
	return s, nil
}

// inFunc reports whether fn is on the sample's stack.
func inFunc(s *profile.Sample, fn string) bool {
	for _, l := range s.Location {
		for _, ln := range l.Line {
			if ln.Function != nil && ln.Function.Name == fn {
				return true
			}
		}
	}
	return false
}

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }

// line is the summary in one line of text.
func (s *cpuSummary) line() string {
	roles := make([]string, 0, len(s.Roles))
	for r := range s.Roles {
		roles = append(roles, r)
	}
	slices.SortFunc(roles, func(a, b string) int {
		return cmp.Or(cmp.Compare(s.Roles[b], s.Roles[a]), strings.Compare(a, b))
	})
	var b strings.Builder
	fmt.Fprintf(&b, "cpu %.2f cores:", s.Cores)
	for _, r := range roles {
		fmt.Fprintf(&b, " %s %.2f", r, s.Roles[r])
	}
	b.WriteString("; busiest loop")
	if len(s.Loops) == 0 {
		b.WriteString(" none")
	} else {
		fmt.Fprintf(&b, " %s %.2f", s.Loops[0].Loop, s.Loops[0].Cores)
	}
	fmt.Fprintf(&b, "; commit %.2f", s.Commit)
	if s.Workers != nil {
		fmt.Fprintf(&b, "; workers %.2f", *s.Workers)
	}
	fmt.Fprintf(&b, "  -> %s", s.File)
	return b.String()
}

// clockTick is the unit of /proc/PID/stat's CPU times (USER_HZ, 100 on
// every Linux architecture Go supports).
const clockTick = 10 * time.Millisecond

// procCPU returns the CPU time (user and system) each of pids has used,
// from /proc/PID/stat; a process gone is left out.
func procCPU(pids []int) map[int]time.Duration {
	out := make(map[int]time.Duration, len(pids))
	for _, pid := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			continue
		}
		if d, ok := statCPU(string(b)); ok {
			out[pid] = d
		}
	}
	return out
}

// statCPU reads utime and stime, the 14th and 15th fields of a
// /proc/PID/stat line. The command (the 2nd, in parentheses) may hold
// spaces and parentheses: the fields after it start at its last ')'.
func statCPU(stat string) (time.Duration, bool) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(stat[i+1:]) // f[0] is the 3rd field
	if len(f) < 13 {
		return 0, false
	}
	u, err1 := strconv.ParseUint(f[11], 10, 63)
	st, err2 := strconv.ParseUint(f[12], 10, 63)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(u+st) * clockTick, true
}

// workersCores is the cores the processes used between two procCPU
// readings over wall: a process that started between them counts whole.
func workersCores(before, after map[int]time.Duration, wall time.Duration) float64 {
	var d time.Duration
	for pid, a := range after {
		d += a - min(before[pid], a)
	}
	return round3(d.Seconds() / wall.Seconds())
}
