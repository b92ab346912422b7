package supervisor

import (
	"errors"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/protocol"
	"github.com/theus-run/theus/schema"
)

// checkSchema holds the values a process's delta sets or appends to the
// schema gate (Config.Schema), before the commit: a refused value is a
// schema_violation, which is not retried and commits nothing. Only the
// process's own writes are checked: its signals are not state, and the
// supervisor's system writes (workflow runs, the outbox) are its own
// records. Deletes write no value.
func (s *Supervisor) checkSchema(d cas.Delta) error {
	g := s.cfg.Schema
	if g.Len() == 0 {
		return nil
	}
	for _, w := range d {
		var err error
		switch w.Op {
		case contract.OpSet:
			err = g.Check(w.Path, w.Value)
		case contract.OpAppend:
			err = g.CheckEntry(w.Path, w.Value)
		}
		if err == nil {
			continue
		}
		var v *schema.Violation
		if errors.As(err, &v) {
			return &protocol.Error{Code: protocol.CodeSchemaViolation, Message: v.Error(), Path: string(w.Path)}
		}
		return err
	}
	return nil
}
