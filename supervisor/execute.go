package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/heavy"
	"github.com/theus-run/theus/pool"
	"github.com/theus-run/theus/protocol"
)

// Execute runs req.Process until its delta commits or it fails, and
// returns the reply to send (its ID is req.ID). It is safe for concurrent
// use; ctx bounds it along with req's timeout.
func (s *Supervisor) Execute(ctx context.Context, req *protocol.Execute) *protocol.Reply {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.base, cancel) // draining past its deadline cancels in-process callers too
	defer stop()
	if !s.enter() {
		return s.shuttingDown(req)
	}
	defer s.inflight.Done()
	return s.execute(ctx, req)
}

func (s *Supervisor) shuttingDown(req *protocol.Execute) *protocol.Reply {
	return &protocol.Reply{ID: req.ID, Mode: s.mode, Err: protocol.Errorf(protocol.CodeShuttingDown, "the supervisor is shutting down")}
}

// execute is Execute for a ctx that already ends with s.base (a client
// connection's): no second registration on s.base, whose lock every
// execute would otherwise take. The caller has entered (s.enter).
func (s *Supervisor) execute(ctx context.Context, req *protocol.Execute) *protocol.Reply {
	return s.run(ctx, req, nil, nil)
}

// run is execute with system writes: when system is not nil, the writes
// it returns for an attempt commit in the same transaction as that
// attempt's delta (a workflow step and its run's records), and fence,
// when not nil, is the Engine's condition on that commit (the run's
// owner: etcd_flux.go).
func (s *Supervisor) run(ctx context.Context, req *protocol.Execute, system func(attempt int) cas.Delta, fence cas.Fence) *protocol.Reply {
	start := time.Now() // the one read of the clock until the end
	x, rep := s.admit(req, start)
	defer s.executed(req.Process, start, rep)
	if x != nil {
		s.runAdmitted(ctx, x, system, fence, cas.Prior{})
	}
	return rep
}

// execution is an Execute that passed its checks (admit): what running
// it takes.
type execution struct {
	req     *protocol.Execute
	reply   protocol.Reply // its reply, filled as it goes
	start   time.Time      // when it began: the one read of the clock until the end
	p       *process
	c       contract.Contract // the paths this call declares
	timeout time.Duration
	ac      *auditCall // nil when no recipe audits the process
}

// admit checks req (the journal, the process, its args, its op id and
// timeout, the audit's verdict) and returns its execution and its reply,
// or no execution and the reply with its error set.
func (s *Supervisor) admit(req *protocol.Execute, start time.Time) (*execution, *protocol.Reply) {
	x := new(execution)
	if !s.check(x, req, start) {
		return nil, &x.reply
	}
	return x, &x.reply
}

// check is admit into x, whose reply it sets up: it reports whether req
// passed.
func (s *Supervisor) check(x *execution, req *protocol.Execute, start time.Time) bool {
	x.reply = protocol.Reply{ID: req.ID, Mode: s.mode}
	x.req, x.start = req, start
	rep := &x.reply
	if err := s.journalErr(); err != nil {
		rep.Err = err
		return false
	}
	p, ok := s.procs[req.Process]
	if !ok {
		rep.Err = protocol.Errorf(protocol.CodeUnknownProcess, "no process %q; known: %s", req.Process, s.known())
		return false
	}
	if len(req.Args) > 0 && !json.Valid(req.Args) {
		rep.Err = protocol.Errorf(protocol.CodeBadArgs, "process %q: args are not JSON: %v", req.Process, whyNotJSON(req.Args))
		return false
	}
	if len(req.OpID) > cas.MaxOpIDLen {
		rep.Err = protocol.Errorf(protocol.CodeBadRequest, "op id is %d bytes, over %d", len(req.OpID), cas.MaxOpIDLen)
		return false
	}
	c, err := p.spec.Bind(req.Args)
	if err != nil {
		rep.Err = protocol.Errorf(protocol.CodeBadArgs, "%v", err)
		return false
	}
	timeout := s.cfg.DefaultTimeout
	switch {
	case req.TimeoutMS < 0:
		rep.Err = protocol.Errorf(protocol.CodeBadRequest, "timeout of %d ms: want 0 (the default) or more", req.TimeoutMS)
		return false
	case req.TimeoutMS > protocol.MaxTimeout.Milliseconds():
		timeout = protocol.MaxTimeout
	case req.TimeoutMS > 0:
		timeout = time.Duration(req.TimeoutMS) * time.Millisecond
	}
	ac, aerr := s.auditBegin(req)
	if aerr != nil {
		s.failures.Add(1)
		rep.Err = aerr
		return false
	}
	x.p, x.c, x.timeout, x.ac = p, c, timeout, ac
	return true
}

