package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/theus-run/theus/audit"
	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/durable"
	"github.com/theus-run/theus/pool"
	"github.com/theus-run/theus/protocol"
)

// writeRecipe writes text to a recipe file (atomically) and returns its
// path.
func writeRecipe(t testing.TB, path, text string) string {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	return path
}

func startAudited(t *testing.T, recipe string, tune func(*Config)) (*harness, string) {
	t.Helper()
	file := writeRecipe(t, filepath.Join(t.TempDir(), "audit.yaml"), recipe)
	h := start(t, 2, func(c *Config) {
		c.Audit = file
		if tune != nil {
			tune(c)
		}
	})
	return h, file
}

func (h *harness) exec(t testing.TB, process, args string) *protocol.Reply {
	t.Helper()
	return h.s.Execute(context.Background(), &protocol.Execute{Process: process, Args: json.RawMessage(args)})
}

func (h *harness) wantCode(t testing.TB, rep *protocol.Reply, code string) {
	t.Helper()
	switch {
	case code == "" && rep.Err != nil:
		t.Fatalf("want a commit, got %v", rep.Err)
	case code != "" && (rep.Err == nil || rep.Err.Code != code):
		t.Fatalf("want %s, got %v", code, rep.Err)
	}
}

// value returns the JSON at path, or "" when there is none.
func (h *harness) value(t testing.TB, path string) string {
	t.Helper()
	rep := h.s.Get(&protocol.Get{Path: path})
	if rep.Err != nil || len(rep.Entries) == 0 {
		return ""
	}
	return string(rep.Entries[0].Value)
}

func (h *harness) auditCall(t testing.TB, method string, body any, out any) *protocol.Error {
	t.Helper()
	b, _ := json.Marshal(body)
	rep := h.s.Call(context.Background(), &protocol.Call{Method: method, Body: b})
	if rep.Err == nil && out != nil {
		if err := json.Unmarshal(rep.Body, out); err != nil {
			t.Fatal(err)
		}
	}
	return rep.Err
}

func (h *harness) counts(t testing.TB) map[string]int {
	t.Helper()
	var st AuditStatus
	if err := h.auditCall(t, protocol.MethodAuditStatus, struct{}{}, &st); err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, r := range st.Rules {
		out[r.Process+" "+r.Rule] = r.Count
	}
	return out
}

const levelsRecipe = `process_recipes:
  counters.add:
    inputs:
      - {field: by, max: 1000, level: S, message: "by is unsafe"}
      - {field: by, neq: 7, level: I}
    outputs:
      - {field: "domain.counters.{key}", max: 10, level: A, message: "counter too high"}
`

func TestAuditAbortAndStop(t *testing.T) {
	h, _ := startAudited(t, levelsRecipe, nil)
	h.wantCode(t, h.exec(t, "counters.add", `{"key":"a","by":1}`), "")
	// A: the output the commit would write is over max: nothing commits.
	rep := h.exec(t, "counters.add", `{"key":"a","by":20}`)
	h.wantCode(t, rep, protocol.CodeAuditAbort)
	if !strings.Contains(rep.Err.Message, "counter too high") || rep.Err.Path != "domain.counters.a" {
		t.Errorf("abort: %+v", rep.Err)
	}
	if v := h.value(t, "domain.counters.a"); v != "1" {
		t.Fatalf("a refused call committed: %s", v)
	}
	// I: logged only.
	h.wantCode(t, h.exec(t, "counters.add", `{"key":"a","by":7}`), "")
	// S: the first violation refuses, and every later call until resume.
	h.wantCode(t, h.exec(t, "counters.add", `{"key":"b","by":5000}`), protocol.CodeAuditStop)
	rep = h.exec(t, "counters.add", `{"key":"b","by":1}`)
	h.wantCode(t, rep, protocol.CodeAuditStop)
	if !strings.Contains(rep.Err.Message, "theusctl audit resume counters.add") {
		t.Errorf("stopped: %v", rep.Err)
	}
	if v := h.value(t, "domain.counters.b"); v != "" {
		t.Fatalf("a stopped process committed: %s", v)
	}
	h.wantCode(t, h.exec(t, "counter.add", `{}`), "") // other processes run on
	var st AuditStatus
	h.auditCall(t, protocol.MethodAuditStatus, struct{}{}, &st)
	if len(st.Stopped) != 1 || st.Stopped[0].Process != "counters.add" || st.Stopped[0].Message != "by is unsafe" || !st.Enabled || st.Recipe != 1 {
		t.Fatalf("status %+v", st)
	}
	var res struct{ Resumed bool }
	if err := h.auditCall(t, protocol.MethodAuditResume, map[string]string{"process": "counters.add"}, &res); err != nil || !res.Resumed {
		t.Fatalf("resume: %v %+v", err, res)
	}
	h.wantCode(t, h.exec(t, "counters.add", `{"key":"b","by":1}`), "")
	if err := h.auditCall(t, protocol.MethodAuditResume, map[string]string{"process": "nope"}, nil); err == nil || err.Code != protocol.CodeUnknownProcess {
		t.Errorf("resume of an unknown process: %v", err)
	}
	var log struct {
		Entries []audit.Entry
		Total   uint64
	}
	h.auditCall(t, protocol.MethodAuditLog, map[string]int{"n": 10}, &log)
	var actions []string
	for _, e := range log.Entries {
		actions = append(actions, e.Level.String()+":"+e.Action)
	}
	if got := strings.Join(actions, " "); got != "A:refused I:logged S:stopped" || log.Total != 3 {
		t.Errorf("log: %s (total %d)", got, log.Total)
	}
}

