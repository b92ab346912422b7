package audit

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"
)

// LogSize is how many violations a Tracker's log keeps: the newest.
const LogSize = 1024

// Entry is one violation as the log keeps it.
type Entry struct {
	Time    time.Time       `json:"time"`
	Process string          `json:"process"`
	Rule    string          `json:"rule"` // the rule's ID, "inputs[0]:amount"
	Path    string          `json:"path"` // the args field, or the context path it bound to
	Value   json.RawMessage `json:"value"`
	Level   Level           `json:"level"`
	Message string          `json:"message"` // the rule's message ("" when it has none)
	Reason  string          `json:"reason"`  // which condition failed
	Count   int             `json:"count,omitempty"`
	// Action is what the violation did: logged (I), counted (B, C),
	// warned (B at or past threshold_min), refused (A, B past
	// threshold_max) or stopped (S).
	Action string `json:"action"`
	Recipe uint64 `json:"recipe"` // the generation of the recipe that judged it
}

// Stopped says why a process is stopped.
type Stopped struct {
	Since   time.Time `json:"since"`
	Rule    string    `json:"rule"`
	Message string    `json:"message"`
	Recipe  uint64    `json:"recipe"`
}

// Refusal is a call the recipe refuses.
type Refusal struct {
	Level   Level // S, A or B
	Process string
	Rule    string
	Path    string
	Reason  string
	Message string
	Count   int // the B rule's counter, with this violation
	Max     int
	Recipe  uint64
	// Stopped is set when the process was stopped before the call: no
	// rule was checked.
	Stopped *Stopped
}

func (r *Refusal) Error() string {
	if r.Stopped != nil {
		return fmt.Sprintf("audit: process %s is stopped since %s by rule %s (%s): theusctl audit resume %s", r.Process, r.Stopped.Since.UTC().Format(time.RFC3339), r.Stopped.Rule, r.Stopped.Message, r.Process)
	}
	what := r.Reason
	if r.Message != "" {
		what = r.Message + " (" + r.Reason + ")"
	}
	s := fmt.Sprintf("audit: process %s: rule %s: %s; level %s, recipe %d", r.Process, r.Rule, what, r.Level, r.Recipe)
	switch r.Level {
	case Block:
		s += fmt.Sprintf(", count %d over threshold_max %d", r.Count, r.Max)
	case Stop:
		s += ": the process is stopped until theusctl audit resume " + r.Process
	}
	return s
}

// Judgement is what a Tracker made of a call's violations.
type Judgement struct {
	Refusal  *Refusal // nil when the call may go on
	Changed  bool     // counters or stops changed: persist Export
	Warnings []Entry  // B violations at or past their threshold_min
	// Hold is what a judgement without record let through: its B
	// violations, which count against their thresholds until the caller
	// records them (Record) or drops them (Release). Nil when none.
	Hold *Hold
}

// Hold is the B violations of a call that a Tracker let through and
// that are not recorded yet: the call may still commit. While held they
// count against their rules' threshold_max, so that calls judged at the
// same time cannot all pass a threshold that only some of them may.
type Hold struct {
	process string
	ids     map[string]int // rule ID -> violations held
}

// Tracker keeps the counters of the rules, the stopped processes and the
// log of the newest violations. It is safe for concurrent use.
type Tracker struct {
	mu      sync.Mutex
	now     func() time.Time
	counts  map[string]map[string]int // process -> rule ID -> violations counted
	held    map[string]map[string]int // process -> rule ID -> violations held (Hold)
	stopped map[string]Stopped
	log     []Entry // a ring of LogSize
	next    int     // where the next entry goes
	total   uint64  // entries ever logged
	// levels counts the entries ever logged, by level.
	levels [len(levelNames)]uint64
}

// NewTracker returns an empty Tracker; now is its clock (nil: time.Now).
func NewTracker(now func() time.Time) *Tracker {
	if now == nil {
		now = time.Now
	}
	return &Tracker{now: now, counts: map[string]map[string]int{}, held: map[string]map[string]int{}, stopped: map[string]Stopped{}}
}

// Stopped reports whether process is stopped, and why.
func (t *Tracker) Stopped(process string) (Stopped, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	st, ok := t.stopped[process]
	return st, ok
}

// StoppedRefusal is the refusal of a call of a stopped process, or nil.
func (t *Tracker) StoppedRefusal(process string) *Refusal {
	st, ok := t.Stopped(process)
	if !ok {
		return nil
	}
	return &Refusal{Level: Stop, Process: process, Rule: st.Rule, Message: st.Message, Recipe: st.Recipe, Stopped: &st}
}

