package client

import (
	"context"
	"encoding/json"
	"time"

	"github.com/theus-run/theus/protocol"
)

// AuditStatus is the audit recipe in force, its rules with their
// counters, and the stopped processes (docs/GOVERNANCE.md).
type AuditStatus struct {
	Enabled bool        `json:"enabled"` // false: the supervisor runs without --audit
	File    string      `json:"file,omitempty"`
	Recipe  uint64      `json:"recipe"` // its generation: 1, then one more per reload
	Rules   []AuditRule `json:"rules"`
	Stopped []AuditStop `json:"stopped"`
}

// AuditRule is one rule of the recipe and its counter.
type AuditRule struct {
	Process      string `json:"process"`
	Rule         string `json:"rule"` // "inputs[0]:amount"
	Level        string `json:"level"`
	Count        int    `json:"count"`
	ThresholdMax int    `json:"threshold_max"`
	ThresholdMin int    `json:"threshold_min"`
	Line         int    `json:"line"`
}

// AuditStop is a process an S rule stopped.
type AuditStop struct {
	Process string    `json:"process"`
	Since   time.Time `json:"since"`
	Rule    string    `json:"rule"`
	Message string    `json:"message"`
	Recipe  uint64    `json:"recipe"`
}

// AuditEntry is one violation of the audit log.
type AuditEntry struct {
	Time    time.Time       `json:"time"`
	Process string          `json:"process"`
	Rule    string          `json:"rule"`
	Path    string          `json:"path"`
	Value   json.RawMessage `json:"value"`
	Level   string          `json:"level"`
	Message string          `json:"message"`
	Reason  string          `json:"reason"`
	Count   int             `json:"count,omitempty"`
	Action  string          `json:"action"` // logged, counted, warned, refused or stopped
	Recipe  uint64          `json:"recipe"`
}

// AuditStatus returns the audit's state.
func (c *Client) AuditStatus(ctx context.Context) (*AuditStatus, error) {
	var out AuditStatus
	if err := c.Call(ctx, protocol.MethodAuditStatus, struct{}{}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// AuditLog returns the newest n violations (0: the default, 20), oldest
// first, and how many were logged since the supervisor started.
func (c *Client) AuditLog(ctx context.Context, n int) ([]AuditEntry, uint64, error) {
	in := struct {
		N int `json:"n,omitempty"`
	}{n}
	var out struct {
		Entries []AuditEntry `json:"entries"`
		Total   uint64       `json:"total"`
	}
	if err := c.Call(ctx, protocol.MethodAuditLog, in, &out); err != nil {
		return nil, 0, err
	}
	return out.Entries, out.Total, nil
}

// AuditReload loads the --audit file again and returns the generation of
// the recipe now in force. A recipe that does not load is refused
// (bad_request, every problem as file:line) and the old one stays.
func (c *Client) AuditReload(ctx context.Context) (uint64, error) {
	var out struct {
		Recipe uint64 `json:"recipe"`
	}
	if err := c.Call(ctx, protocol.MethodAuditReload, struct{}{}, &out); err != nil {
		return 0, err
	}
	return out.Recipe, nil
}

// AuditResume lifts the stop of a process; it reports whether the
// process was stopped.
func (c *Client) AuditResume(ctx context.Context, process string) (bool, error) {
	in := struct {
		Process string `json:"process"`
	}{process}
	var out struct {
		Resumed bool `json:"resumed"`
	}
	if err := c.Call(ctx, protocol.MethodAuditResume, in, &out); err != nil {
		return false, err
	}
	return out.Resumed, nil
}
