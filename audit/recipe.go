package audit

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/theus-run/theus/contract"
)

// Level says what a violation of a rule does.
type Level uint8

// The levels, the original's five.
const (
	Info  Level = iota // logged only
	Stop               // refuses the call and every later one of the process until resumed
	Abort              // refuses the call (audit_abort): a workflow run it belongs to fails
	Block              // counted; refuses the call (audit_block) once the count passes the threshold
	Count              // counted only
)

var levelNames = [...]string{"I", "S", "A", "B", "C"}

func (l Level) String() string {
	if int(l) < len(levelNames) {
		return levelNames[l]
	}
	return fmt.Sprintf("Level(%d)", l)
}

// MarshalText writes the level's letter.
func (l Level) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// UnmarshalText reads a level as ParseLevel does.
func (l *Level) UnmarshalText(b []byte) error {
	lv, ok := ParseLevel(string(b))
	if !ok {
		return fmt.Errorf("audit: unknown level %q", b)
	}
	*l = lv
	return nil
}

// ParseLevel reads a level by its letter or the original's name (Info,
// Stop, Abort, Block, Count), in any case.
func ParseLevel(s string) (Level, bool) {
	switch strings.ToLower(s) {
	case "i", "info":
		return Info, true
	case "s", "stop":
		return Stop, true
	case "a", "abort":
		return Abort, true
	case "b", "block":
		return Block, true
	case "c", "count":
		return Count, true
	}
	return 0, false
}

// Side says what a rule checks.
type Side uint8

// The sides of a call.
const (
	Input  Side = iota // a field of the call's args
	Output             // a context path the call's commit writes
)

func (s Side) String() string {
	if s == Output {
		return "outputs"
	}
	return "inputs"
}

// Defaults are the recipe's audit: section: what a rule that does not
// say otherwise uses. The zero recipe's are the original's: level B,
// threshold_max 3, threshold_min 0 (no warning), reset_on_success true.
type Defaults struct {
	Level          Level
	ThresholdMax   int
	ThresholdMin   int
	ResetOnSuccess bool
}

// Rule is one compiled rule of a process's recipe.
type Rule struct {
	Process string
	Side    Side
	Index   int    // its place in the process's inputs or outputs
	ID      string // "inputs[0]:amount": the key of its counter
	Field   string // an args path (inputs) or a context path template (outputs)
	Level   Level
	Max     int // the count a B rule may reach; the next violation is refused
	Min     int // the count from which a violation of a B rule logs a warning (0: none)
	Message string
	Line    int // where it starts in the recipe

	args  []string      // Input: Field's segments
	spec  contract.Spec // Output: Field as a one-path contract, bound per call
	conds []cond
}

// cond is one condition of a rule: nil when v satisfies it, else why not.
type cond struct {
	kind string
	test func(v any) string
}

// Rules are a process's rules.
type Rules struct {
	Process string
	Line    int
	Inputs  []*Rule
	Outputs []*Rule
	Reset   bool // the recipe's reset_on_success
	// Gen is the generation of the recipe they belong to.
	Gen uint64

	groups [][]*Rule // Outputs by field (outGroups), set when compiled
}

// Recipe is a compiled recipe. It never changes: a reload makes a new one.
type Recipe struct {
	File     string
	Defaults Defaults
	gen      uint64
	procs    map[string]*Rules
	order    []string // process names in file order
}

// Gen is the recipe's generation, set by WithGen (1 for the first one a
// supervisor loads, then one more for each reload).
func (r *Recipe) Gen() uint64 { return r.gen }

// WithGen returns a copy of r of generation g.
func (r *Recipe) WithGen(g uint64) *Recipe {
	c := *r
	c.gen = g
	c.procs = make(map[string]*Rules, len(r.procs))
	for name, rs := range r.procs {
		cp := *rs
		cp.Gen = g
		c.procs[name] = &cp
	}
	return &c
}

// For returns the rules of process, or nil when the recipe has none.
func (r *Recipe) For(process string) *Rules {
	if r == nil {
		return nil
	}
	return r.procs[process]
}

// Processes returns the processes the recipe names, in file order.
func (r *Recipe) Processes() []*Rules {
	out := make([]*Rules, 0, len(r.order))
	for _, name := range r.order {
		out = append(out, r.procs[name])
	}
	return out
}

// Rules returns every rule of the recipe, process by process in file
// order, inputs first.
func (r *Recipe) Rules() []*Rule {
	var out []*Rule
	for _, rs := range r.Processes() {
		out = append(out, rs.Inputs...)
		out = append(out, rs.Outputs...)
	}
	return out
}

// compileRegex compiles a rule's regex (RE2 syntax, unanchored).
func compileRegex(s string) (*regexp.Regexp, error) {
	return regexp.Compile(s)
}
