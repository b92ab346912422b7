package supervisor

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/theus-run/theus/audit"
	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/protocol"
)

// Audit recipes (docs/GOVERNANCE.md). With Config.Audit, each call's
// args are checked against its process's input rules before dispatch,
// and the delta of the attempt that would commit against its output
// rules before the commit; a refused call commits nothing. The recipe in
// force is an atomic pointer: a call reads it once and uses that recipe
// from start to end, so a reload never splits a call between two.
//
// The tracker's counters and stopped processes are one PRIVATE value,
// auditStatePath, committed by the supervisor after every change (and
// durable before the reply of the call that changed them, under
// --durability sync): they survive a restart. The log of violations
// lives in memory only.
const auditStatePath contract.Path = "global.internal_audit.state"

// auditor is the supervisor's audit: nil without Config.Audit.
type auditor struct {
	file     string
	recipe   atomic.Pointer[audit.Recipe]
	reloadMu sync.Mutex // one reload at a time: generations in order
	tracker  *audit.Tracker
	// persistMu orders the commits of the tracker's state: each writes
	// the state as it is when it commits, so the last one is the newest.
	persistMu sync.Mutex
}

// startAudit loads the recipe, restores the tracker's state and
// registers the audit methods (which answer without a recipe too).
func (s *Supervisor) startAudit() error {
	s.registerMethod(protocol.MethodAuditStatus, s.auditStatus)
	s.registerMethod(protocol.MethodAuditLog, s.auditLog)
	s.registerMethod(protocol.MethodAuditReload, s.auditReload)
	s.registerMethod(protocol.MethodAuditResume, s.auditResume)
	if s.cfg.Audit == "" {
		return nil
	}
	rec, err := s.loadRecipe(s.cfg.Audit)
	if err != nil {
		return fmt.Errorf("supervisor: --audit: %w", err)
	}
	a := &auditor{file: s.cfg.Audit, tracker: audit.NewTracker(nil)}
	a.recipe.Store(rec.WithGen(1))
	snap := s.store.Snapshot()
	saved, ok := snap.Get(auditStatePath)
	snap.Release()
	if ok {
		if err := a.tracker.Import(saved.Value); err != nil {
			return fmt.Errorf("supervisor: %w", err)
		}
	}
	s.audit = a
	if a.tracker.Prune(a.recipe.Load()) {
		s.auditPersist()
	}
	return nil
}

// loadRecipe loads a recipe whose processes are all registered.
func (s *Supervisor) loadRecipe(file string) (*audit.Recipe, error) {
	rec, err := audit.Load(file)
	if err != nil {
		return nil, err
	}
	var problems []audit.Problem
	for _, rs := range rec.Processes() {
		p, ok := s.procs[rs.Process]
		if !ok {
			problems = append(problems, audit.Problem{File: file, Line: rs.Line, Msg: fmt.Sprintf("process_recipes: no process %q; known: %s", rs.Process, s.known())})
			continue
		}
		for _, r := range rs.Outputs {
			if !mayWrite(p.spec.Outputs, r.Field) {
				problems = append(problems, audit.Problem{File: file, Line: r.Line, Msg: fmt.Sprintf("%s: output field %q is not under any output %s declares (%s): the rule could never fire", r.ID, r.Field, rs.Process, strings.Join(p.spec.Outputs, ", "))})
			}
		}
	}
	if problems != nil {
		return nil, &audit.LoadError{Problems: problems}
	}
	return rec, nil
}

// ReloadAudit loads the --audit file again and puts it in force for the
// calls that start from now on; a recipe that does not load is refused
// (a *audit.LoadError, every problem with its file:line) and the old one
// stays. It returns the new recipe's generation.
func (s *Supervisor) ReloadAudit() (uint64, error) {
	a := s.audit
	if a == nil {
		return 0, protocol.Errorf(protocol.CodeBadRequest, "no audit recipe: start theus-supervisor with --audit FILE")
	}
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	rec, err := s.loadRecipe(a.file)
	if err != nil {
		return 0, err
	}
	rec = rec.WithGen(a.recipe.Load().Gen() + 1)
	a.recipe.Store(rec)
	if a.tracker.Prune(rec) {
		s.auditPersist()
	}
	s.cfg.Log.Info().Str("file", a.file).Uint64("recipe", rec.Gen()).Int("rules", len(rec.Rules())).Msg("audit recipe reloaded")
	return rec.Gen(), nil
}

// auditCall is the audit of one call: its process's rules in the recipe
// in force when it started.
type auditCall struct {
	s        *Supervisor
	rs       *audit.Rules
	args     []byte
	violated bool              // its inputs broke a rule
	out      []audit.Violation // the output violations of the latest attempt
	hold     *audit.Hold       // what judging out held: B violations not yet recorded
	dirty    bool              // the tracker changed: persist its state
}