func TestAuditBlockThresholdAndReset(t *testing.T) {
	h, _ := startAudited(t, `audit: {threshold_max: 2, threshold_min: 1, reset_on_success: true}
process_recipes:
  order.place:
    inputs: [{field: qty, max: 5, level: B}]
`, nil)
	order := func(id string, qty int) *protocol.Reply {
		return h.exec(t, "order.place", fmt.Sprintf(`{"id":%q,"item":"tea","qty":%d}`, id, qty))
	}
	h.wantCode(t, order("o1", 9), "") // counted 1 (warned)
	h.wantCode(t, order("o2", 9), "") // counted 2: the threshold
	h.wantCode(t, order("o3", 9), protocol.CodeAuditBlock)
	h.wantCode(t, order("o3", 9), protocol.CodeAuditBlock)
	if v := h.value(t, "domain.orders.o3"); v != "" {
		t.Fatalf("a blocked call committed %s", v)
	}
	if c := h.counts(t)["order.place inputs[0]:qty"]; c != 4 {
		t.Fatalf("count %d, want 4", c)
	}
	// A clean commit resets the counter: two more pass.
	h.wantCode(t, order("o4", 1), "")
	if c := h.counts(t)["order.place inputs[0]:qty"]; c != 0 {
		t.Fatalf("count %d after a clean commit", c)
	}
	h.wantCode(t, order("o5", 9), "")
	h.wantCode(t, order("o6", 9), "")
	h.wantCode(t, order("o7", 9), protocol.CodeAuditBlock)
	// A call that fails for another reason is not a clean commit.
	h.wantCode(t, order("o1", 1), "order_exists")
	h.wantCode(t, order("o8", 9), protocol.CodeAuditBlock)
}

// The output rules judge the delta of the attempt that commits, once: an
// attempt that conflicts and runs again is not counted twice, and one
// whose delta broke a rule does not count when the final one does not.
func TestAuditOutputsOnceOnFinalDelta(t *testing.T) {
	h, _ := startAudited(t, `audit: {reset_on_success: false}
process_recipes:
  counters.add:
    outputs: [{field: "domain.counters.{key}", max: 1, level: C}]
`, nil)
	ac, aerr := h.s.auditBegin(&protocol.Execute{Process: "counters.add", Args: json.RawMessage(`{"key":"k"}`)})
	if aerr != nil || ac == nil {
		t.Fatal(aerr)
	}
	set := func(v string) cas.Delta {
		var d cas.Delta
		d.Set(contract.Path("domain.counters.k"), []byte(v))
		return d
	}
	for _, v := range []string{"5", "6", "7"} { // attempts that conflicted
		if err := ac.check(set(v)); err != nil {
			t.Fatal(err)
		}
	}
	if err := ac.check(set("1")); err != nil { // the final attempt: clean
		t.Fatal(err)
	}
	ac.end(true)
	if c := h.counts(t)["counters.add outputs[0]:domain.counters.{key}"]; c != 0 {
		t.Fatalf("counted %d for attempts that did not commit", c)
	}
	// And end to end: many calls on one key conflict; each counts once.
	const calls = 40
	var wg sync.WaitGroup
	attempts := make([]uint32, calls)
	for i := range calls {
		wg.Go(func() {
			rep := h.exec(t, "counters.add", `{"key":"hot"}`)
			if rep.Err != nil {
				t.Error(rep.Err)
			}
			attempts[i] = rep.Attempts
		})
	}
	wg.Wait()
	total := 0
	for _, a := range attempts {
		total += int(a)
	}
	// The first call writes 1, which passes; every other one breaks the rule.
	if c := h.counts(t)["counters.add outputs[0]:domain.counters.{key}"]; c != calls-1 {
		t.Fatalf("counted %d for %d calls (%d attempts)", c, calls-1, total)
	}
	t.Logf("%d calls, %d attempts", calls, total)
}