// severity orders the refusing levels: S before A before B.
func severity(l Level) int {
	switch l {
	case Stop:
		return 3
	case Abort:
		return 2
	case Block:
		return 1
	}
	return 0
}

// Judge decides what the violations of one check of a call (its inputs,
// or the outputs of an attempt) mean: whether the call is refused (the
// most severe of S, A, and B past its threshold_max). A B violation's
// count is its rule's counter, plus the violations other calls hold
// (below), plus the earlier violations of the same rule in vs, plus one.
// When the call is refused, or record is true, the violations are
// recorded at once: each is logged, B and C ones counted, an S one stops
// the process. A caller that judges an attempt that may not commit
// passes record false: the B violations it lets through are held
// (Judgement.Hold) until the caller calls Record once the call has
// committed, or Release when it has not.
func (t *Tracker) Judge(rs *Rules, vs []Violation, record bool) Judgement {
	if len(vs) == 0 {
		return Judgement{}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var ref *Refusal
	var seen map[string]int // B violations of vs so far, by rule
	for _, v := range vs {
		r := v.Rule
		count := 0
		switch r.Level {
		case Block:
			if seen == nil {
				seen = map[string]int{}
			}
			seen[r.ID]++
			count = t.counts[rs.Process][r.ID] + t.held[rs.Process][r.ID] + seen[r.ID]
			if count <= r.Max {
				continue
			}
		case Stop, Abort:
		default:
			continue
		}
		if ref == nil || severity(r.Level) > severity(ref.Level) {
			ref = &Refusal{Level: r.Level, Process: rs.Process, Rule: r.ID, Path: v.Path, Reason: v.Reason, Message: r.Message, Count: count, Max: r.Max, Recipe: rs.Gen}
		}
	}
	if ref == nil && !record {
		if len(seen) == 0 {
			return Judgement{}
		}
		h := &Hold{process: rs.Process, ids: seen}
		m := t.held[rs.Process]
		if m == nil {
			m = map[string]int{}
			t.held[rs.Process] = m
		}
		for id, n := range seen {
			m[id] += n
		}
		return Judgement{Hold: h}
	}
	j := t.record(rs, vs)
	j.Refusal = ref
	return j
}

// Record records violations of a call that committed (see Judge), and
// drops h, what judging them held.
func (t *Tracker) Record(rs *Rules, vs []Violation, h *Hold) Judgement {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.release(h)
	if len(vs) == 0 {
		return Judgement{}
	}
	return t.record(rs, vs)
}

// Release drops what a judgement held, for a call that did not commit
// (or an attempt judged again). A nil h is nothing.
func (t *Tracker) Release(h *Hold) {
	if h == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.release(h)
}

func (t *Tracker) release(h *Hold) {
	if h == nil {
		return
	}
	m := t.held[h.process]
	for id, n := range h.ids {
		if m[id] -= n; m[id] <= 0 {
			delete(m, id)
		}
	}
	if len(m) == 0 {
		delete(t.held, h.process)
	}
	h.ids = nil // released once
}

func (t *Tracker) record(rs *Rules, vs []Violation) Judgement {
	var j Judgement
	now := t.now()
	for _, v := range vs {
		r := v.Rule
		e := Entry{Time: now, Process: rs.Process, Rule: r.ID, Path: v.Path, Value: v.Value, Level: r.Level, Message: r.Message, Reason: v.Reason, Recipe: rs.Gen}
		switch r.Level {
		case Info:
			e.Action = "logged"
		case Count, Block:
			m := t.counts[rs.Process]
			if m == nil {
				m = map[string]int{}
				t.counts[rs.Process] = m
			}
			m[r.ID]++
			e.Count, e.Action, j.Changed = m[r.ID], "counted", true
			if r.Level == Block {
				switch {
				case e.Count > r.Max:
					e.Action = "refused"
				case r.Min > 0 && e.Count >= r.Min:
					e.Action = "warned"
					j.Warnings = append(j.Warnings, e)
				}
			}
		case Abort:
			e.Action = "refused"
		case Stop:
			e.Action = "stopped"
			if _, ok := t.stopped[rs.Process]; !ok {
				t.stopped[rs.Process] = Stopped{Since: now, Rule: r.ID, Message: firstOf(r.Message, v.Reason), Recipe: rs.Gen}
				j.Changed = true
			}
		}
		t.push(e)
	}
	return j
}

func firstOf(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (t *Tracker) push(e Entry) {
	if len(t.log) < LogSize {
		t.log = append(t.log, e)
	} else {
		t.log[t.next] = e
	}
	t.next = (t.next + 1) % LogSize
	t.total++
	if int(e.Level) < len(t.levels) {
		t.levels[e.Level]++
	}
}

// Levels returns how many violations were ever logged, by level (its
// letter: I, S, A, B, C), each level present.
func (t *Tracker) Levels() map[string]uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]uint64, len(t.levels))
	for i, n := range t.levels {
		out[levelNames[i]] = n
	}
	return out
}