// auditBegin refuses a call of a stopped process, and checks the call's
// args. Input violations are recorded at once (the args are the same for
// every attempt). It returns nil when there is nothing to audit, and for
// the repeat of an op id that committed: the repeat runs nothing and
// replies what the first call did, so it is judged by nothing either.
func (s *Supervisor) auditBegin(req *protocol.Execute) (*auditCall, *protocol.Error) {
	a := s.audit
	if a == nil {
		return nil, nil
	}
	if _, _, dup, err := s.store.LookupOp(req.OpID, opDigest(req)); dup || err != nil {
		return nil, nil // a repeat, or an op id reused for another call: the runner replies
	}
	if ref := a.tracker.StoppedRefusal(req.Process); ref != nil {
		return nil, refusalError(ref)
	}
	rs := a.recipe.Load().For(req.Process)
	if rs == nil {
		return nil, nil
	}
	vs := rs.CheckInputs(req.Args)
	j := a.tracker.Judge(rs, vs, true)
	s.auditLogJudgement(j)
	if j.Changed {
		s.auditPersist()
	}
	if j.Refusal != nil {
		return nil, refusalError(j.Refusal)
	}
	return &auditCall{s: s, rs: rs, args: req.Args, violated: len(vs) > 0}, nil
}

// check checks the delta of an attempt against the output rules. A
// refusal is final (the attempt fails, so the call does) and recorded at
// once; other violations wait for the commit (end), so that an attempt
// that conflicts and runs again is not counted twice. Until then its B
// violations are held: they count against their thresholds for the
// calls judged meanwhile, so that concurrent calls cannot all pass a
// threshold_max together.
func (ac *auditCall) check(d cas.Delta) error {
	if ac == nil || len(ac.rs.Outputs) == 0 {
		return nil
	}
	t := ac.s.audit.tracker
	t.Release(ac.hold) // a new attempt: the last one's violations did not commit
	ac.hold = nil
	ac.out = ac.rs.CheckOutputs(ac.args, func(p contract.Path, visit func([]byte)) {
		for _, w := range d {
			if w.Path == p && w.Op != contract.OpDelete {
				visit(w.Value)
			}
		}
	})
	j := t.Judge(ac.rs, ac.out, false)
	ac.hold = j.Hold
	if j.Refusal != nil {
		ac.dirty = ac.dirty || j.Changed
		ac.out = nil
		ac.s.auditLogJudgement(j)
		return refusalError(j.Refusal)
	}
	return nil
}

// end records what the call's final attempt did, once the call is over:
// its output violations if it committed, or, with reset_on_success, a
// clean commit; then persists the tracker if it changed.
func (ac *auditCall) end(committed bool) {
	if ac == nil {
		return
	}
	t := ac.s.audit.tracker
	switch {
	case !committed:
		t.Release(ac.hold)
	case len(ac.out) > 0:
		j := t.Record(ac.rs, ac.out, ac.hold)
		ac.s.auditLogJudgement(j)
		ac.dirty = ac.dirty || j.Changed
	case !ac.violated:
		ac.dirty = t.Clean(ac.rs) || ac.dirty
	}
	if ac.dirty {
		ac.s.auditPersist()
	}
}

func (s *Supervisor) auditLogJudgement(j audit.Judgement) {
	for _, w := range j.Warnings {
		s.cfg.Log.Warn().Str("process", w.Process).Str("rule", w.Rule).Int("count", w.Count).Str("reason", w.Reason).Str("message", w.Message).Msg("audit: violation count at its threshold_min")
	}
	if r := j.Refusal; r != nil && r.Level == audit.Stop {
		s.cfg.Log.Error().Str("process", r.Process).Str("rule", r.Rule).Str("reason", r.Reason).Msg("audit: process stopped until theusctl audit resume")
	}
}

func refusalError(r *audit.Refusal) *protocol.Error {
	code := protocol.CodeAuditAbort
	switch r.Level {
	case audit.Stop:
		code = protocol.CodeAuditStop
	case audit.Block:
		code = protocol.CodeAuditBlock
	}
	return &protocol.Error{Code: code, Message: r.Error(), Path: r.Path}
}

// auditPersist commits the tracker's state and waits until it is
// durable. A failure is logged: the state in memory still holds.
func (s *Supervisor) auditPersist() {
	a := s.audit
	a.persistMu.Lock()
	defer a.persistMu.Unlock()
	if s.journalErr() != nil {
		return
	}
	ctx, cancel := context.WithTimeout(s.base, s.cfg.DefaultTimeout)
	defer cancel()
	for range cas.DefaultMaxAttempts {
		var d cas.Delta
		d.Set(auditStatePath, a.tracker.Export())
		snap := s.store.Snapshot()
		r, err := s.store.Commit(ctx, snap.Version(), nil, d, cas.Options{Mode: s.cfg.Mode})
		snap.Release()
		if errors.Is(err, cas.ErrConflict) {
			continue
		}
		if err == nil {
			if perr := s.durableAt(ctx, r.Version); perr != nil {
				err = perr
			}
		}
		if err != nil {
			s.cfg.Log.Error().Err(err).Msg("audit: the counters could not be saved")
		}
		return
	}
	s.cfg.Log.Error().Msg("audit: the counters could not be saved: every commit conflicted")
}

// mayWrite reports whether a process with these declared outputs
// (templates) could write at field (a template too): some output is a
// prefix of it, segment by segment, where a {name} segment on either side
// may stand for anything.
func mayWrite(outputs []string, field string) bool {
	fs := strings.Split(field, ".")
	for _, o := range outputs {
		os := strings.Split(o, ".")
		if len(os) > len(fs) {
			continue
		}
		ok := true
		for i, seg := range os {
			if seg != fs[i] && !strings.HasPrefix(seg, "{") && !strings.HasPrefix(fs[i], "{") {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}