// Reloads under load: every call is judged by one recipe, and every
// refusal names the recipe that made it.
func TestAuditReloadUnderLoad(t *testing.T) {
	// Under X, by > 5 is refused on input. Under Y, by < 5 is refused on
	// input and every commit on output. So by=10 is always refused (by X's
	// input rule or Y's output rule), and by=1 is refused only by Y's input
	// rule: a by=1 call refused by Y's output rule passed its inputs under
	// X and its outputs under Y.
	const x = `process_recipes:
  counters.add:
    inputs: [{field: by, max: 5, level: A, message: X-in}]
`
	const y = `process_recipes:
  counters.add:
    inputs: [{field: by, min: 5, level: A, message: Y-in}]
    outputs: [{field: "domain.counters.{key}", max: -1, level: A, message: Y-out}]
`
	h, file := startAudited(t, x, nil)
	var mu sync.Mutex
	gens := map[uint64]string{1: "X"}
	stop := make(chan struct{})
	reloaded := make(chan int)
	go func() {
		n := 0
		defer func() { reloaded <- n }()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			name, text := "X", x
			if i%2 == 0 {
				name, text = "Y", y
			}
			if i%7 == 3 { // a bad recipe now and then: refused, the old one stays
				writeRecipe(t, file, "process_recipes: {counters.add: {inputs: [{field: by, mx: 1}]}}\n")
				if _, err := h.s.ReloadAudit(); err == nil || !strings.Contains(err.Error(), "audit.yaml:1: unknown key \"mx\"") {
					t.Errorf("a bad recipe: %v", err)
				}
			}
			writeRecipe(t, file, text)
			g, err := h.s.ReloadAudit()
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			gens[g] = name
			mu.Unlock()
			n++
			time.Sleep(time.Millisecond)
		}
	}()
	type refusal struct {
		by      int
		message string
	}
	var refusals []refusal
	var commits10 int
	var wg sync.WaitGroup
	var rmu sync.Mutex
	for w := range 4 {
		wg.Go(func() {
			for i := range 60 {
				by := 1
				if (w+i)%2 == 0 {
					by = 10
				}
				rep := h.exec(t, "counters.add", fmt.Sprintf(`{"key":"k%d","by":%d}`, w, by))
				rmu.Lock()
				switch {
				case rep.Err == nil && by == 10:
					commits10++
				case rep.Err != nil && rep.Err.Code == protocol.CodeAuditAbort:
					refusals = append(refusals, refusal{by, rep.Err.Message})
				case rep.Err != nil:
					t.Error(rep.Err)
				}
				rmu.Unlock()
			}
		})
	}
	wg.Wait()
	close(stop)
	n := <-reloaded
	if commits10 > 0 {
		t.Errorf("%d calls with by=10 committed: each recipe refuses them", commits10)
	}
	re := regexp.MustCompile(`rule (\S+): (X-in|Y-in|Y-out) \(.*; level A, recipe (\d+)$`)
	kinds := map[string]int{}
	for _, r := range refusals {
		m := re.FindStringSubmatch(r.message)
		if m == nil {
			t.Fatalf("refusal %q names no rule and recipe", r.message)
		}
		g, _ := strconv.ParseUint(m[3], 10, 64)
		mu.Lock()
		name := gens[g]
		mu.Unlock()
		if name == "" || !strings.HasPrefix(m[2], name) {
			t.Errorf("refusal by %s names recipe %d, which was %q", m[2], g, name)
		}
		switch {
		case r.by == 1 && m[2] != "Y-in", r.by == 10 && m[2] == "Y-in":
			t.Errorf("a call with by=%d refused by %s: judged by two recipes", r.by, m[2])
		}
		kinds[m[2]]++
	}
	t.Logf("%d reloads, refusals %v", n, kinds)
	if n == 0 || len(kinds) < 2 {
		t.Errorf("the load did not overlap the reloads: %d reloads, refusals %v", n, kinds)
	}
}