// Clean records that a call of rs's process committed without a
// violation: with reset_on_success, the process's counters go back to 0.
// It reports whether any was not 0.
func (t *Tracker) Clean(rs *Rules) bool {
	if rs == nil || !rs.Reset {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.counts[rs.Process]) == 0 {
		return false
	}
	delete(t.counts, rs.Process)
	return true
}

// Resume lifts a process's stop; it reports whether it was stopped.
func (t *Tracker) Resume(process string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.stopped[process]
	delete(t.stopped, process)
	return ok
}

// Log returns the newest n entries (all when n ≤ 0), oldest first, and
// how many were ever logged.
func (t *Tracker) Log(n int) ([]Entry, uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ordered := make([]Entry, 0, len(t.log))
	if len(t.log) == LogSize {
		ordered = append(ordered, t.log[t.next:]...)
		ordered = append(ordered, t.log[:t.next]...)
	} else {
		ordered = append(ordered, t.log...)
	}
	if n > 0 && n < len(ordered) {
		ordered = ordered[len(ordered)-n:]
	}
	return ordered, t.total
}

// RuleStatus is a rule and its counter.
type RuleStatus struct {
	Process      string `json:"process"`
	Rule         string `json:"rule"`
	Level        Level  `json:"level"`
	Count        int    `json:"count"`
	ThresholdMax int    `json:"threshold_max"`
	ThresholdMin int    `json:"threshold_min"`
	Line         int    `json:"line"`
}

// ProcessStop is a stopped process, for Status.
type ProcessStop struct {
	Process string `json:"process"`
	Stopped
}

// Status returns every rule of r with its counter, and the stopped
// processes, sorted by name.
func (t *Tracker) Status(r *Recipe) ([]RuleStatus, []ProcessStop) {
	t.mu.Lock()
	defer t.mu.Unlock()
	rules := []RuleStatus{}
	if r != nil {
		for _, rule := range r.Rules() {
			rules = append(rules, RuleStatus{Process: rule.Process, Rule: rule.ID, Level: rule.Level, Count: t.counts[rule.Process][rule.ID],
				ThresholdMax: rule.Max, ThresholdMin: rule.Min, Line: rule.Line})
		}
	}
	stops := []ProcessStop{}
	for _, p := range slices.Sorted(maps.Keys(t.stopped)) {
		stops = append(stops, ProcessStop{Process: p, Stopped: t.stopped[p]})
	}
	return rules, stops
}

// Prune drops the counters of rules r does not have (after a reload: a
// rule keeps its counter while its process, place and field stay).
func (t *Tracker) Prune(r *Recipe) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	keep := map[string]map[string]bool{}
	for _, rule := range r.Rules() {
		if keep[rule.Process] == nil {
			keep[rule.Process] = map[string]bool{}
		}
		keep[rule.Process][rule.ID] = true
	}
	changed := false
	for p, m := range t.counts {
		for id := range m {
			if !keep[p][id] {
				delete(m, id)
				changed = true
			}
		}
		if len(m) == 0 {
			delete(t.counts, p)
		}
	}
	return changed
}

// state is what Export writes and Import reads.
type state struct {
	Counts  map[string]map[string]int `json:"counts"`
	Stopped map[string]Stopped        `json:"stopped"`
}

// Export returns the counters and stops as JSON, for the caller to
// persist (the log is not: it lives in memory only).
func (t *Tracker) Export() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	b, _ := json.Marshal(state{Counts: t.counts, Stopped: t.stopped}) // maps of strings and ints: cannot fail
	return b
}

// Import replaces the counters and stops with what Export wrote.
func (t *Tracker) Import(b []byte) error {
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("audit: saved state: %w", err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.counts, t.stopped = map[string]map[string]int{}, map[string]Stopped{}
	for p, m := range st.Counts {
		if len(m) > 0 {
			t.counts[p] = maps.Clone(m)
		}
	}
	maps.Copy(t.stopped, st.Stopped)
	return nil
}