// owner names an invocation for the arbiter and the HEAVY zone.
func (s *Supervisor) owner() string { return "exec-" + strconv.FormatUint(s.seq.Add(1), 10) }

// runAdmitted runs x until its delta commits or it fails, from the
// attempts prior made elsewhere (a first attempt on the continuation
// path), and fills x.reply.
func (s *Supervisor) runAdmitted(ctx context.Context, x *execution, system func(attempt int) cas.Delta, fence cas.Fence, prior cas.Prior) {
	dc := s.wheel.WithDeadline(ctx, x.start.Add(x.timeout))
	defer dc.Cancel()
	ctx = dc
	owner := s.owner()
	var refs []heavy.Ref // tensors the latest attempt made: committed with it or freed
	r, err := s.runner.Execute(ctx, cas.Invocation{
		Contract: x.c,
		OpID:     x.req.OpID,
		OpDigest: opDigest(x.req),
		Owner:    owner,
		Fence:    fence,
		Start:    x.start,
		Prior:    prior,
		Run: func(ctx context.Context, snap *cas.Snapshot, attempt int) (cas.Outcome, error) {
			s.zone.Abort(refs) // a new attempt: the last one did not commit
			var out cas.Outcome
			var err error
			out, refs, err = s.attempt(ctx, x, owner, snap, attempt)
			if err == nil {
				err = s.checkSchema(out.Delta)
			}
			if err == nil {
				err = x.ac.check(out.Delta)
			}
			if err == nil && system != nil {
				out.System = append(out.System, system(attempt)...)
			}
			return out, err
		},
	})
	s.report(ctx, x, r, err, refs)
}

// report fills x.reply with the end of the invocation, r or err, and keeps
// the tensors refs if it committed, else frees them. With durability sync
// it waits for r's version to be on disk.
func (s *Supervisor) report(ctx context.Context, x *execution, r cas.Report, err error, refs []heavy.Ref) {
	ok := s.settle(x, r, err, refs)
	if v, names := replyNames(r, err); names {
		s.afterDisk(x, ok, r, s.durableAt(ctx, v))
	}
}

// afterDisk fills x.reply once the disk has answered for the version
// the reply names (derr: why it did not take it): with r when settle
// left the reply to it (ok), else derr replaces the error settle put
// there, which named a commit the disk did not take.
func (s *Supervisor) afterDisk(x *execution, ok bool, r cas.Report, derr *protocol.Error) {
	switch {
	case ok:
		s.succeeded(x, r, derr)
	case derr != nil:
		x.reply.Err = derr
	}
}

// settle is report up to the wait for the disk: it keeps or frees refs,
// and fills x.reply with err. It reports true when err is nil: the reply
// is then succeeded's to fill.
func (s *Supervisor) settle(x *execution, r cas.Report, err error, refs []heavy.Ref) bool {
	rep := &x.reply
	if (err == nil && !r.Duplicate) || outcomeUnknown(err) {
		s.zone.Commit(refs) // an unknown outcome keeps them too (outcomeUnknown)
	} else {
		s.zone.Abort(refs)
	}
	x.ac.end(err == nil && !r.Duplicate)
	if err == nil {
		return true
	}
	var re *cas.RunError
	if errors.As(err, &re) {
		rep.Attempts, rep.Conflicts = uint32(re.Attempts), uint32(re.Conflicts)
		s.conflicts.Add(uint64(re.Conflicts))
		s.retries.Add(uint64(max(re.Attempts-1, 0)))
	}
	s.failures.Add(1)
	rep.Err = s.wireError(err)
	return false
}