func TestAuditBadRecipeAtStart(t *testing.T) {
	file := writeRecipe(t, filepath.Join(t.TempDir(), "a.yaml"), "process_recipes:\n  counters.add: {inputs: [{field: by, max: 1}]}\n  no.such: {inputs: [{field: x, max: 1}]}\n")
	_, err := Start(Config{Plugins: testPlugins(t), Workers: 1, Audit: file, Log: zerolog.Nop(), Pool: pool.Config{Env: quickExit()}})
	var le *audit.LoadError
	if !errors.As(err, &le) || !strings.Contains(err.Error(), "a.yaml:3: process_recipes: no process \"no.such\"") {
		t.Fatalf("start with a bad recipe: %v", err)
	}
}

// An output rule on a path the process's contract cannot write could
// never fire (a typo, a template it does not have): the recipe is refused
// at that rule's line. Templates on either side may match anything.
func TestAuditOutputFieldOutsideTheContract(t *testing.T) {
	recipe := "process_recipes:\n  counters.add:\n    outputs:\n      - {field: \"domain.counters.{key}\", min: 0}\n      - {field: \"domain.counters.fixed\", min: 0}\n      - {field: \"domian.counters.{key}\", min: 0}\n"
	file := writeRecipe(t, filepath.Join(t.TempDir(), "a.yaml"), recipe)
	_, err := Start(Config{Plugins: testPlugins(t), Workers: 1, Audit: file, Log: zerolog.Nop(), Pool: pool.Config{Env: quickExit()}})
	var le *audit.LoadError
	if !errors.As(err, &le) || len(le.Problems) != 1 || !strings.Contains(err.Error(), `a.yaml:6: outputs[2]:domian.counters.{key}: output field "domian.counters.{key}" is not under any output counters.add declares`) {
		t.Fatalf("start with an output field outside the contract: %v", err)
	}
}

// Counters and stops are committed with durability sync: they survive a
// restart.
func TestAuditStateSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	file := writeRecipe(t, filepath.Join(dir, "a.yaml"), `process_recipes:
  counters.add: {inputs: [{field: by, max: 100, level: S}, {field: by, max: 5, level: C}]}
  order.place: {inputs: [{field: qty, max: 5, level: B}]}
`)
	cfg := Config{Plugins: testPlugins(t), Workers: 1, Audit: file, StateDir: filepath.Join(dir, "state"), Durability: durable.Sync,
		Log: zerolog.Nop(), Pool: pool.Config{Env: quickExit()}}
	s, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{s: s}
	h.wantCode(t, h.exec(t, "counters.add", `{"key":"a","by":7}`), "")
	h.wantCode(t, h.exec(t, "order.place", `{"id":"o1","item":"x","qty":9}`), "")
	h.wantCode(t, h.exec(t, "counters.add", `{"key":"a","by":700}`), protocol.CodeAuditStop)
	before := h.counts(t)
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	s, err = Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	h = &harness{s: s}
	if after := h.counts(t); fmt.Sprint(after) != fmt.Sprint(before) || after["counters.add inputs[1]:by"] != 2 || after["order.place inputs[0]:qty"] != 1 {
		t.Errorf("counts %v before the restart, %v after", before, after)
	}
	h.wantCode(t, h.exec(t, "counters.add", `{"key":"a","by":1}`), protocol.CodeAuditStop)
	// A process reads nothing of it: the state is PRIVATE.
	if !contract.Path(auditStatePath).InZone(contract.ZonePrivate) {
		t.Error("the audit state is not PRIVATE")
	}
}
