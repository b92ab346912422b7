package client

import (
	"context"
	"encoding/json"
	"time"

	"github.com/theus-run/theus/protocol"
)

// FlowRequest asks for a Flux workflow run: a loaded workflow by Name, or
// a file's Source (with its name, File, for error positions) run once.
type FlowRequest struct {
	Name   string          `json:"name,omitempty"`
	File   string          `json:"file,omitempty"`
	Source string          `json:"source,omitempty"`
	Args   json.RawMessage `json:"args,omitempty"`
	// ID makes the start idempotent: a second start with it returns the
	// first one's run (and waits for it, unless Detach).
	ID     string `json:"id,omitempty"`
	MaxOps int    `json:"max_ops,omitempty"` // 0: the default, 10000
	// Timeout is the run's deadline from its start; 0 for none.
	Timeout time.Duration `json:"-"`
	Detach  bool          `json:"detach,omitempty"`
}

// Flow is a run as the supervisor reports it.
type Flow struct {
	Run     string     `json:"run"`
	Flow    string     `json:"flow,omitempty"`
	Status  string     `json:"status"` // pending, running, waiting, complete, failed, cancelled
	Ops     int        `json:"ops"`
	Steps   []FlowStep `json:"steps,omitempty"`
	Version uint64     `json:"version,omitempty"` // the newest commit a step made
	Code    string     `json:"code,omitempty"`    // a failed or cancelled run: why
	Error   string     `json:"error,omitempty"`
	Step    *FlowPos   `json:"step,omitempty"` // where a failed run stopped
	Machine string     `json:"machine,omitempty"`
}

// FlowStep is one step a run committed (or one that failed, with Code).
type FlowStep struct {
	Process  string `json:"process"`
	Version  uint64 `json:"version"`
	Attempts int    `json:"attempts"`
	Code     string `json:"code,omitempty"`
	Error    string `json:"error,omitempty"`
}

// FlowPos names a step of a workflow file.
type FlowPos struct {
	PC      int    `json:"pc"`
	Kind    string `json:"kind"`
	Process string `json:"process,omitempty"`
	Pos     string `json:"pos"` // file:line:col
}

// Err is the run's failure as an error (nil unless it failed or was
// cancelled).
func (f *Flow) Err() error {
	if f.Code == "" {
		return nil
	}
	return &protocol.Error{Code: f.Code, Message: f.Error}
}

// RunFlow starts a run and, unless r.Detach, waits for it to end; a run
// that failed is returned with its Code set (see Flow.Err), not as an
// error. The error is for a request that could not start a run.
func (c *Client) RunFlow(ctx context.Context, r FlowRequest) (*Flow, error) {
	body := struct {
		FlowRequest
		TimeoutMS int64 `json:"timeout_ms,omitempty"`
	}{r, timeoutMS(r.Timeout)}
	var f Flow
	if err := c.Call(ctx, protocol.MethodFluxRun, body, &f); err != nil {
		return nil, err
	}
	return &f, nil
}

// FlowStatus returns run id as committed.
func (c *Client) FlowStatus(ctx context.Context, id string) (*Flow, error) {
	var f Flow
	err := c.Call(ctx, protocol.MethodFluxStatus, map[string]string{"run": id}, &f)
	return &f, err
}

// CancelFlow stops a live run; it ends cancelled, its committed steps
// kept.
func (c *Client) CancelFlow(ctx context.Context, id string) (*Flow, error) {
	var f Flow
	err := c.Call(ctx, protocol.MethodFluxCancel, map[string]string{"run": id}, &f)
	return &f, err
}

// ValidateFlow checks a file against the supervisor's processes; it
// returns the problems, each "file:line:col: message" (none: valid).
func (c *Client) ValidateFlow(ctx context.Context, file string, src []byte) ([]string, error) {
	var out struct {
		OK     bool     `json:"ok"`
		Errors []string `json:"errors"`
	}
	err := c.Call(ctx, protocol.MethodFluxValidate, map[string]string{"file": file, "source": string(src)}, &out)
	return out.Errors, err
}

// FlowList is what flux.list answers.
type FlowList struct {
	Workflows []struct {
		Name        string `json:"name"`
		Kind        string `json:"kind"` // workflow or machine
		File        string `json:"file"`
		Title       string `json:"title,omitempty"`
		Description string `json:"description,omitempty"`
		Version     string `json:"version,omitempty"`
	} `json:"workflows"`
	Runs []struct {
		Run     string `json:"run"`
		Flow    string `json:"flow"`
		Status  string `json:"status"`
		Ops     int    `json:"ops"`
		Steps   int    `json:"steps"`
		Started int64  `json:"started"` // Unix ms
		Updated int64  `json:"updated"`
		Machine string `json:"machine,omitempty"`
	} `json:"runs"`
}

// ListFlows lists the loaded files and the runs on record.
func (c *Client) ListFlows(ctx context.Context) (*FlowList, error) {
	var l FlowList
	err := c.Call(ctx, protocol.MethodFluxList, struct{}{}, &l)
	return &l, err
}

// WatchFlow streams a run's (or a machine's) events as JSON objects:
// {"event":"step","state":"started"|"finished"|"failed",...},
// {"event":"wait",...}, {"event":"transition",...} and, last,
// {"event":"end",...}.
func (c *Client) WatchFlow(ctx context.Context, id string) (*Stream, error) {
	return c.Subscribe(ctx, protocol.StreamFlux, map[string]string{"run": id})
}

// Machine is a state machine instance.
type Machine struct {
	ID       string `json:"id"`
	Machine  string `json:"machine"`
	State    string `json:"state"`
	Status   string `json:"status"` // active, or final (a state without transitions)
	EntryRun string `json:"entry_run,omitempty"`
	Version  uint64 `json:"version,omitempty"`
	History  []struct {
		From     string `json:"from"`
		On       string `json:"on"`
		To       string `json:"to"`
		EntryRun string `json:"entry_run,omitempty"`
		Version  uint64 `json:"version"`
	} `json:"history,omitempty"`
}

// StartMachine starts machine name (id: "" for a fresh one; an id in use
// by the same machine and args returns it).
func (c *Client) StartMachine(ctx context.Context, name, id string, args json.RawMessage) (*Machine, error) {
	var m Machine
	err := c.Call(ctx, protocol.MethodFSMStart, map[string]any{"name": name, "id": id, "args": args}, &m)
	return &m, err
}

// MachineStatus returns machine id as committed, with its history.
func (c *Client) MachineStatus(ctx context.Context, id string) (*Machine, error) {
	var m Machine
	err := c.Call(ctx, protocol.MethodFSMStatus, map[string]string{"id": id}, &m)
	return &m, err
}

// SendEvent delivers an event to machine id and returns it after the
// transition.
func (c *Client) SendEvent(ctx context.Context, id, event string) (*Machine, error) {
	var m Machine
	err := c.Call(ctx, protocol.MethodFSMSend, map[string]string{"id": id, "event": event}, &m)
	return &m, err
}

// ListMachines lists the machines on record.
func (c *Client) ListMachines(ctx context.Context) ([]Machine, error) {
	var out struct {
		Machines []Machine `json:"machines"`
	}
	err := c.Call(ctx, protocol.MethodFSMList, struct{}{}, &out)
	return out.Machines, err
}