// succeeded fills x.reply with r, or with derr: r's version (the commit,
// the first commit of a duplicate op id, or the snapshot a read-only run
// saw) did not reach the disk. No reply says more than the disk holds.
func (s *Supervisor) succeeded(x *execution, r cas.Report, derr *protocol.Error) {
	rep := &x.reply
	if derr != nil {
		s.failures.Add(1)
		rep.Err = derr
		return
	}
	rep.Version, rep.Attempts, rep.Conflicts = uint64(r.Version), uint32(r.Attempts), uint32(r.Conflicts)
	rep.VIP, rep.Duplicate, rep.Result = r.VIP, r.Duplicate, r.Result
	if !r.Duplicate && !r.ReadOnly {
		s.commits.Add(1)
	}
	if r.Conflicts > 0 { // most executes: no locked add on a line every core's executes share
		s.conflicts.Add(uint64(r.Conflicts))
	}
	if r.Attempts > 1 {
		s.retries.Add(uint64(r.Attempts - 1))
	}
	if r.VIP {
		s.vips.Add(1)
	}
}

// attempt is one run of an invocation on a worker: it ships the
// contract's inputs from snap, dispatches (again, to another worker, if
// one crashes), and turns the worker's writes into a checked delta. The
// tensors the delta names are claimed for the invocation (refs); on error
// none is.
func (s *Supervisor) attempt(ctx context.Context, x *execution, owner string, snap *cas.Snapshot, attempt int) (cas.Outcome, []heavy.Ref, error) {
	var dp protocol.Dispatch // the pool keeps no pointer to it
	if err := s.dispatchFor(ctx, &dp, x, snap, attempt); err != nil {
		return cas.Outcome{}, nil, err
	}
	var res *protocol.Result
	var blocks *heavy.Lease // what the dispatch allocated: ours to claim from and close
	for try := 0; ; try++ {
		var err error
		res, blocks, err = x.p.pool.Dispatch(ctx, &dp)
		if err == nil {
			break
		}
		if !s.redispatch(ctx, x, err, try) {
			return cas.Outcome{}, nil, err
		}
	}
	return s.outcomeOf(x, &owner, res, blocks)
}

// redispatch reports whether a dispatch that failed with err after try
// redispatches is sent again: a crashed worker, within MaxRedispatch,
// while ctx lasts. It counts and logs the redispatch.
func (s *Supervisor) redispatch(ctx context.Context, x *execution, err error, try int) bool {
	if !errors.Is(err, pool.ErrWorkerCrashed) || try >= s.cfg.MaxRedispatch || ctx.Err() != nil {
		return false
	}
	s.redispatches.Add(1)
	s.cfg.Log.Warn().Err(err).Str("process", x.req.Process).Int("redispatch", try+1).Msg("worker crashed; dispatching again")
	return true
}

// dispatchFor sets dp, whole, to the Dispatch of an attempt on snap: the
// contract's inputs, the args, the deadline of ctx.
func (s *Supervisor) dispatchFor(ctx context.Context, dp *protocol.Dispatch, x *execution, snap *cas.Snapshot, attempt int) error {
	req := x.req
	*dp = protocol.Dispatch{Attempt: uint32(attempt), Process: req.Process, Version: uint64(snap.Version()), Args: req.Args}
	if dl, ok := ctx.Deadline(); ok {
		dp.Deadline = dl.UnixNano()
	}
	for _, in := range x.c.Inputs {
		for _, e := range snap.Subtree(in) {
			if e.Path.InZone(contract.ZonePrivate) {
				continue // the supervisor's own records (runs, the outbox): never shipped to a worker
			}
			v, perr := s.localTensor(e.Path, e.Value) // etcd: a tensor of another host's arena is refused
			if perr != nil {
				return perr
			}
			dp.Inputs = append(dp.Inputs, protocol.Entry{Path: string(e.Path), Value: v, Version: uint64(e.Version)})
		}
	}
	return nil
}

