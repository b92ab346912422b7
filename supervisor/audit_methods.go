package supervisor

import (
	"context"
	"errors"

	"github.com/theus-run/theus/audit"
	"github.com/theus-run/theus/protocol"
)

// The audit methods: audit.status, audit.log, audit.reload and
// audit.resume (docs/GOVERNANCE.md).

// defaultAuditLog is how many entries audit.log returns by default.
const defaultAuditLog = 20

// AuditStatus is audit.status's reply.
type AuditStatus struct {
	Enabled bool                `json:"enabled"`
	File    string              `json:"file,omitempty"`
	Recipe  uint64              `json:"recipe"` // the generation in force: 1, then one more per reload
	Rules   []audit.RuleStatus  `json:"rules"`
	Stopped []audit.ProcessStop `json:"stopped"`
}

func (s *Supervisor) auditStatus(_ context.Context, body []byte) (any, error) {
	if err := decodeBody(body, &struct{}{}); err != nil {
		return nil, err
	}
	a := s.audit
	if a == nil {
		return AuditStatus{Rules: []audit.RuleStatus{}, Stopped: []audit.ProcessStop{}}, nil
	}
	rec := a.recipe.Load()
	rules, stopped := a.tracker.Status(rec)
	return AuditStatus{Enabled: true, File: a.file, Recipe: rec.Gen(), Rules: rules, Stopped: stopped}, nil
}

func (s *Supervisor) auditLog(_ context.Context, body []byte) (any, error) {
	var req struct {
		N int `json:"n"`
	}
	if err := decodeBody(body, &req); err != nil {
		return nil, err
	}
	if req.N < 0 {
		return nil, protocol.Errorf(protocol.CodeBadRequest, "audit.log: n %d: want 0 (the default, %d) or more", req.N, defaultAuditLog)
	}
	if req.N == 0 {
		req.N = defaultAuditLog
	}
	rep := struct {
		Entries []audit.Entry `json:"entries"`
		Total   uint64        `json:"total"` // violations ever logged since the start
	}{Entries: []audit.Entry{}}
	if s.audit != nil {
		rep.Entries, rep.Total = s.audit.tracker.Log(req.N)
	}
	return rep, nil
}

func (s *Supervisor) auditReload(_ context.Context, body []byte) (any, error) {
	if err := decodeBody(body, &struct{}{}); err != nil {
		return nil, err
	}
	gen, err := s.ReloadAudit()
	var le *audit.LoadError
	if errors.As(err, &le) {
		return nil, protocol.Errorf(protocol.CodeBadRequest, "audit.reload: the recipe stays %d:\n%v", s.audit.recipe.Load().Gen(), le)
	}
	if err != nil {
		return nil, err
	}
	return struct {
		OK     bool   `json:"ok"`
		File   string `json:"file"`
		Recipe uint64 `json:"recipe"`
		Rules  int    `json:"rules"`
	}{true, s.audit.file, gen, len(s.audit.recipe.Load().Rules())}, nil
}

func (s *Supervisor) auditResume(_ context.Context, body []byte) (any, error) {
	var req struct {
		Process string `json:"process"`
	}
	if err := decodeBody(body, &req); err != nil {
		return nil, err
	}
	if _, ok := s.procs[req.Process]; !ok {
		return nil, protocol.Errorf(protocol.CodeUnknownProcess, "audit.resume: no process %q; known: %s", req.Process, s.known())
	}
	if s.audit == nil {
		return nil, protocol.Errorf(protocol.CodeBadRequest, "no audit recipe: start theus-supervisor with --audit FILE")
	}
	resumed := s.audit.tracker.Resume(req.Process)
	if resumed {
		s.auditPersist()
		s.cfg.Log.Warn().Str("process", req.Process).Msg("audit: process resumed")
	}
	return struct {
		OK      bool   `json:"ok"`
		Process string `json:"process"`
		Resumed bool   `json:"resumed"` // false: it was not stopped
	}{true, req.Process, resumed}, nil
}
