package flux

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
)

// The engine keeps its records in the Context, under global.internal_flux
// (the PRIVATE zone: no process can read or write them). Each record is
// written in the same transaction as the step it describes, which is what
// makes a run exactly once across a crash.
const (
	root        = "global.internal_flux"
	runRoot     = root + ".run"     // run heads: one small JSON value per run
	historyRoot = root + ".hist"    // run histories: a LOG per run, one entry per step
	sourceRoot  = root + ".src"     // the source of a run of a file that is not loaded
	fsmRoot     = root + ".fsm"     // machine heads
	fsmHistRoot = root + ".fsmhist" // machine histories: a LOG per machine
)

// Run statuses.
const (
	StatusPending   = "pending"
	StatusRunning   = "running"
	StatusWaiting   = "waiting"
	StatusComplete  = "complete"
	StatusFailed    = "failed"
	StatusCancelled = "cancelled"
)

func terminal(status string) bool {
	return status == StatusComplete || status == StatusFailed || status == StatusCancelled
}

// MaxIDLen bounds a run or machine id.
const MaxIDLen = 64

// checkID validates the id a client gives a new run or machine: it
// becomes a path segment. "__" is reserved for entry runs.
func checkID(id string) error {
	if id == "" || len(id) > MaxIDLen {
		return failf(CodeBadRequest, "id %q: want 1 to %d characters", id, MaxIDLen)
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return failf(CodeBadRequest, "id %q: only [A-Za-z0-9_-] are allowed", id)
		}
	}
	if strings.Contains(id, entrySep) {
		return failf(CodeBadRequest, "id %q: %q is reserved (a machine's entry runs are MACHINE%sN)", id, entrySep, entrySep)
	}
	return nil
}

// entrySep joins a machine's id and its transition count into the id of
// that state's entry run. No id a client gives holds it, so an entry
// run's id is never one a client can take first.
const entrySep = "__"

func entryRunID(machine string, seq int) string { return machine + entrySep + strconv.Itoa(seq) }

// checkRef validates an id a client looks a run up by: one checkID
// accepts, or an entry run's.
func checkRef(id string) error {
	if i := strings.LastIndex(id, entrySep); i > 0 {
		seq := id[i+len(entrySep):]
		if _, err := strconv.ParseUint(seq, 10, 63); err == nil && checkID(id[:i]) == nil {
			return nil
		}
	}
	return checkID(id)
}

func path(rootPath, id string) contract.Path { return contract.Path(rootPath + "." + id) }

// head is a run's durable state, rewritten with each step.
type head struct {
	ID       string          `json:"id"`
	Flow     string          `json:"flow"`           // the workflow's name; machine#state for an entry block
	File     string          `json:"file,omitempty"` // a run of a file that is not loaded: its path
	Hash     string          `json:"hash"`           // the source's SHA-256
	Args     json.RawMessage `json:"args"`
	Status   string          `json:"status"`
	PC       int             `json:"pc"`
	Ops      int             `json:"ops"`
	MaxOps   int             `json:"max_ops"`
	Steps    int             `json:"steps"`              // history entries
	Deadline int64           `json:"deadline,omitempty"` // Unix ms; 0 for none
	Error    *Failure        `json:"error,omitempty"`    // why the run failed or was cancelled
	ErrorPC  int             `json:"error_pc,omitempty"`
	// ErrorStep names the step at ErrorPC, written with the run's end so
	// that its status does not load the program again.
	ErrorStep *StepRef `json:"error_step,omitempty"`
	Machine   string   `json:"machine,omitempty"` // the machine whose entry block this is
	Started   int64    `json:"started"`           // Unix ms
	Updated   int64    `json:"updated"`
}

// step is one history entry.
type step struct {
	PC       int      `json:"pc"`
	Process  string   `json:"process"`
	Attempts int      `json:"attempts"`
	Error    *Failure `json:"error,omitempty"` // a step that failed (and committed only this entry)
	Version  uint64   `json:"-"`               // the entry's version: the commit the step made
}

// records writes h (and a history entry, when st is not nil) into a
// delta of system writes.
func (h *head) records(st *step) cas.Delta {
	var d cas.Delta
	b, err := json.Marshal(h)
	if err != nil {
		panic(fmt.Sprintf("flux: a run head does not marshal: %v", err)) // plain data: cannot fail
	}
	d.Set(path(runRoot, h.ID), b)
	if st != nil {
		sb, err := json.Marshal(st)
		if err != nil {
			panic(fmt.Sprintf("flux: a history entry does not marshal: %v", err))
		}
		d.Append(path(historyRoot, h.ID), sb)
	}
	return d
}

// readHead reads run id's head from snap.
func readHead(snap *cas.Snapshot, id string) (*head, uint64, bool, error) {
	e, ok := snap.Get(path(runRoot, id))
	if !ok {
		return nil, 0, false, nil
	}
	var h head
	if err := json.Unmarshal(e.Value, &h); err != nil {
		return nil, 0, false, fmt.Errorf("flux: run %s: its record: %w", id, err)
	}
	return &h, uint64(e.Version), true, nil
}

// readHistory reads run id's steps from snap, in order.
func readHistory(snap *cas.Snapshot, id string) ([]step, error) {
	entries := snap.Subtree(path(historyRoot, id))
	slices.SortFunc(entries, func(a, b cas.Entry) int { return strings.Compare(string(a.Path), string(b.Path)) })
	out := make([]step, 0, len(entries))
	for _, e := range entries {
		var st step
		if err := json.Unmarshal(e.Value, &st); err != nil {
			return nil, fmt.Errorf("flux: run %s: a history entry: %w", id, err)
		}
		st.Version = uint64(e.Version)
		out = append(out, st)
	}
	return out, nil
}

// readHeads reads every run head in snap.
func readHeads(snap *cas.Snapshot) ([]*head, error) {
	var out []*head
	for _, e := range snap.Subtree(contract.Path(runRoot)) {
		var h head
		if err := json.Unmarshal(e.Value, &h); err != nil {
			return nil, fmt.Errorf("flux: %s: %w", e.Path, err)
		}
		out = append(out, &h)
	}
	return out, nil
}