// outcomeOf turns a worker's Result into the attempt's outcome: a
// checked delta, whose tensors are claimed for *owner (refs), from the
// blocks the dispatch allocated, which it closes. An empty *owner is
// named (s.owner) at the first claim: most executes claim none. On error
// no tensor is claimed.
func (s *Supervisor) outcomeOf(x *execution, owner *string, res *protocol.Result, blocks *heavy.Lease) (out cas.Outcome, refs []heavy.Ref, err error) {
	req := x.req
	// Blocks the dispatch allocated and the delta does not name are freed.
	defer blocks.Close()
	defer func() {
		if err != nil {
			s.zone.Abort(refs)
			refs = nil
		}
	}()
	if res.Err != nil {
		return cas.Outcome{}, nil, res.Err
	}
	out = cas.Outcome{Result: res.Result, ReadsKnown: res.ReadsKnown}
	for _, r := range res.Reads {
		path, err := contract.Parse(r)
		if err != nil {
			return cas.Outcome{}, nil, &protocol.Error{Code: protocol.CodeContractViolation, Message: "read: " + err.Error(), Path: r}
		}
		out.Reads = append(out.Reads, path)
	}
	if out.System, err = outboxDelta(req.Process, x.c, res.Emits); err != nil {
		return cas.Outcome{}, nil, err
	}
	if len(res.Result) > 0 && !json.Valid(res.Result) {
		return cas.Outcome{}, nil, protocol.Errorf(protocol.CodeProcessFailed, "process %q: its result is not JSON: %v", req.Process, whyNotJSON(res.Result))
	}
	for _, w := range res.Writes {
		path, err := contract.Parse(w.Path)
		if err != nil {
			return cas.Outcome{}, refs, &protocol.Error{Code: protocol.CodeContractViolation, Message: err.Error(), Path: w.Path}
		}
		if path.InZone(contract.ZoneSignal) { // published after the commit, never stored
			if err := signalWrite(req.Process, path, w); err != nil {
				return cas.Outcome{}, refs, err
			}
			out.Signals.Set(path, w.Value)
			continue
		}
		if path.InZone(contract.ZoneHeavy) && contract.Op(w.Op) != contract.OpDelete {
			if contract.Op(w.Op) != contract.OpSet {
				return cas.Outcome{}, refs, &protocol.Error{Code: protocol.CodeBadTensor, Message: fmt.Sprintf("process %q: a HEAVY path is set or deleted, never appended to", req.Process), Path: w.Path}
			}
			if *owner == "" {
				*owner = s.owner()
			}
			d, ref, err := s.zone.Claim(blocks, *owner, w.Path, w.Value)
			if err != nil {
				return cas.Outcome{}, refs, &protocol.Error{Code: protocol.CodeBadTensor, Message: fmt.Sprintf("process %q: %v", req.Process, err), Path: w.Path}
			}
			if ref != (heavy.Ref{}) {
				refs = append(refs, ref)
				if w.Value, err = s.hostTensor(d, w.Value); err != nil { // etcd: names this host
					return cas.Outcome{}, refs, err
				}
			}
		}
		switch contract.Op(w.Op) {
		case contract.OpSet:
			out.Delta.Set(path, w.Value)
		case contract.OpAppend:
			out.Delta.Append(path, w.Value)
		case contract.OpDelete:
			out.Delta.Delete(path)
			continue
		default:
			return cas.Outcome{}, refs, protocol.Errorf(protocol.CodeProcessFailed, "process %q: write to %s has unknown op %d", req.Process, w.Path, w.Op)
		}
		if !json.Valid(w.Value) {
			return cas.Outcome{}, refs, &protocol.Error{Code: protocol.CodeProcessFailed, Message: fmt.Sprintf("process %q: the value for %s is not JSON: %v", req.Process, w.Path, whyNotJSON(w.Value)), Path: w.Path}
		}
	}
	return out, refs, nil
}

// wireError turns an invocation's error into its wire form.
func (s *Supervisor) wireError(err error) *protocol.Error {
	var pe *protocol.Error
	var v *contract.Violation
	var oc *cas.OpIDConflictError
	switch {
	case errors.As(err, &pe):
		return &protocol.Error{Code: pe.Code, Message: pe.Message, Path: pe.Path}
	case errors.As(err, &v):
		return &protocol.Error{Code: protocol.CodeContractViolation, Message: v.Error(), Path: string(v.Path)}
	case errors.As(err, &oc):
		return &protocol.Error{Code: protocol.CodeOpIDConflict, Message: oc.Error()}
	case errors.Is(err, cas.ErrRetryLimit):
		return &protocol.Error{Code: protocol.CodeRetryLimit, Message: err.Error()}
	case errors.Is(err, pool.ErrWorkerCrashed):
		return &protocol.Error{Code: protocol.CodeWorkerCrashed, Message: err.Error()}
	case errors.Is(err, pool.ErrClosed), s.base.Err() != nil:
		return &protocol.Error{Code: protocol.CodeShuttingDown, Message: err.Error()}
	case errors.Is(err, context.DeadlineExceeded):
		return &protocol.Error{Code: protocol.CodeTimeout, Message: err.Error()}
	case errors.Is(err, context.Canceled):
		return &protocol.Error{Code: protocol.CodeCanceled, Message: err.Error()}
	case errors.Is(err, cas.ErrInvalidDelta):
		return &protocol.Error{Code: protocol.CodeProcessFailed, Message: err.Error()}
	}
	return &protocol.Error{Code: protocol.CodeInternal, Message: err.Error()}
}

// Get returns the entries at or under path in the newest version, or
// not_found (with that version) when there are none.
func (s *Supervisor) Get(req *protocol.Get) *protocol.GetReply {
	rep := &protocol.GetReply{ID: req.ID}
	p, err := contract.Parse(req.Path)
	if err != nil {
		rep.Err = &protocol.Error{Code: protocol.CodeBadRequest, Message: err.Error(), Path: req.Path}
		return rep
	}
	ctx, cancel := context.WithTimeout(s.base, s.cfg.DefaultTimeout)
	defer cancel()
	snap, err := s.view(ctx, p)
	if err != nil {
		rep.Err = s.wireError(err)
		return rep
	}
	defer snap.Release()
	rep.Version = uint64(snap.Version())
	if err := s.durableAt(ctx, snap.Version()); err != nil { // never show what a crash could take back
		rep.Err = err
		return rep
	}
	for _, e := range snap.Subtree(p) {
		v, perr := s.localTensor(e.Path, e.Value)
		if perr != nil {
			rep.Entries, rep.Err = nil, perr
			return rep
		}
		rep.Entries = append(rep.Entries, protocol.Entry{Path: string(e.Path), Value: v, Version: uint64(e.Version)})
	}
	if len(rep.Entries) == 0 {
		rep.Err = &protocol.Error{Code: protocol.CodeNotFound, Message: "nothing at or under this path", Path: req.Path}
	}
	return rep
}

// Status returns the supervisor's counters and its workers.
func (s *Supervisor) Status(req *protocol.Status) *protocol.StatusReply {
	rep := &protocol.StatusReply{
		ID: req.ID, Mode: s.mode,
		Commits: s.commits.Load(), Conflicts: s.conflicts.Load(), Retries: s.retries.Load(),
		VIP: s.vips.Load(), Failures: s.failures.Load(), Processes: s.Processes(),
	}
	rep.Durability, rep.LostTensors = "none", int64(s.lost)
	s.statusStore(rep)
	if s.journal != nil {
		js := s.journal.Stats()
		rep.Durability, rep.Durable, rep.Batches, rep.Persisted = s.cfg.Durability.String(), uint64(js.Durable), js.Batches, js.Commits
	}
	s.store.Collect() // free the tensors no snapshot sees, so the figures are exact
	hs := s.zone.Stats()
	rep.Heavy = protocol.HeavyStatus{
		Size: hs.Size, SlabSize: hs.SlabSize, Slabs: int64(hs.Slabs), Retired: int64(hs.Retired), Held: hs.Held,
		InUse: hs.InUse, Blocks: int64(hs.Blocks), LargestFree: hs.LargestFree, HugeKiB: hs.HugeKiB, InlineMax: int64(hs.InlineMax),
	}
	offset := int64(0)
	for _, p := range s.pools {
		ws := p.WorkerStatus()
		for i := range ws {
			ws[i].Slot += offset
		}
		offset += int64(len(ws))
		rep.Workers = append(rep.Workers, ws...)
	}
	return rep
}

// whyNotJSON says what is wrong with b, which json.Valid refused: where
// the syntax breaks, or that it nests deeper than encoding/json's limit
// (10000 levels).
func whyNotJSON(b []byte) error {
	var v json.RawMessage
	err := json.Unmarshal(b, &v)
	if err == nil { // cannot happen for bytes json.Valid refused
		return errors.New("invalid")
	}
	if strings.Contains(err.Error(), "exceeded max depth") {
		return errors.New("nested deeper than 10000 levels")
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("%w at byte %d", se, se.Offset)
	}
	return err
}
